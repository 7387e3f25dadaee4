"""The film model: a stack of layers, substrate first and ambient last.

Units (DESIGN.md): SLD and iSLD in 1e-6 Å⁻², thickness and roughness in Å.
``roughness`` of layer k is the rms width of the interface between layer k and
layer k+1 (toward the ambient); the ambient's roughness and the thickness of
substrate and ambient are ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import read_bounded

LAYER_FIELDS = ("sld", "isld", "thickness", "roughness")
FIELD_UNITS = {
    "sld": "10⁻⁶ Å⁻²",
    "isld": "10⁻⁶ Å⁻²",
    "thickness": "Å",
    "roughness": "Å",
}
BEAM_SIDES = ("ambient", "substrate")


class FilmError(InvalidInput):
    """A film that cannot be computed; the message names the layer and field."""

    def __init__(self, message: str, layer: int | None = None, field_name: str | None = None):
        super().__init__(message)
        self.layer = layer
        self.field_name = field_name


@dataclass(frozen=True)
class Layer:
    name: str
    sld: float
    isld: float = 0.0
    thickness: float = 0.0
    roughness: float = 0.0


@dataclass(frozen=True)
class Film:
    """Layers substrate first, ambient last.

    ``beam_from`` says where the neutrons come from: "ambient" (the usual
    air/solid case, as in pyreflect and refl1d) or "substrate" (solid/liquid
    cells measured through the silicon block).
    """

    layers: tuple[Layer, ...]
    beam_from: str = "ambient"
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        validate_film(self)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "beam_from": self.beam_from,
            "layers": [asdict(layer) for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_layer(self, index: int, **changes) -> "Film":
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return replace(self, layers=tuple(layers))

    def as_array(self) -> np.ndarray:
        """(L, 4) array of [sld, isld, thickness, roughness], substrate first."""
        return np.array([[getattr(l, f) for f in LAYER_FIELDS] for l in self.layers], dtype=float)

    def beam_array(self) -> np.ndarray:
        """``as_array`` in the beam's frame: the kernels assume the beam comes
        from the last row, so a film measured through the substrate is flipped."""
        arr = self.as_array()
        return flip_stack(arr) if self.beam_from == "substrate" else arr

    @property
    def total_thickness(self) -> float:
        return float(sum(l.thickness for l in self.layers[1:-1]))


def flip_stack(arr: np.ndarray) -> np.ndarray:
    """Reverse a (..., L, 4) stack so that the beam enters from the other side.

    Interface k (between layers k and k+1) becomes interface L-2-k, so each
    roughness moves to the layer below its new position.
    """
    flipped = arr[..., ::-1, :].copy()
    rough = arr[..., :, 3]
    flipped[..., :-1, 3] = rough[..., :-1][..., ::-1]
    flipped[..., -1, 3] = 0.0
    return flipped


def _number(value, layer_index: int, layer_name: str, field_name: str) -> float:
    where = f"layer {layer_index} ({layer_name!r}), field '{field_name}'"
    if isinstance(value, bool) or value is None:
        raise FilmError(f"{where}: expected a number, got {value!r}", layer_index, field_name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FilmError(f"{where}: expected a number, got {value!r}", layer_index, field_name) from None
    if not math.isfinite(number):
        raise FilmError(f"{where}: must be finite, got {value!r}", layer_index, field_name)
    return number


def check_layer(layer: Layer, i: int) -> Layer:
    """The layer with its values as floats; FilmError naming layer i and the field."""
    if not isinstance(layer, Layer):
        raise FilmError(f"layer {i}: expected a Layer, got {type(layer).__name__}", i)
    values = {f: _number(getattr(layer, f), i, layer.name, f) for f in LAYER_FIELDS}
    for f in ("thickness", "roughness", "isld"):
        if values[f] < 0:
            what = "absorption" if f == "isld" else "value"
            raise FilmError(
                f"layer {i} ({layer.name!r}), field '{f}': {what} must be ≥ 0 {FIELD_UNITS[f]}, got {values[f]:g}",
                i,
                f,
            )
    return Layer(name=str(layer.name), **values)


def validate_film(film: Film) -> None:
    if film.beam_from not in BEAM_SIDES:
        raise FilmError(f"beam_from must be one of {BEAM_SIDES}, got {film.beam_from!r}")
    if len(film.layers) < 2:
        raise FilmError(
            f"a film needs at least 2 layers (substrate and ambient), got {len(film.layers)}"
        )
    checked = [check_layer(layer, i) for i, layer in enumerate(film.layers)]
    object.__setattr__(film, "layers", tuple(checked))


def layer_from_mapping(raw, index: int) -> Layer:
    if not isinstance(raw, dict):
        raise FilmError(f"layer {index}: expected an object with sld, thickness, roughness", index)
    name = str(raw.get("name", f"layer {index}"))
    missing = [f for f in ("sld",) if f not in raw]
    if missing:
        raise FilmError(f"layer {index} ({name!r}): missing field 'sld'", index, "sld")
    values = {f: _number(raw.get(f, 0.0), index, name, f) for f in LAYER_FIELDS}
    return Layer(name=name, **values)


def film_from_dict(data) -> Film:
    """Our own format ``{"layers": [...]}`` or a pyreflect-interface export
    ``{"params": {"layers": [...]}, ...}``; both substrate first."""
    if not isinstance(data, dict):
        raise FilmError("a film must be a JSON object with a 'layers' list")
    source = data
    if "layers" not in data and isinstance(data.get("params"), dict):
        source = data["params"]
    layers = source.get("layers")
    if not isinstance(layers, list):
        raise FilmError("a film needs a 'layers' list (or 'params.layers' in a pyreflect export)")
    return Film(
        layers=tuple(layer_from_mapping(raw, i) for i, raw in enumerate(layers)),
        beam_from=str(source.get("beam_from", data.get("beam_from", "ambient"))),
        name=str(source.get("name", data.get("name", "")) or ""),
    )


MAX_FILM_BYTES = 1_000_000


def film_from_json(text: str | bytes) -> Film:
    if len(text) > MAX_FILM_BYTES:
        raise FilmError(f"film file is {len(text):,} bytes; the limit is {MAX_FILM_BYTES:,}")
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FilmError(f"not valid JSON: {exc}") from None
    return film_from_dict(data)


def load_film(path) -> Film:
    try:
        text = read_bounded(path, MAX_FILM_BYTES)
    except OSError as exc:
        raise FilmError(f"cannot read film file {path}: {exc.strerror}") from None
    return film_from_json(text)


def films_to_array(films) -> np.ndarray:
    """Stack films with the same number of layers into a (B, L, 4) array in the beam's frame."""
    arrays = [f.beam_array() for f in films]
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        raise FilmError(f"films in one batch must have the same number of layers, got {sorted(sizes)}")
    return np.stack(arrays)


def roughness_warnings(film: Film, max_roughness: float = 20.0) -> list[str]:
    """Interfaces where Névot–Croce roughness and a graded erf profile differ.

    Névot–Croce is exact only for roughness small against the adjacent layer
    thicknesses; beyond that the slab curve and the curve of the SLD profile
    part ways, physically, and the user should know which one they look at.
    """
    notes = []
    layers = film.layers
    for k in range(len(layers) - 1):
        sigma = layers[k].roughness
        neighbours = [layers[j].thickness for j in (k, k + 1) if 0 < j < len(layers) - 1]
        thin = min(neighbours) if neighbours else math.inf
        if sigma > max_roughness or sigma > thin / 3:
            notes.append(f"{layers[k].name} / {layers[k + 1].name} ({sigma:g} Å)")
    return notes
