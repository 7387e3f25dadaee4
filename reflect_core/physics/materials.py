"""Neutron SLDs of materials: from a chemical formula and a mass density, and a small table.

Units (DESIGN.md): SLD and iSLD in 10⁻⁶ Å⁻², density in g/cm³.

The calculation is periodictable's (``periodictable.formulas.formula(...).neutron_sld``):
SLD = Σ b_c · (number density), with the bound coherent scattering lengths of its table
(Rauch & Waschkowski 2000 and later measurements, not Sears 1992: gold and titanium differ by
2–4 %, see tests/test_materials.py). The iSLD is the absorption only (no incoherent part, as
refl1d and our kernel expect) at the thermal wavelength ``WAVELENGTH`` = 1.798 Å (2200 m/s, the
wavelength absorption cross sections are tabulated at); absorption grows linearly with wavelength,
so at 6 Å it is about 3.3 times larger. Deuterium is ``D`` or ``H[2]``; other isotopes ``El[A]``.

periodictable is imported only when a formula is computed: the table below holds its results
(periodictable 2.1.0, checked against it by the tests), so the table works without it.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from reflect_core.base.errors import InvalidInput
from reflect_core.physics.film import MAX_SLD

WAVELENGTH = 1.798  # Å: periodictable's ABSORPTION_WAVELENGTH, the thermal (2200 m/s) convention
MAX_DENSITY = 25.0  # g/cm³: the densest solids at ambient pressure are osmium (22.59) and iridium
# (22.56); anything denser is a typing slip (a molar mass, kg/m³) rather than a material.
MAX_FORMULA_CHARS = 100
FORMULA_CHARS = re.compile(r"[A-Za-z0-9\[\]().+]+")  # elements, counts, isotopes El[A], groups, hydrates (+)


class MaterialError(InvalidInput):
    """A formula, density or material name that gives no SLD; the message names it."""


@dataclass(frozen=True)
class Material:
    """A material and its neutron SLD. ``density`` is None for an SLD given as a number."""

    name: str
    formula: str  # "" for vacuum and for a number SLD
    density: float | None  # g/cm³
    sld: float  # 10⁻⁶ Å⁻²
    isld: float = 0.0  # 10⁻⁶ Å⁻², absorption at WAVELENGTH
    source: str = ""  # where the density comes from
    aliases: tuple[str, ...] = ()


_CRC = "CRC Handbook of Chemistry and Physics, 97th ed. (room temperature)"
_POLY = "Polymer Handbook, 4th ed. (amorphous, room temperature)"
_DEUT = "the protonated density × (deuterated / protonated molar mass): same molar volume"

# name, formula, density (g/cm³), SLD, iSLD (periodictable 2.1.0 at 1.798 Å), source, aliases
MATERIALS: tuple[Material, ...] = (
    Material("air", "", 0.0, 0.0, 0.0, "vacuum; air's SLD is ~0.0003 (N2/O2 at 0.0012 g/cm³)", ("vacuum",)),
    Material("Si", "Si", 2.329, 2.0729, 2.37e-05, _CRC, ("silicon",)),
    Material("SiO2", "SiO2", 2.2, 3.4748, 1.05e-05, "amorphous silica / thermal oxide, CRC", ("siox",)),
    Material("quartz", "SiO2", 2.648, 4.1824, 1.26e-05, _CRC + ", crystalline", ()),
    Material("Al2O3", "Al2O3", 3.98, 5.7144, 3.02e-05, _CRC + ", sapphire", ("sapphire",)),
    Material("Au", "Au", 19.32, 4.6665, 0.0162, _CRC, ("gold",)),
    Material("Ag", "Ag", 10.49, 3.4682, 0.0103, _CRC, ("silver",)),
    Material("Cr", "Cr", 7.19, 3.0270, 0.000706, _CRC, ("chromium",)),
    Material("Ti", "Ti", 4.506, -1.9105, 0.00096, _CRC, ("titanium",)),
    Material("Ni", "Ni", 8.908, 9.4141, 0.00114, _CRC + " (nuclear SLD; Ni is magnetic)", ("nickel",)),
    Material("Cu", "Cu", 8.96, 6.5535, 0.000893, _CRC, ("copper",)),
    Material("Al", "Al", 2.70, 2.0785, 3.87e-05, _CRC, ("aluminium", "aluminum")),
    Material("Fe", "Fe", 7.874, 8.0241, 0.000604, _CRC + " (nuclear SLD; Fe is magnetic)", ("iron",)),
    Material("Pt", "Pt", 21.45, 6.3566, 0.0019, _CRC, ("platinum",)),
    Material("D2O", "D2O", 1.1044, 6.3562, 1.13e-07, _CRC + ", 25 °C", ("heavy-water",)),
    Material("H2O", "H2O", 0.997, -0.5593, 6.17e-05, _CRC + ", 25 °C", ("water",)),
    Material("hPS", "C8H8", 1.05, 1.4116, 4.54e-05, _POLY, ("PS", "h-PS", "polystyrene", "h-polystyrene")),
    Material("dPS", "C8D8", 1.13, 6.4606, 5.42e-07, _DEUT + " (fully deuterated)", ("d-PS", "d-polystyrene")),
    Material("PMMA", "C5H8O2", 1.18, 1.0587, 5.29e-05, _POLY, ("hPMMA", "h-PMMA")),
    Material("dPMMA", "C5D8O2", 1.27, 6.9426, 4.33e-07, _DEUT + " (fully deuterated)", ("d-PMMA",)),
    Material("PEO", "C2H4O", 1.13, 0.6387, 5.75e-05, _POLY, ("hPEO", "h-PEO", "PEG")),
    Material("dPEO", "C2D4O", 1.23, 7.0518, 3.97e-07, _DEUT + " (fully deuterated)", ("d-PEO",)),
    Material("PDMS", "C2H6OSi", 0.965, 0.0630, 4.74e-05, _POLY, ()),
    Material("toluene", "C7H8", 0.867, 0.9408, 4.23e-05, _CRC, ()),
    Material("d-toluene", "C7D8", 0.943, 5.6610, 4.52e-07, _CRC + " (toluene-d8)", ("toluene-d8",)),
)
_BY_NAME = {n.lower(): m for m in MATERIALS for n in (m.name, *m.aliases)}


def material_names() -> list[str]:
    """Every name the table answers to (names and aliases), as written."""
    return [n for m in MATERIALS for n in (m.name, *m.aliases)]


def find_material(name: str) -> Material | None:
    """The table entry for ``name`` (case-insensitive, aliases too), or None."""
    return _BY_NAME.get(str(name).strip().lower())


def closest_name(name: str) -> str | None:
    """The table's canonical name closest to a misspelt ``name``, or None."""
    lowered = {n.lower(): n for n in material_names()}
    match = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return find_material(lowered[match[0]]).name if match else None


