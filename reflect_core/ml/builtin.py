"""Built-in models: pretrained networks shipped inside the package, so that a first-time user
can analyse a curve at once, with no training and no upload of a model.

Each is a folder ``reflect_core/ml/pretrained/<name>/`` holding ``model.json`` (``ModelMeta``),
``model.pt`` (the state dict) and ``README.md`` (its model card), all written by
``scripts/train_pretrained.py``, which reproduces them. ``model.json``'s ``source`` says
``{"kind": "built-in", ...}`` and records the SHA-256 of ``model.pt``; a folder whose weights
do not match it is listed with that error and not offered.

Read-only at runtime: predictions load from the folder (``model_store.load_model`` only
reads), nothing is ever written into the package (no cache, no lock file), and the app
never deletes a built-in model. They belong to nobody and are offered to every user.

Torch-free: listing reads ``model.json`` and hashes the weights (~4 MB, once per file
version); loading the network is ``model_store.load_model(entry.model_dir)``, as for any
other model directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reflect_core.base.errors import ReflectError
from reflect_core.base.storage import sha256_file
from reflect_core.ml.meta import META, ModelMeta

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
WEIGHTS = "model.pt"  # model_store.WEIGHTS (that module loads torch)
CARD = "README.md"
KIND = "built-in"
ID_PREFIX = "builtin:"
SCOPE = ("Trained on synthetic curves of the default prior only (pyreflect's 5-layer film on silicon, "
         "each thickness, roughness and SLD within its bounds, Q {qmin:.4g}–{qmax:.4g} Å⁻¹, dQ/Q {dq:.3g} % FWHM, "
         "no noise or background). For a measured curve of another kind of film, or with parameters outside "
         "those bounds, the profile it gives is a guess from outside what it has seen: judge it by how well the "
         "recomputed curve matches the data (χ²), and train a model on your own prior for such samples.")


@dataclass(frozen=True)
class BuiltinModel:
    name: str  # its folder's name, e.g. "default_prior"
    model_dir: Path
    meta: ModelMeta | None  # None when it cannot be read (then ``error`` says why)
    error: str | None = None

    @property
    def title(self) -> str:
        source = self.meta.source if self.meta is not None else {}
        return str(source.get("title") or self.name)

    @property
    def record(self) -> dict:
        """What a page needs in place of a history record (an analysis saved with it names it)."""
        return {"id": ID_PREFIX + self.name, "name": self.title, "kind": KIND, "owner": KIND}

    @property
    def scope(self) -> str:
        """What "trained on the default prior only" means for a measured curve, in words."""
        if self.meta is None:
            return ""
        return SCOPE.format(qmin=float(self.meta.q.min()), qmax=float(self.meta.q.max()), dq=100 * self.meta.dq)

    def card(self) -> str:
        """The model card (markdown), or '' when there is none."""
        try:
            return (self.model_dir / CARD).read_text(encoding="utf-8")
        except OSError:
            return ""



@lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 of the folder's weights, computed once per file version."""
    info = (Path(model_dir) / WEIGHTS).stat()
    return _sha256_cached(str(Path(model_dir) / WEIGHTS), info.st_size, info.st_mtime_ns)


def read_builtin(model_dir: Path) -> BuiltinModel:
    """One built-in folder, checked: its ``model.json`` reads, says it is built-in, and its weights are
    the ones it records."""
    model_dir = Path(model_dir)
    meta = None
    try:
        meta = ModelMeta.read(model_dir)
        if meta.source.get("kind") != KIND:
            raise ReflectError(f"{META} does not describe a built-in model (source {meta.source.get('kind')!r})")
        if not (model_dir / WEIGHTS).is_file():
            raise ReflectError(f"{WEIGHTS} is missing")
        expected = meta.source.get("weights_sha256")
        if expected != weights_sha256(model_dir):
            raise ReflectError(f"{WEIGHTS} is not the file its {META} records (SHA-256 differs)")
    except (ReflectError, OSError) as exc:
        return BuiltinModel(model_dir.name, model_dir, meta, str(exc))
    return BuiltinModel(model_dir.name, model_dir, meta)


def builtin_models(root: Path | None = None) -> list[BuiltinModel]:
    """Every built-in model (folders of ``root``, default the package's), by name; unusable ones
    included, each with its error."""
    root = PRETRAINED_DIR if root is None else Path(root)
    if not root.is_dir():
        return []
    return [read_builtin(folder) for folder in sorted(root.iterdir())
            if not folder.name.startswith(".") and folder.is_dir() and (folder / META).is_file()]


def find_builtin(name: str) -> BuiltinModel | None:
    """The built-in model ``name`` (its folder name, or its record id ``builtin:<name>``), or None."""
    name = name[len(ID_PREFIX):] if name.startswith(ID_PREFIX) else name
    return next((m for m in builtin_models() if m.name == name), None)
