"""The training spec: what data, which network, how to train it, and where to run it.

Parsed and validated once per process, at its boundary (the Train page, the command
line, the worker reading ``spec.json``), into a ``TrainSpec``; everything after that
(limits, the job store, the pipeline) works on the object. Messages name the field.

JSON form (every field optional)::

    {"kind": "train",
     "dataset":  {"prior": {"film": {...}, "bounds": [...]}, "n": 5000, "seed": 0,
                  "sampler": "latin_hypercube", "qmin", "qmax", "nq", "spacing", "dq",
                  "n_profile": 900, "noise": null | {"counts_at_unity", "background"},
                  "exact": false}
                 | {"arrays": "uploads/<user>/arrays/<set>", "dq", "beam_from"},
     "model":    {"arch": "compact_cnn", "layers", "channels", "hidden", "dropout"},
     "training": {"epochs", "batch_size", "lr", "weight_decay", "optimizer",
                  "val_fraction", "test_fraction", "seed", "patience", "checkpoint_every"},
     "backend":  "local" | "modal",  "gpu": null | "T4" | ... | "B200"}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import NR_FILE, DatasetConfig, dataset_from_dict
from reflect_core.ml.settings import ModelSettings, TrainSettings, settings_from_dict, train_settings_from_dict
from reflect_core.physics.film import BEAM_SIDES
from reflect_core.physics.simulate import PYREFLECT_DQ

BACKENDS = ("local", "modal")
GPU_TIERS = ("T4", "L4", "A10", "L40S", "A100", "A100-80GB", "H100", "H200", "B200")  # Modal's names
FIELDS = ("kind", "dataset", "model", "training", "backend", "gpu")


class SpecError(InvalidInput):
    """A job spec that cannot run; the message names the field."""


@dataclass(frozen=True)
class ArraySource:
    """Training arrays the user uploaded (a folder under the data directory holding
    nr_train.npy and sld_train.npy) instead of generated ones."""

    folder: str  # relative to data_dir()
    dq: float  # the curves' resolution (FWHM fraction), used when NR is recomputed from profiles
    beam_from: str = "ambient"

    def path(self) -> Path:
        root = data_dir().resolve()
        path = (root / self.folder).resolve()
        if not path.is_relative_to(root / "uploads"):
            raise SpecError(f"dataset.arrays: {self.folder!r} is not an upload folder")
        return path

    @property
    def n(self) -> int:
        """Number of curves, from the stored array's header (nothing else is read)."""
        try:
            return int(np.load(self.path() / NR_FILE, mmap_mode="r").shape[0])
        except (OSError, ValueError) as exc:
            raise SpecError(f"dataset.arrays: cannot read {self.folder}/{NR_FILE} ({exc})") from None

    def to_dict(self) -> dict:
        return {"arrays": self.folder, "dq": self.dq, "beam_from": self.beam_from}


def _array_source(raw: dict) -> ArraySource:
    unknown = set(raw) - {"arrays", "dq", "beam_from"}
    if unknown:
        raise SpecError(f"dataset: with 'arrays', only dq and beam_from may be given (got {sorted(unknown)})")
    dq = raw.get("dq", PYREFLECT_DQ)
    if isinstance(dq, bool) or not isinstance(dq, (int, float)) or not 0 <= dq < 0.5:
        raise SpecError(f"dataset.dq: must be a FWHM fraction in [0, 0.5), got {dq!r}")
    beam_from = raw.get("beam_from", "ambient")
    if beam_from not in BEAM_SIDES:
        raise SpecError(f"dataset.beam_from: must be one of {BEAM_SIDES}, got {beam_from!r}")
    source = ArraySource(str(raw["arrays"]), float(dq), beam_from)
    source.path()
    return source


@dataclass(frozen=True)
class TrainSpec:
    dataset: DatasetConfig | ArraySource
    model: ModelSettings
    training: TrainSettings
    backend: str = "local"
    gpu: str | None = None  # a Modal GPU tier; None on the local backend

    @classmethod
    def parse(cls, spec) -> "TrainSpec":
        """The validated spec of a JSON-like dict; ``SpecError`` names the first bad field."""
        if isinstance(spec, TrainSpec):
            return spec
        if not isinstance(spec, dict):
            raise SpecError("a job spec must be an object")
        if spec.get("kind", "train") != "train":
            raise SpecError(f"kind: only 'train' jobs exist, got {spec.get('kind')!r}")
        unknown = set(spec) - set(FIELDS)
        if unknown:
            raise SpecError(f"unknown fields {sorted(unknown)}")
        backend, gpu = spec.get("backend", "local"), spec.get("gpu")
        if backend not in BACKENDS:
            raise SpecError(f"backend: must be one of {BACKENDS}, got {backend!r}")
        if gpu is not None and (backend != "modal" or gpu not in GPU_TIERS):
            raise SpecError(f"gpu: a GPU tier ({', '.join(GPU_TIERS)}) is chosen only with the modal backend, "
                            f"got {gpu!r} on {backend!r}")
        raw_dataset = spec.get("dataset") or {}
        try:
            dataset = _array_source(raw_dataset) if "arrays" in raw_dataset else dataset_from_dict(raw_dataset)
            return cls(dataset, settings_from_dict(spec.get("model")), train_settings_from_dict(spec.get("training")),
                       backend, gpu)
        except SpecError:
            raise
        except InvalidInput as exc:  # a dataset, prior, model or training setting: its message names it
            raise SpecError(str(exc)) from None

    @property
    def beam_from(self) -> str:
        d = self.dataset
        return d.beam_from if isinstance(d, ArraySource) else d.prior.film.beam_from

    @property
    def prior(self) -> dict | None:
        return None if isinstance(self.dataset, ArraySource) else self.dataset.prior.to_dict()

    def to_dict(self) -> dict:
        return {"kind": "train", "dataset": self.dataset.to_dict(), "model": self.model.to_dict(),
                "training": self.training.to_dict(), "backend": self.backend, "gpu": self.gpu}
