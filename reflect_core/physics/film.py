"""The film model: a stack of layers, substrate first and ambient last.

Units (DESIGN.md): SLD and iSLD in 1e-6 Å⁻², thickness and roughness in Å.
``roughness`` of layer k is the rms width of the interface between layer k and
layer k+1 (toward the ambient); the ambient's roughness and the thickness of
substrate and ambient are ignored.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from reflect_core.base.errors import InvalidInput

LAYER_FIELDS = ("sld", "isld", "thickness", "roughness")
FIELD_UNITS = {
    "sld": "10⁻⁶ Å⁻²",
    "isld": "10⁻⁶ Å⁻²",
    "thickness": "Å",
    "roughness": "Å",
}
BEAM_SIDES = ("ambient", "substrate")

# Physical upper bounds (units above). Beyond them a value is a typing slip, not a film, and
# the work grows with it: the resolution's fine Q grid needs points ∝ the total thickness.
MAX_THICKNESS = 1e5  # Å (10 µm), per layer and for the whole stack: NR resolves fringes of films up
# to a few thousand Å; a 10 µm stack is already a bulk medium for any neutron instrument.
MAX_ROUGHNESS = 1000.0  # Å: a wider interface is a graded layer, better described as layers.
MAX_SLD = 100.0  # 10⁻⁶ Å⁻², for |SLD| and iSLD: the largest real SLDs are ~10 (Ni-58 13.3), strong
# absorbers (Gd, Cd, B-10) reach a few tens in iSLD.
MAX_LAYERS = 1000  # any film; the profiles allow far fewer (Limits.film_layers: local 20, shared 10)
MAXIMA = {"sld": MAX_SLD, "isld": MAX_SLD, "thickness": MAX_THICKNESS, "roughness": MAX_ROUGHNESS}


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
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of thousands of digits
        raise FilmError(f"{where}: expected a number, got {short_repr(value)}", layer_index, field_name) from None
    if not math.isfinite(number):
        raise FilmError(f"{where}: must be finite, got {value!r}", layer_index, field_name)
    return number


def short_repr(value) -> str:
    """``repr`` cut to 40 characters: a 5000-digit number is named, not echoed."""
    try:
        text = repr(value)
    except ValueError:  # int → str past Python's digit limit
        return f"an integer of more than {sys.get_int_max_str_digits():,} digits"
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text):,} characters)"


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
    for f, limit in MAXIMA.items():
        if abs(values[f]) > limit:
            raise FilmError(f"layer {i} ({layer.name!r}), field '{f}': {values[f]:g} {FIELD_UNITS[f]} is beyond "
                            f"the physical bound {'|SLD| ≤ ' if f == 'sld' else '≤ '}{limit:g} {FIELD_UNITS[f]}", i, f)
    return Layer(name=str(layer.name), **values)


def validate_film(film: Film) -> None:
    if film.beam_from not in BEAM_SIDES:
        raise FilmError(f"beam_from must be one of {BEAM_SIDES}, got {film.beam_from!r}")
    if len(film.layers) < 2:
        raise FilmError(
            f"a film needs at least 2 layers (substrate and ambient), got {len(film.layers)}"
        )
    if len(film.layers) > MAX_LAYERS:
        raise FilmError(f"a film has at most {MAX_LAYERS} layers, got {len(film.layers):,}")
    checked = [check_layer(layer, i) for i, layer in enumerate(film.layers)]
    total = sum(layer.thickness for layer in checked[1:-1])
    if total > MAX_THICKNESS:
        raise FilmError(f"the film is {total:g} Å thick in all; the bound is {MAX_THICKNESS:g} Å (10 µm), "
                        "far beyond what reflectometry resolves", field_name="thickness")
    object.__setattr__(film, "layers", tuple(checked))


def _text(value, where: str, index: int | None = None) -> str:
    try:
        text = str(value)
    except ValueError:  # an integer past Python's digit limit
        raise FilmError(f"{where}: expected text, got {short_repr(value)}", index) from None
    if len(text) > 200:
        raise FilmError(f"{where}: at most 200 characters, got {len(text):,}", index)
    return text


def layer_from_mapping(raw, index: int) -> Layer:
    if not isinstance(raw, dict):
        raise FilmError(f"layer {index}: expected an object with sld, thickness, roughness", index)
    name = _text(raw.get("name", f"layer {index}"), f"layer {index}: name", index)
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
    if len(layers) > MAX_LAYERS:  # before parsing each one
        raise FilmError(f"a film has at most {MAX_LAYERS} layers, got {len(layers):,}")
    return Film(
        layers=tuple(layer_from_mapping(raw, i) for i, raw in enumerate(layers)),
        beam_from=_text(source.get("beam_from", data.get("beam_from", "ambient")), "beam_from"),
        name=_text(source.get("name", data.get("name", "")) or "", "name"),
    )


MAX_FILM_BYTES = 1_000_000


def film_from_json(text: str | bytes) -> Film:
    if len(text) > MAX_FILM_BYTES:
        raise FilmError(f"film file is {len(text):,} bytes; the limit is {MAX_FILM_BYTES:,}")
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also an integer past Python's digit limit
        raise FilmError(f"not valid JSON: {exc}") from None
    return film_from_dict(data)


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