def material(name: str) -> Material:
    """The table entry for ``name``; MaterialError with the closest name otherwise."""
    found = find_material(name)
    if found is None:
        hint = closest_name(name)
        raise MaterialError(f"unknown material {name!r}" + (f"; did you mean {hint}?" if hint else ""))
    return found


def check_density(density) -> float:
    """A mass density in g/cm³, > 0 and ≤ MAX_DENSITY; MaterialError otherwise."""
    if isinstance(density, bool) or density is None:
        raise MaterialError(f"density: expected a number in g/cm³, got {density!r}")
    try:
        value = float(density)
    except (TypeError, ValueError, OverflowError):
        raise MaterialError(f"density: expected a number in g/cm³, got {str(density)[:40]!r}") from None
    if not math.isfinite(value):
        raise MaterialError(f"density: must be finite, got {density!r}")
    if value <= 0:
        raise MaterialError(f"density: must be > 0 g/cm³, got {value:g} (for vacuum use 'air' or an SLD of 0)")
    if value > MAX_DENSITY:
        raise MaterialError(f"density: {value:g} g/cm³ is beyond the physical bound {MAX_DENSITY:g} g/cm³ "
                            "(osmium, the densest element, is 22.6)")
    return value


def parse_formula(formula: str):
    """periodictable's Formula for ``formula``; MaterialError naming it otherwise."""
    if not isinstance(formula, str):
        raise MaterialError(f"formula: expected text, got {type(formula).__name__}")
    text = formula.strip()
    if not text:
        raise MaterialError("formula: empty; write one such as C8H8, D2O or H[2]2O")
    if len(text) > MAX_FORMULA_CHARS:
        raise MaterialError(f"formula: at most {MAX_FORMULA_CHARS} characters, got {len(text):,}")
    bad = FORMULA_CHARS.sub("", text)
    if bad:
        raise MaterialError(f"formula {text!r}: unexpected character {bad[0]!r} "
                            "(write elements and counts, e.g. C5H8O2; isotopes as H[2] or D)")
    try:
        from periodictable.formulas import formula as make_formula
        from pyparsing import ParseBaseException
    except ImportError:  # pragma: no cover - periodictable is in the requirements
        raise MaterialError("formula SLDs need the 'periodictable' package (pip install periodictable); "
                            "use a material from the table or an SLD number") from None
    try:
        parsed = make_formula(text)
    except ParseBaseException:
        raise MaterialError(f"formula {text!r}: not a chemical formula (elements with a capital letter "
                            "and counts, e.g. C5H8O2; groups in ( ); deuterium D or H[2])") from None
    except (ValueError, KeyError) as exc:  # unknown element; "99 is not an isotope of H"
        message = str(exc).strip("'\"")
        raise MaterialError(f"formula {text!r}: {message}") from None
    if not parsed.atoms or sum(parsed.atoms.values()) <= 0:
        raise MaterialError(f"formula {text!r}: has no atoms")
    missing = [str(el) for el in parsed.atoms if not el.neutron.has_sld()]
    if missing:
        raise MaterialError(f"formula {text!r}: no neutron scattering length is tabulated for {', '.join(missing)}")
    return parsed


def formula_sld(formula: str, density, name: str | None = None) -> Material:
    """SLD and iSLD (10⁻⁶ Å⁻², absorption at 1.798 Å) of ``formula`` at ``density`` g/cm³."""
    rho = check_density(density)
    parsed = parse_formula(formula)
    from periodictable.nsf import neutron_scattering

    text = formula.strip()
    (sld, isld, _incoherent), _xs, _depth = neutron_scattering(parsed, density=rho, wavelength=WAVELENGTH)
    sld, isld = float(sld), float(isld)
    if not (math.isfinite(sld) and math.isfinite(isld)) or abs(sld) > MAX_SLD or isld > MAX_SLD:
        raise MaterialError(f"formula {text!r} at {rho:g} g/cm³: SLD {sld:g}, iSLD {isld:g} "
                            f"10⁻⁶ Å⁻² is beyond the physical bound {MAX_SLD:g}")
    return Material(name or text, text, rho, sld, isld, f"computed with periodictable at {WAVELENGTH} Å")


def bulk_density(formula: str) -> float | None:
    """periodictable's bulk density (g/cm³) of a single element, e.g. 7.874 for Fe; else None."""
    try:
        parsed = parse_formula(formula)
    except MaterialError:
        return None
    if len(parsed.atoms) != 1:
        return None
    density = next(iter(parsed.atoms)).density
    return float(density) if density and 0 < density <= MAX_DENSITY else None
