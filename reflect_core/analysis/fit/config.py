"""The fit configuration (/tmp contract, "Fit configuration"): a film, which of its parameters
vary and within which bounds, ties, mixed layers, scale/background and one contrast per dataset.

``FitConfig.parse(raw, n_datasets)`` validates everything once, at the boundary, and raises
``ConfigError`` (an ``InvalidInput``) whose message names the field: ``bounds[2]``, ``ties[0].same_as``,
``mixes[1].phi``, ``contrasts[0].scale``, ... Layer indices count from the substrate (0) to the
ambient (last), as everywhere in the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import FIELD_UNITS, LAYER_FIELDS, MAX_THICKNESS, MAXIMA, Film, film_from_dict

PYREFLECT_DQ = 0.0294855  # FWHM fraction of Q; used when a curve has no dQ column
AMBIENT = "ambient"  # a mix's "b": the contrast's ambient SLD (solvent penetration)
MAX_FREE = 100  # free parameters: each costs one model call per Jacobian column
MAX_SCALE, MAX_BACKGROUND = 100.0, 1.0  # R is ≤ 1: a larger background or scale is a typing slip


class ConfigError(InvalidInput):
    """A fit configuration that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Scalar:
    """A value that is fixed (lo = hi = None) or varies within [lo, hi]."""

    value: float
    lo: float | None = None
    hi: float | None = None

    @property
    def varies(self) -> bool:
        return self.lo is not None

    def to_dict(self) -> dict:
        return {"value": self.value, "bounds": [self.lo, self.hi] if self.varies else None}


@dataclass(frozen=True)
class Bound:
    i: int
    par: str
    lo: float
    hi: float


@dataclass(frozen=True)
class Tie:
    i: int
    par: str
    same_i: int
    same_par: str


@dataclass(frozen=True)
class Mix:
    i: int
    a: float
    b: float | None  # None: the contrast's ambient SLD (a solvent that fills a fraction 1 − φ of the layer)
    phi: Scalar


@dataclass(frozen=True)
class Contrast:
    name: str
    ambient_sld: float  # the last layer's SLD for this dataset
    scale: Scalar
    background: Scalar


@dataclass(frozen=True)
class FitConfig:
    film: Film
    bounds: tuple[Bound, ...]
    ties: tuple[Tie, ...]
    mixes: tuple[Mix, ...]
    contrasts: tuple[Contrast, ...]
    dq: float = PYREFLECT_DQ  # FWHM fraction of Q for curves without a dQ column
    raw_ties: tuple = ()  # the ties as given, for fit.json

    @property
    def n_free(self) -> int:
        """The free parameters: bounded ones, varying φ, and varying scales and backgrounds (ties are not free)."""
        return len(self.bounds) + sum(m.phi.varies for m in self.mixes) + sum(
            c.scale.varies + c.background.varies for c in self.contrasts)

    @classmethod
    def parse(cls, raw, n_datasets: int) -> "FitConfig":
        return parse_config(raw, n_datasets)

    def layer_name(self, i: int) -> str:
        return f"layer {i} ({self.film.layers[i].name})"

    def to_dict(self) -> dict:
        scalar = self.contrasts[0]
        return {
            "film": self.film.to_dict(),
            "bounds": [{"i": b.i, "par": b.par, "bounds": [b.lo, b.hi]} for b in self.bounds],
            "ties": list(self.raw_ties),
            "mixes": [{"i": m.i, "a": m.a, "b": AMBIENT if m.b is None else m.b, "phi": m.phi.to_dict()}
                      for m in self.mixes],
            "scale": scalar.scale.to_dict(), "background": scalar.background.to_dict(), "dq": self.dq,
            "contrasts": [{"name": c.name, "ambient_sld": c.ambient_sld, "scale": c.scale.to_dict(),
                           "background": c.background.to_dict()} for c in self.contrasts],
        }


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {str(value)[:40]!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{where}: the number is too large") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: must be finite, got {value!r}")
    return number


