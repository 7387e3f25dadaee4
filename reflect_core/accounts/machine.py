"""This machine's own cap on local training, whoever asks (admins too): a deployment's limit, not a
user's profile. On Community Cloud one box of 0.08-2 shared cores serves every visitor and loses its
disk (runs included) on sleep, reboot and redeploy, so only small runs train there; the rest go to
Modal GPUs, which this cap never limits (``limits.machine_violations`` applies it to local runs only).

The estimate is counted, not timed: the network's multiply-adds per curve (``ml.estimates``, from
the settings, nothing built) × the curves each epoch touches × the epochs, at a nominal rate. So the
Train form and the job store (under its lock, at submit, resume and retry) reach the same verdict for
the same spec, whatever the box's load, and no torch runs under the store's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflect_core.ml.estimates import multiply_adds
from reflect_core.ml.spec import TrainSpec

# Measured 18-25 G multiply-adds/s on one core of the development machine (torch 2.13 CPU, one
# thread, batch 64: the default compact CNN and an 8-layer, 64-channel one; 2026-12-07). Cloud's
# shared vCPUs are taken at half of that, so the estimate errs toward "too big for here".
NOMINAL_MULTIPLY_ADDS_PER_S = 10e9
# A training step costs about 3 forward passes (the backward pass computes gradients for the inputs
# and for the weights); validation costs one forward pass per curve per epoch.
STEP_FORWARD_PASSES = 3
# Ten CPU-minutes: about ten minutes of a whole core, the most a visitor can wait on a box that
# serves everyone and drops runs when it sleeps. The Train form's default run (compact CNN, 5,000
# curves, 25 epochs: 4.6 CPU-min) and the default network at the shared profile's 5,000 curves x 50
# epochs (9.1 CPU-min) fit; an 8-layer, 64-channel network at the defaults (23 CPU-min) goes to Modal.
CLOUD_LOCAL_TRAIN_CPU_S = 600.0


@dataclass(frozen=True)
class MachineCap:
    where: str          # named in every message: "Community Cloud"
    cpu_seconds: float  # estimated training compute of one local run, in CPU-seconds at the nominal rate


CLOUD = MachineCap("Community Cloud", CLOUD_LOCAL_TRAIN_CPU_S)


def training_cpu_seconds(spec: TrainSpec, n_curves: int, n_q: int, n_z: int) -> float:
    """CPU-seconds of every epoch of ``spec`` at the nominal rate (early stopping may end sooner)."""
    training = spec.training
    n_val = n_curves * training.val_fraction
    n_train = n_curves - n_val - n_curves * training.test_fraction
    per_epoch = multiply_adds(spec.model, n_q, n_z) * (STEP_FORWARD_PASSES * n_train + n_val)
    return per_epoch * training.epochs / NOMINAL_MULTIPLY_ADDS_PER_S


def compute_violation(estimate_s: float, cap: MachineCap) -> str | None:
    """The message naming the estimate and the cap, or None when the run fits."""
    if estimate_s <= cap.cpu_seconds:
        return None
    return (f"estimated training compute {estimate_s / 60:,.1f} CPU-min > {cap.cpu_seconds / 60:,.0f} CPU-min, "
            f"the cap on training on this machine ({cap.where}; Modal GPU runs are not capped)")
