"""The Train form's widgets and the spec they stand for, in one table, so that a spec
can be put back into the form (History "Open") field by field, prior bounds included.

Each row: the widget key, the shadow name it shares with other pages (see ``ui.state``),
where the value sits in a ``TrainSpec``'s JSON form, and how the widget shows it.

``render_machine_cap`` tells, before submit, whether a local run fits this machine's cap
(Community Cloud's), and where to run it when it does not.
"""

from __future__ import annotations

import streamlit as st

from reflect_core.accounts.limits import Limits, local_cpu_seconds, machine_violations
from reflect_core.jobs import backends
from reflect_core.ml.spec import ArraySource, TrainSpec
from reflect_core.physics.film import film_from_dict
from ui import film_editor
from ui.bounds_editor import restore_bounds
from ui.state import keep

SPEC_KEY = "train_spec"  # the last spec the form made (JSON form), for the page and its tests


def _percent(value: float) -> float:
    return 100.0 * value


# (widget key, shadow name, section, field, to widget value)
GENERATED = [
    ("train_n", None, "dataset", "n", int),
    ("train_data_seed", None, "dataset", "seed", int),
    ("train_sampler", None, "dataset", "sampler", str),
    ("train_n_profile", None, "dataset", "n_profile", int),
    ("train_qmin", "qmin", "dataset", "qmin", float),
    ("train_qmax", "qmax", "dataset", "qmax", float),
    ("train_nq", "nq", "dataset", "nq", int),
    ("train_dq", "dq_percent", "dataset", "dq", _percent),
    ("train_exact", None, "dataset", "exact", bool),
]
UPLOADED = [
    ("train_arrays", None, "dataset", "arrays", str),
    ("train_arrays_dq", None, "dataset", "dq", _percent),
]
NETWORK = [
    ("train_arch", None, "model", "arch", str),
    ("train_layers", None, "model", "layers", int),
    ("train_channels", None, "model", "channels", int),
    ("train_hidden", None, "model", "hidden", int),
    ("train_dropout", None, "model", "dropout", float),
    ("train_epochs", None, "training", "epochs", int),
    ("train_batch", None, "training", "batch_size", int),
    ("train_lr", None, "training", "lr", float),
    ("train_wd", None, "training", "weight_decay", float),
    ("train_opt", None, "training", "optimizer", str),
    ("train_val", None, "training", "val_fraction", float),
    ("train_test", None, "training", "test_fraction", float),
    ("train_seed", None, "training", "seed", int),
    ("train_patience", None, "training", "patience", int),
    ("train_ckpt", None, "training", "checkpoint_every", int),
]
NOISE = [("train_counts", "train_counts_hi", "counts_at_unity"), ("train_bkg", "train_bkg_hi", "background")]
PLACE = [  # top-level fields: where the run ran (a tier only with Modal)
    ("train_backend", None, None, "backend", str),
    ("train_gpu", None, None, "gpu", str),
]


def _set(key: str, shadow: str | None, value) -> None:
    """The widget shows ``value`` the next time it is drawn, on any page that shares it."""
    st.session_state.pop(key, None)
    if shadow:
        st.session_state.pop(shadow, None)  # the other page's widget of the same value
    keep(shadow or key, value)


def apply_recipe(raw: dict) -> None:
    """A recipe's data size, network and schedule into the form (its film, grid and noise stay)."""
    _set("train_n", None, int(raw["dataset"]["n"]))
    for key, shadow, section, name, shown in NETWORK:
        if name in raw.get(section, {}):
            _set(key, shadow, shown(raw[section][name]))


def restore(spec: TrainSpec, with_film: bool = True) -> None:
    """Put every setting of ``spec`` into the Train form (and, ``with_film``, its film into the explorer;
    without, the prior bounds are kept for the explorer's film where its parameters match)."""
    raw = spec.to_dict()
    uploaded = isinstance(spec.dataset, ArraySource)
    _set("train_source", None, "upload" if uploaded else "generate")
    for key, shadow, section, name, shown in (UPLOADED if uploaded else GENERATED) + NETWORK:
        _set(key, shadow, shown(raw[section][name]))
    for key, shadow, _, name, shown in PLACE:
        if raw.get(name) is not None:
            _set(key, shadow, shown(raw[name]))
    if uploaded:
        return
    noise = raw["dataset"]["noise"]
    _set("train_noise", None, noise is not None)
    if noise is not None:  # each setting a number or [lo, hi] (spec.to_dict writes a fixed value as a number)
        for low_key, high_key, name in NOISE:
            low, high = (noise[name], noise[name]) if not isinstance(noise[name], list) else noise[name]
            _set(low_key, None, float(low))
            _set(high_key, None, float(high))
        scale = noise.get("scale", 1.0)
        # The form's scale range is 1 ± error: a range from elsewhere (the command line) is shown by its top.
        _set("train_scale_err", None, 100 * abs(float(scale[1] if isinstance(scale, list) else scale) - 1))
    film = film_from_dict(raw["dataset"]["prior"]["film"])
    if with_film:
        film_editor.load_film(film)
    restore_bounds(film, raw["dataset"]["prior"]["bounds"])


MODAL_OFFER = "Choose **Modal GPU** under *Run on* above."
MODAL_HOW = ("To offer Modal GPUs here, set `MODAL_TOKEN_ID` and `MODAL_TOKEN_SECRET` in the app's secrets "
             "(README, Modal).")
ARRAYS_HERE = ("Uploaded arrays train on this machine only (not on Modal yet): use fewer curves, epochs or a "
               "smaller network, or generate the curves from the film, which Modal can train.")


def render_machine_cap(spec: TrainSpec, limits: Limits, owner: str) -> None:
    """Under the estimates: a local run on a capped machine fits (a caption) or not (a warning naming
    the estimate and the cap, with Modal offered, or how to configure it). The job store refuses the
    same spec with the same message, whatever this shows."""
    if limits.machine is None or spec.backend != "local":
        return
    problems = machine_violations(spec, limits, owner)
    if not problems:
        st.caption(f"Estimated training compute {local_cpu_seconds(spec, owner) / 60:,.1f} CPU-min: within the "
                   f"{limits.machine.cpu_seconds / 60:,.0f} CPU-min cap on training on this machine "
                   f"({limits.machine.where}).")
        return
    if isinstance(spec.dataset, ArraySource):
        offer = ARRAYS_HERE
    else:
        offer = MODAL_OFFER if backends.is_registered("modal") else MODAL_HOW
    st.warning(f"Too big to train on this machine: {'; '.join(problems)}. {offer}")