def _pair(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{where}: expected [lo, hi], got {str(value)[:40]!r}")
    lo, hi = _number(value[0], f"{where}[0]"), _number(value[1], f"{where}[1]")
    if lo >= hi:
        raise ConfigError(f"{where}: the lower bound {lo:g} must be below the upper bound {hi:g} "
                          "(a fixed parameter needs no bounds)")
    return lo, hi


def _index(value, where: str, n_layers: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_layers:
        raise ConfigError(f"{where}: must be a layer index 0..{n_layers - 1} (0 = substrate), got {value!r}")
    return value


def _par(value, where: str) -> str:
    if value not in LAYER_FIELDS:
        raise ConfigError(f"{where}: must be one of {', '.join(LAYER_FIELDS)}, got {str(value)[:40]!r}")
    return value


def _object(value, where: str, keys: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object with {keys}")
    return value


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list")
    return list(value)


def _used(film: Film, i: int, par: str) -> str | None:
    """Why the model does not use (i, par), or None when it does."""
    last = len(film.layers) - 1
    if par == "thickness" and i in (0, last):
        return "the substrate's and the ambient's thickness is not used (they are semi-infinite)"
    if par == "roughness" and i == last:
        return "the ambient has no interface above it (roughness of layer k is the k|k+1 interface)"
    incident = last if film.beam_from == "ambient" else 0
    if par == "isld" and i == incident:
        return "the medium the beam comes through is taken as transparent; its absorption is not used"
    return None


def _check_physical(par: str, lo: float, hi: float, where: str) -> None:
    limit = MAXIMA[par]
    low = -limit if par == "sld" else 0.0
    if lo < low or hi > limit:
        raise ConfigError(f"{where}: {par} must stay within [{low:g}, {limit:g}] {FIELD_UNITS[par]}, "
                          f"got [{lo:g}, {hi:g}]")


def _scalar(raw, where: str, default: Scalar, *, positive: bool, upper: float) -> Scalar:
    if raw is None:
        return default
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = {"value": raw}
    raw = _object(raw, where, "value and optional bounds")
    value = _number(raw.get("value", default.value), f"{where}.value")
    lo = hi = None
    if raw.get("bounds") is not None:
        lo, hi = _pair(raw["bounds"], f"{where}.bounds")
    low_value = min(value, lo) if lo is not None else value
    if positive and low_value <= 0:
        raise ConfigError(f"{where}: must be > 0, got {low_value:g}")
    if not positive and low_value < 0:
        raise ConfigError(f"{where}: must be ≥ 0 (a background cannot be negative), got {low_value:g}")
    top = max(value, hi) if hi is not None else value
    if top > upper:
        raise ConfigError(f"{where}: must be ≤ {upper:g}, got {top:g}")
    if lo is not None and not lo <= value <= hi:
        raise ConfigError(f"{where}.value: {value:g} is outside its bounds [{lo:g}, {hi:g}]")
    return Scalar(value, lo, hi)


def _parse_bounds(raw, film: Film) -> tuple[Bound, ...]:
    bounds, seen = [], set()
    for k, entry in enumerate(_list(raw, "bounds")):
        where = f"bounds[{k}]"
        entry = _object(entry, where, "i, par, bounds")
        i = _index(entry.get("i"), f"{where}.i", len(film.layers))
        par = _par(entry.get("par"), f"{where}.par")
        where = f"{where} (layer {i} {film.layers[i].name!r}, {par})"
        if (why := _used(film, i, par)) is not None:
            raise ConfigError(f"{where}: cannot vary: {why}")
        if (i, par) in seen:
            raise ConfigError(f"{where}: this parameter is bounded twice")
        seen.add((i, par))
        lo, hi = _pair(entry.get("bounds"), f"{where}.bounds")
        _check_physical(par, lo, hi, f"{where}.bounds")
        value = getattr(film.layers[i], par)
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: the film's value {value:g} {FIELD_UNITS[par]} is outside the bounds "
                              f"[{lo:g}, {hi:g}]; start inside them")
        bounds.append(Bound(i, par, lo, hi))
    return tuple(bounds)


def _parse_mixes(raw, film: Film) -> tuple[Mix, ...]:
    mixes, seen = [], set()
    for k, entry in enumerate(_list(raw, "mixes")):
        where = f"mixes[{k}]"
        entry = _object(entry, where, "i, a, b, phi")
        i = _index(entry.get("i"), f"{where}.i", len(film.layers))
        if i in seen:
            raise ConfigError(f"{where}: layer {i} is mixed twice")
        seen.add(i)
        a = _number(entry.get("a"), f"{where}.a")
        b = None if entry.get("b") == AMBIENT else _number(entry.get("b"), f"{where}.b")
        for key, sld in (("a", a), ("b", b)):
            if sld is not None and abs(sld) > MAXIMA["sld"]:
                raise ConfigError(f"{where}.{key}: |SLD| must be ≤ {MAXIMA['sld']:g} 10⁻⁶ Å⁻², got {sld:g}")
        phi = _scalar(entry.get("phi"), f"{where}.phi", Scalar(0.5), positive=False, upper=1.0)
        if phi.varies and not (0.0 <= phi.lo and phi.hi <= 1.0):
            raise ConfigError(f"{where}.phi.bounds: φ is a volume fraction within [0, 1], got [{phi.lo:g}, {phi.hi:g}]")
        mixes.append(Mix(i, a, b, phi))
    return tuple(mixes)


def _parse_ties(raw, film: Film) -> tuple[tuple[Tie, ...], tuple]:
    ties, given, seen = [], [], set()
    n = len(film.layers)
    for k, entry in enumerate(_list(raw, "ties")):
        where = f"ties[{k}]"
        entry = _object(entry, where, "i, par, same_as")
        i = _index(entry.get("i"), f"{where}.i", n)
        par = _par(entry.get("par"), f"{where}.par")
        target = _object(entry.get("same_as"), f"{where}.same_as", "i, par")
        j = _index(target.get("i"), f"{where}.same_as.i", n)
        same_par = _par(target.get("par"), f"{where}.same_as.par")
        if (i, par) == (j, same_par):
            raise ConfigError(f"{where}: layer {i} {par} is tied to itself")
        if par != same_par:  # an isld tied to a negative SLD, a roughness to a 2,000 Å thickness: unphysical
            raise ConfigError(f"{where}: a {par} can only be tied to another layer's {par}, not to a {same_par}")
        for side, (li, lp) in (("", (i, par)), (".same_as", (j, same_par))):
            if (why := _used(film, li, lp)) is not None:
                raise ConfigError(f"{where}{side}: layer {li} {lp} cannot be tied: {why}")
        if (i, par) in seen:
            raise ConfigError(f"{where}: layer {i} {par} is tied twice")
        seen.add((i, par))
        ties.append(Tie(i, par, j, same_par))
        given.append({"i": i, "par": par, "same_as": {"i": j, "par": same_par}})
    targets = {(t.i, t.par): (t.same_i, t.same_par) for t in ties}
    for k, tie in enumerate(ties):
        node, path = (tie.i, tie.par), [(tie.i, tie.par)]
        while node in targets:
            node = targets[node]
            if node in path:
                cycle = " → ".join(f"layer {a} {b}" for a, b in path + [node])
                raise ConfigError(f"ties[{k}]: the ties form a cycle ({cycle})")
            path.append(node)
    return tuple(ties), tuple(given)


def _parse_contrasts(raw: dict, film: Film, n_datasets: int) -> tuple[Contrast, ...]:
    scale = _scalar(raw.get("scale"), "scale", Scalar(1.0), positive=True, upper=MAX_SCALE)
    background = _scalar(raw.get("background"), "background", Scalar(0.0), positive=False, upper=MAX_BACKGROUND)
    ambient = film.layers[-1].sld
    if raw.get("contrasts") is None:
        return tuple(Contrast(f"dataset {k}", ambient, scale, background) for k in range(n_datasets))
    entries = _list(raw["contrasts"], "contrasts")
    if len(entries) != n_datasets:
        raise ConfigError(f"contrasts: {len(entries)} contrasts for {n_datasets} datasets; give one contrast per "
                          "dataset, in dataset order (or no 'contrasts' for one per dataset)")
    contrasts = []
    for k, entry in enumerate(entries):
        where = f"contrasts[{k}]"
        entry = _object(entry, where, "name, ambient_sld, scale, background")
        name = entry.get("name", f"dataset {k}")
        if not isinstance(name, str) or len(name) > 100:
            raise ConfigError(f"{where}.name: expected text of at most 100 characters")
        if any(c.name == name for c in contrasts):  # parameters ("<name> scale") and results are named by it
            raise ConfigError(f"{where}.name: {name!r} names another contrast too; give each its own name")
        sld = ambient
        if entry.get("ambient_sld") is not None:
            sld = _number(entry["ambient_sld"], f"{where}.ambient_sld")
            if abs(sld) > MAXIMA["sld"]:
                raise ConfigError(f"{where}.ambient_sld: |SLD| must be ≤ {MAXIMA['sld']:g} 10⁻⁶ Å⁻², got {sld:g}")
        contrasts.append(Contrast(
            name, sld,
            _scalar(entry.get("scale"), f"{where}.scale", scale, positive=True, upper=MAX_SCALE),
            _scalar(entry.get("background"), f"{where}.background", background, positive=False,
                    upper=MAX_BACKGROUND)))
    return tuple(contrasts)


def _check_consistency(config: FitConfig) -> None:
    film, last = config.film, len(config.film.layers) - 1
    bounded = {(b.i, b.par) for b in config.bounds}
    mixed = {m.i for m in config.mixes}
    solvent = {m.i for m in config.mixes if m.b is None}
    for k, tie in enumerate(config.ties):
        if (tie.i, tie.par) in bounded:
            raise ConfigError(f"ties[{k}]: layer {tie.i} {tie.par} is tied, so it cannot also have bounds "
                              "(it takes the value of the parameter it is tied to)")
        if tie.par == "sld" and tie.i in mixed:
            raise ConfigError(f"ties[{k}]: layer {tie.i}'s SLD is set by its mix, so it cannot also be tied")
        if tie.same_par == "sld" and tie.same_i in solvent:
            raise ConfigError(f"ties[{k}]: layer {tie.same_i}'s SLD follows each contrast's solvent (its mix's b is "
                              "the ambient), so no other layer can be tied to it; give that layer the same mix")
    for k, mix in enumerate(config.mixes):
        if (mix.i, "sld") in bounded:
            raise ConfigError(f"mixes[{k}]: layer {mix.i}'s SLD is φ·a + (1−φ)·b, so it cannot also have bounds "
                              "(bound φ instead)")
    if any(c.ambient_sld != film.layers[-1].sld for c in config.contrasts):
        uses = [f"bounds[{k}]" for k, b in enumerate(config.bounds) if (b.i, b.par) == (last, "sld")]
        uses += [f"ties[{k}]" for k, t in enumerate(config.ties)
                 if (last, "sld") in ((t.i, t.par), (t.same_i, t.same_par))]
        uses += [f"mixes[{k}]" for k, m in enumerate(config.mixes) if m.i == last]
        if uses:
            raise ConfigError(f"{uses[0]}: the ambient's SLD is set per contrast (contrasts[].ambient_sld), "
                              "so it cannot also be bounded, tied or mixed")
    total = sum(b.hi - film.layers[b.i].thickness for b in config.bounds if b.par == "thickness")
    if film.total_thickness + total > MAX_THICKNESS:
        raise ConfigError(f"bounds: the upper thickness bounds allow a {film.total_thickness + total:g} Å film; "
                          f"the limit is {MAX_THICKNESS:g} Å")
    n_free = config.n_free
    if n_free == 0:
        raise ConfigError("bounds: nothing varies; give bounds to at least one parameter (or to scale, "
                          "background or a mix's φ)")
    if n_free > MAX_FREE:
        raise ConfigError(f"bounds: {n_free} free parameters; a fit takes at most {MAX_FREE}")


def parse_config(raw, n_datasets: int) -> FitConfig:
    if not isinstance(raw, dict):
        raise ConfigError("a fit configuration must be a JSON object with 'film' and 'bounds'")
    if isinstance(n_datasets, bool) or not isinstance(n_datasets, int) or n_datasets < 1:
        raise ConfigError(f"a fit needs at least one dataset, got {n_datasets!r}")
    if "film" not in raw:
        raise ConfigError("film: missing; a fit configuration starts from a film")
    try:
        film = film_from_dict(raw["film"])
    except InvalidInput as exc:
        raise ConfigError(f"film: {exc}") from None
    dq = _number(raw.get("dq", PYREFLECT_DQ), "dq")
    if not 0.0 <= dq < 1.0:
        raise ConfigError(f"dq: the resolution is a FWHM fraction of Q in [0, 1), got {dq:g}")
    ties, given = _parse_ties(raw.get("ties"), film)
    config = FitConfig(film=film, bounds=_parse_bounds(raw.get("bounds"), film), ties=ties,
                       mixes=_parse_mixes(raw.get("mixes"), film),
                       contrasts=_parse_contrasts(raw, film, n_datasets), dq=dq, raw_ties=given)
    _check_consistency(config)
    return config
