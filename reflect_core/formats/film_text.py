"""A film from one line of text, and a film written back as that line.

    Si / SiO2 12 rough 3 / 5 x [PEO 33 / dPS 40 rough 4] / PMMA 500 rough 8 / air

Layers are separated by ``/``, substrate first and ambient last (DESIGN.md). Each layer is

- a material, one of:
  - a name from the materials table (``reflect_core.physics.materials``, case-insensitive: Si, SiO2,
    Au, D2O, dPS, PMMA, air, …);
  - ``FORMULA@DENSITY``: a chemical formula and its mass density in g/cm³, no spaces
    (``C8H8@1.05``, ``C8D8@1.13``, ``H[2]2O@1.107``; deuterium is D or H[2]);
  - an SLD in 10⁻⁶ Å⁻²: ``sld 3.5``, a bare ``3.5``, or named ``siox=3.47``;
- then optionally a thickness in Å (``500``, ``500Å``, ``500 A`` or ``50 nm``), ``rough R`` (the rms
  roughness of this layer's top interface, toward the ambient; Å or nm) and ``isld I`` (absorption,
  10⁻⁶ Å⁻², replacing the material's). Roughness defaults to 0.

Every layer between substrate and ambient needs a thickness; the substrate takes none (it may have
``rough``), the ambient neither. A repeat ``N x [layer / layer …]`` (``x`` or ``X``, ``×``, ``*``; N from 1 to
``MAX_REPEAT``, not nested, not the substrate or ambient) becomes N copies named ``PEO#1, dPS#1, PEO#2,
…``; each parameter of copy k ≥ 2 is tied to the same parameter of copy 1 (the contract's form
``{"i", "par", "same_as": {"i", "par"}}``), except the roughness of the last layer of the last copy,
which is a different interface (toward the layer after the repeat).

Errors name the token (the k-th ``/``-separated part, counted from 1) and its text:
``token 3 'PMMX 500': unknown material 'PMMX'; did you mean PMMA?``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import (
    LAYER_FIELDS,
    MAX_LAYERS,
    MAX_ROUGHNESS,
    MAX_SLD,
    MAX_THICKNESS,
    Film,
    FilmError,
    Layer,
)
from reflect_core.physics.materials import (
    Material,
    MaterialError,
    bulk_density,
    closest_name,
    find_material,
    formula_sld,
    parse_formula,
)

MAX_TEXT_CHARS = 2000
MAX_REPEAT = 100
EXAMPLE = "Si / SiO2 12 rough 3 / PMMA 500 rough 8 / air"
EXAMPLE_REPEAT = "Si / SiO2 12 / 5 x [PEO 33 / dPS 40] / air"

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
NUMBER = re.compile(_NUMBER)
LENGTH = re.compile(rf"({_NUMBER})(Å|A|nm)?")
UNITS = {"å": 1.0, "a": 1.0, "nm": 10.0}
LABELLED = re.compile(r"([A-Za-z_][\w.#+\-]*)=(.*)")
REPEAT = re.compile(r"(\S+?)\s*[xX×*]\s*\[(.*)\]", re.DOTALL)
ISOTOPE = re.compile(r"(?<=[A-Za-z])\[(\d+)\]")  # H[2] in a formula, not a repeat's bracket
ROUGH_WORDS = ("rough", "roughness", "sigma", "σ")


class FilmTextError(InvalidInput):
    """A line that is not a film; ``token`` (1-based) and ``start`` (character offset) say where."""

    def __init__(self, message: str, token: int | None = None, start: int | None = None):
        super().__init__(message)
        self.token = token
        self.start = start


@dataclass(frozen=True)
class FilmText:
    """What a line built: the film (substrate first), the ties of its repeats, the materials used."""

    film: Film
    ties: tuple[dict, ...] = ()
    materials: tuple[Material, ...] = ()


@dataclass(frozen=True)
class _Part:
    text: str  # stripped
    start: int  # offset of the text in the line
    number: int  # the token, counted from 1
    label: str  # "token 3 'PMMA 500'" (or "token 3 (repeat), layer 2 'dPS 40'")

    def error(self, reason: str) -> FilmTextError:
        return FilmTextError(f"{self.label}: {reason}", self.number, self.start)


@dataclass(frozen=True)
class _Parsed:
    layer: Layer
    material: Material
    given: frozenset  # which of thickness, roughness were written


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "…")


def _mask(text: str) -> str:
    """``text`` with the brackets of isotopes (H[2]) replaced by braces: the same length, and the
    brackets left are those of repeats."""
    return ISOTOPE.sub(lambda m: "{" + m.group(1) + "}", text)


def _split(text: str, offset: int) -> list[tuple[str, int]]:
    """``text`` cut at the ``/`` outside brackets: (piece, offset of the piece's first character)."""
    pieces, depth, begin = [], 0, 0

    def error(reason: str, at: int) -> FilmTextError:
        number = len(pieces) + 1
        return FilmTextError(f"token {number} (character {offset + at + 1}): {reason}", number, offset + at)

    for i, char in enumerate(_mask(text) + "/"):
        if char == "[":
            depth += 1
            if depth > 1:
                raise error("repeats cannot be nested", i)
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise error("']' without a '['", i)
        elif char == "/" and depth == 0:
            piece = text[begin:i]
            pieces.append((piece.strip(), offset + begin + len(piece) - len(piece.lstrip())))
            begin = i + 1
    if depth:
        raise error("'[' is never closed with ']'", _mask(text).rindex("["))
    return pieces


def _number(word: str, part: _Part, what: str) -> float:
    if not NUMBER.fullmatch(word):
        raise part.error(f"{what}: expected a number, got {_quote(word)}")
    value = float(word)
    if value != value or abs(value) == float("inf"):
        raise part.error(f"{what}: must be finite, got {_quote(word)}")
    return value


def _length(words: list[str], i: int, part: _Part, what: str, limit: float) -> tuple[float, int]:
    """A length at ``words[i]`` (Å unless a unit follows, glued or as the next word); (Å, next index)."""
    if i >= len(words):
        raise part.error(f"{what}: a number (Å) must follow")
    match = LENGTH.fullmatch(words[i])
    if not match:
        raise part.error(f"{what}: expected a length in Å, got {_quote(words[i])}")
    unit, i = match.group(2), i + 1
    if unit is None and i < len(words) and words[i].lower() in UNITS:
        unit, i = words[i], i + 1
    value = _number(match.group(1), part, what) * UNITS[(unit or "Å").lower()]
    if value < 0:
        raise part.error(f"{what}: must be ≥ 0 Å, got {value:g}")
    if value > limit:
        raise part.error(f"{what}: {value:g} Å is beyond the physical bound {limit:g} Å")
    return value, i


def _sld(word: str, part: _Part, what: str = "SLD") -> float:
    value = _number(word, part, what)
    if abs(value) > MAX_SLD:
        raise part.error(f"{what}: {value:g} 10⁻⁶ Å⁻² is beyond the physical bound |SLD| ≤ {MAX_SLD:g}")
    return value


def _unknown(word: str) -> str:
    hint = closest_name(word)
    if hint:
        return f"unknown material {word!r}; did you mean {hint}?"
    try:
        parse_formula(word)
    except MaterialError:
        return (f"unknown material {word!r}: not in the materials table; write a formula with its density "
                "(C8H8@1.05, g/cm³) or an SLD (sld 3.5)")
    density = bulk_density(word)
    example = f"{word}@{density:g}" if density else f"{word}@DENSITY"
    return f"{word!r} is not in the materials table: give the formula's density in g/cm³, e.g. {example}"


def _material(words: list[str], part: _Part) -> tuple[Material, int]:
    """The material at the start of ``words``; (material, index of the next word)."""
    first = words[0]
    if first.lower() == "sld":
        if len(words) < 2:
            raise part.error("'sld' must be followed by a number (10⁻⁶ Å⁻²)")
        value = _sld(words[1], part)
        return Material(f"SLD {value:g}", "", None, value), 2
    labelled = LABELLED.fullmatch(first)
    if labelled:
        name, value = labelled.groups()
        if not value:
            raise part.error(f"give the SLD after '=' with no space, e.g. {name}=3.5")
        return Material(name, "", None, _sld(value, part, f"SLD of {name}")), 1
    if NUMBER.fullmatch(first):
        value = _sld(first, part)
        return Material(f"SLD {value:g}", "", None, value), 1
    if "@" in first:
        formula, _, density = first.partition("@")
        try:
            rho = _number(density, part, f"density of {formula or 'the formula'} (g/cm³)")
            return formula_sld(formula, rho), 1
        except MaterialError as exc:
            raise part.error(str(exc)) from None
    found = find_material(first)
    if found is None:
        raise part.error(_unknown(first))
    return found, 1


def _layer(part: _Part) -> _Parsed:
    words = part.text.split()
    material, i = _material(words, part)
    values = {"thickness": 0.0, "roughness": 0.0, "isld": material.isld}
    given = set()

    def once(field: str) -> None:
        if field in given:
            raise part.error(f"{field} is given twice")
        given.add(field)

    while i < len(words):
        word = words[i].lower()
        if word in ROUGH_WORDS:
            once("roughness")
            values["roughness"], i = _length(words, i + 1, part, "roughness", MAX_ROUGHNESS)
        elif word == "isld":
            once("isld")
            if i + 1 >= len(words):
                raise part.error("'isld' must be followed by a number (10⁻⁶ Å⁻²)")
            values["isld"], i = _sld(words[i + 1], part, "iSLD"), i + 2
            if values["isld"] < 0:
                raise part.error(f"iSLD: absorption must be ≥ 0 10⁻⁶ Å⁻², got {values['isld']:g}")
        elif LENGTH.fullmatch(words[i]):
            once("thickness")
            values["thickness"], i = _length(words, i, part, "thickness", MAX_THICKNESS)
        else:
            raise part.error(f"unexpected {_quote(words[i])}; after the material come a thickness (Å), "
                             "'rough R' (Å) and 'isld I' (10⁻⁶ Å⁻²)")
    layer = Layer(material.name, material.sld, values["isld"], values["thickness"], values["roughness"])
    return _Parsed(layer, material, frozenset(given))


def _check_role(parsed: _Parsed, part: _Part, role: str) -> None:
    if role == "substrate" and "thickness" in parsed.given:
        raise part.error("the substrate is semi-infinite: give it no thickness (its 'rough R' is its top interface)")
    if role == "ambient" and parsed.given & {"thickness", "roughness"}:
        raise part.error("the ambient is semi-infinite and on top: give it no thickness or roughness")
    if role == "layer" and "thickness" not in parsed.given:
        raise part.error(f"needs a thickness in Å, e.g. '{part.text} 100'")


def _repeat(part: _Part) -> tuple[int, list[_Part]]:
    masked = _mask(part.text)
    match = REPEAT.fullmatch(masked)
    if not match:
        if "]" in masked and not masked.endswith("]"):
            raise part.error("nothing may follow the ']' of a repeat")
        raise part.error("a repeat is written N x [layer / layer …], e.g. 5 x [PEO 33 / dPS 40]")
    count_text, inner = match.group(1), part.text[match.start(2):match.end(2)]
    if not re.fullmatch(r"\d{1,4}", count_text) or not 1 <= int(count_text) <= MAX_REPEAT:
        raise part.error(f"the repeat count must be a whole number from 1 to {MAX_REPEAT}, got {_quote(count_text)}")
    inner_start = part.start + match.start(2)
    parts = [_Part(text, start, part.number, f"token {part.number} (repeat), layer {k} {_quote(text)}")
             for k, (text, start) in enumerate(_split(inner, inner_start), start=1)]
    for p in parts:
        if not p.text:
            raise p.error("empty (two '/' in a row?)")
    return int(count_text), parts


def parse_film_text(text: str, beam_from: str = "ambient", max_layers: int = MAX_LAYERS) -> FilmText:
    """The film a line describes, with the ties of its repeats; FilmTextError naming the token."""
    if not isinstance(text, str):
        raise FilmTextError(f"film text: expected text, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise FilmTextError(f"film text: at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}")
    if not text.strip():
        raise FilmTextError(f"film text: empty; write the layers substrate first, e.g. {EXAMPLE}")
    max_layers = min(int(max_layers), MAX_LAYERS)
    text = text.replace("\u2212", "-")  # a typographic minus (−0.56), as pasted from papers; same length
    tokens = [_Part(piece, start, k, f"token {k} {_quote(piece)}")
              for k, (piece, start) in enumerate(_split(text, 0), start=1)]
    if len(tokens) < 2:
        raise FilmTextError(f"a film needs at least a substrate and an ambient separated by '/', e.g. {EXAMPLE}", 1, 0)
    for token in tokens:  # a stray '/' first: it makes the layers around it look wrong
        if not token.text:
            raise token.error("empty (two '/' in a row, or one at an end?)")
    groups: list[tuple[int, list[_Parsed]]] = []  # (copies, layers); copies 0 = a plain layer
    n_layers = 0
    for k, token in enumerate(tokens):
        role = "substrate" if k == 0 else "ambient" if k == len(tokens) - 1 else "layer"
        if "[" in _mask(token.text) or "]" in _mask(token.text):
            if role != "layer":
                raise token.error(f"the {role} cannot be a repeat")
            count, parts = _repeat(token)
            parsed = [_layer(p) for p in parts]
            for p, layer in zip(parts, parsed):
                _check_role(layer, p, "layer")
            groups.append((count, parsed))
            n_layers += count * len(parsed)
        else:
            parsed = _layer(token)
            _check_role(parsed, token, role)
            groups.append((0, [parsed]))
            n_layers += 1
        if n_layers > max_layers:
            raise token.error(f"the film would have {n_layers:,} layers or more; at most {max_layers:,} here")
    return _expand(groups, beam_from)


def _expand(groups: list[tuple[int, list[_Parsed]]], beam_from: str) -> FilmText:
    layers: list[Layer] = []
    ties: list[dict] = []
    materials: dict[tuple, Material] = {}
    for copies, parsed in groups:
        for p in parsed:
            materials.setdefault((p.material.name, p.material.sld, p.material.isld), p.material)
        if copies == 0:
            layers.append(parsed[0].layer)
            continue
        first = len(layers)
        for copy in range(1, copies + 1):
            for j, p in enumerate(parsed):
                i = len(layers)
                layers.append(Layer(f"{p.layer.name}#{copy}", p.layer.sld, p.layer.isld, p.layer.thickness,
                                    p.layer.roughness))
                if copy == 1:
                    continue
                for par in LAYER_FIELDS:
                    if par == "roughness" and copy == copies and j == len(parsed) - 1:
                        continue  # its top interface meets the layer after the repeat, not the next copy
                    ties.append({"i": i, "par": par, "same_as": {"i": first + j, "par": par}})
    try:
        film = Film(layers=tuple(layers), beam_from=beam_from)
    except FilmError as exc:
        raise FilmTextError(f"the film: {exc}") from None
    return FilmText(film, tuple(ties), tuple(materials.values()))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _table_name(layer: Layer) -> str | None:
    """The table's name for a layer named after a table material (PEO#2 too) with its SLD and iSLD."""
    known = find_material(re.sub(r"#\d+$", "", layer.name))
    if known and abs(known.sld - layer.sld) < 5e-4 and abs(known.isld - layer.isld) <= 1e-3 * known.isld:
        return known.name
    return None


def film_to_text(film: Film) -> str:
    """The film as one line of this syntax (substrate first; for display: names lose spaces, repeats
    stay expanded, the beam side is not written)."""
    parts = []
    last = len(film.layers) - 1
    for k, layer in enumerate(film.layers):
        text = _table_name(layer)
        if text is None and layer.name == f"SLD {layer.sld:g}":  # a number SLD as this module names it
            text = f"sld {_fmt(layer.sld)}" + (f" isld {_fmt(layer.isld)}" if layer.isld > 0 else "")
        elif text is None:
            label = re.sub(r"[^\w.#+\-]", "", layer.name.replace(" ", "_"))
            if label and not re.match(r"[A-Za-z_]", label):
                label = "_" + label
            text = f"{label}={_fmt(layer.sld)}" if label else f"sld {_fmt(layer.sld)}"
            text += f" isld {_fmt(layer.isld)}" if layer.isld > 0 else ""
        if 0 < k < last:
            text += f" {_fmt(layer.thickness)}"
        if k < last and layer.roughness > 0:
            text += f" rough {_fmt(layer.roughness)}"
        parts.append(text)
    return " / ".join(parts)
