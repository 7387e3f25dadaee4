"""The training spec: what data, which network, how to train it, and where to run it.

Parsed and validated once per process, at its boundary (the Train page, the command
line, the worker reading ``spec.json``), into a ``TrainSpec``; everything after that
(limits, the job store, the pipeline) works on the object. Messages name the field.

JSON form (every field optional)::

    {"kind": "train",
     "dataset":  {"prior": {"film": {...}, "bounds": [...]}, "n": 5000, "seed": 0,
                  "sampler": "latin_hypercube", "qmin", "qmax", "nq", "spacing", "dq",
                  "n_profile": 900, "noise": null | {"counts_at_unity", "background", "scale"} (number or [lo, hi]),
                  "exact": false}
                 | {"arrays": "uploads/<user>/arrays/<set>", "dq", "beam_from"},
     "model":    {"arch": "compact_cnn", "layers", "channels", "hidden", "dropout"},
     "training": {"epochs", "batch_size", "lr", "weight_decay", "optimizer",
                  "val_fraction", "test_fraction", "seed", "patience", "checkpoint_every"},
     "backend":  "local" | "modal",  "gpu": null | "T4" | ... | "B200"}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE, DatasetConfig, dataset_from_dict
from reflect_core.ml.settings import ModelSettings, TrainSettings, settings_from_dict, train_settings_from_dict
from reflect_core.physics.film import BEAM_SIDES
from reflect_core.physics.simulate import PYREFLECT_DQ

BACKENDS = ("local", "modal")
GPU_TIERS = ("T4", "L4", "A10", "L40S", "A100", "A100-80GB", "H100", "H200", "B200")  # Modal's names
FIELDS = ("kind", "dataset", "model", "training", "backend", "gpu")


class SpecError(InvalidInput):
    """A job spec that cannot run; the message names the field."""


UPLOADS = "uploads"
ARRAYS = "arrays"  # uploads/<owner>/arrays/<set>: where a user's training arrays are kept


def _owner_name(owner) -> str:
    # The accounts wing (above this one) validates user names; here, only what makes a folder.
    if not isinstance(owner, str) or not owner or owner.startswith(".") or "/" in owner or "\\" in owner:
        raise SpecError(f"dataset.arrays: {owner!r} is not a user name")
    return owner


@dataclass(frozen=True)
class ArraySource:
    """Training arrays the user uploaded (a folder under the data directory holding
    nr_train.npy and sld_train.npy) instead of generated ones.

    A spec names the folder; whose folder it may be depends on who runs it, so the arrays are
    resolved only with an owner: ``path(owner)``, or ``bound_to(owner).path()`` (the store binds
    the run's owner at submit and for its worker). Without either the folder's own user is
    taken: only for trusted callers in this process (the command line, tests)."""

    folder: str  # relative to data_dir(): uploads/<owner>/arrays/<set>
    dq: float  # the curves' resolution (FWHM fraction), used when NR is recomputed from profiles
    beam_from: str = "ambient"
    owner: str | None = field(default=None, compare=False, repr=False)  # who runs it; not saved

    @property
    def named_owner(self) -> str:
        """The user whose folder the spec names (uploads/<user>/arrays/...)."""
        parts = Path(self.folder).parts
        if len(parts) < 4 or parts[0] != UPLOADS or parts[2] != ARRAYS:
            raise SpecError(f"dataset.arrays: {self.folder!r} is not an upload folder (uploads/<user>/arrays/<set>)")
        return parts[1]

    def bound_to(self, owner: str) -> "ArraySource":
        return replace(self, owner=_owner_name(owner))

    def path(self, owner: str | None = None) -> Path:
        """The folder, resolved (symlinks too) and checked to lie inside ``uploads/<owner>/arrays/``;
        an admin's runs use their own folder too."""
        owner = _owner_name(owner or self.owner or self.named_owner)
        root = data_dir().resolve()
        home = (root / UPLOADS / owner / ARRAYS).resolve()
        try:
            path = (root / self.folder).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise SpecError(f"dataset.arrays: {self.folder!r} cannot be resolved ({exc})") from None
        if not path.is_relative_to(root / UPLOADS):
            raise SpecError(f"dataset.arrays: {self.folder!r} is not an upload folder")
        if path == home or not path.is_relative_to(home):
            raise SpecError(f"dataset.arrays: {self.folder!r} is not one of {owner}'s array sets")
        return path

    def shape(self, owner: str | None = None) -> tuple[int, int, int]:
        """(curves, Q points, z points), from the stored arrays' headers (nothing else is read)."""
        folder = self.path(owner)
        shapes = []
        for name in (NR_FILE, SLD_FILE):
            try:
                shapes.append(np.load(folder / name, mmap_mode="r").shape)
            except (OSError, ValueError) as exc:
                raise SpecError(f"dataset.arrays: cannot read {self.folder}/{name} ({exc})") from None
        if any(len(shape) != 3 for shape in shapes):
            raise SpecError(f"dataset.arrays: {self.folder} holds arrays of shapes {shapes}, not (N, 2, points)")
        (n, _, n_q), (_, _, n_z) = shapes
        return int(n), int(n_q), int(n_z)

    @property
    def n(self) -> int:
        """Number of curves (of the bound owner's folder, or the named one's)."""
        return self.shape()[0]

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
    if not isinstance(raw["arrays"], str):
        raise SpecError(f"dataset.arrays: expected a folder name, got {type(raw['arrays']).__name__}")
    source = ArraySource(raw["arrays"], float(dq), beam_from)
    source.path()  # the form and its place; whose it may be is checked where the owner is known
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

    def bound_to(self, owner: str) -> "TrainSpec":
        """This spec run by ``owner``: uploaded arrays then resolve inside their folder only."""
        if isinstance(self.dataset, ArraySource):
            return replace(self, dataset=self.dataset.bound_to(owner))
        return self

    def check_owner(self, owner: str) -> "TrainSpec":
        """``bound_to(owner)``, with its arrays (if any) resolved now: SpecError if they are not owner's."""
        bound = self.bound_to(owner)
        if isinstance(bound.dataset, ArraySource):
            bound.dataset.path()
        return bound

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
