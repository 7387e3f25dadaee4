"""A fitted film as a standalone refnx script: its Structure(s), ReflectModel(s) and Objective, with the
parameters the fit varied free within its bounds, its ties as refnx constraints, and one contrast per data set.

refnx's order and roughness convention (``physics.refnx_bridge``): slabs from the fronting (the beam's
side) to the backing, each slab's roughness that of its interface toward the fronting. Where a value of
ours lands there is found by sending a marked stack through the same conversion the physics cross-checks
use (``refnx_position``), so the script and ``to_refnx_slabs`` cannot disagree. Only the fit's numbers
reach the script, and user text (film, layer and contrast names) only through ``repr``: executing the
script runs no text of the user's.
"""

from __future__ import annotations

import numpy as np

from reflect_core.physics.film import LAYER_FIELDS, Film, film_from_dict, flip_stack
from reflect_core.physics.refnx_bridge import to_refnx_slabs
from reflect_core.physics.simulate import PYREFLECT_DQ

REFNX_FIELDS = ("thick", "sld", "isld", "rough")  # the columns of refnx's slab arrays
ORT_FILE = "fit.ort"


def refnx_layers(film: Film) -> list[tuple[str, float, float, float, float]]:
    """(name, thickness Å, SLD, iSLD 10⁻⁶ Å⁻², roughness Å) from the fronting to the backing; the
    fronting has no roughness, neither it nor the backing a thickness."""
    w = to_refnx_slabs(film.beam_array())
    w[0, 0] = w[-1, 0] = 0.0
    names = [layer.name for layer in film.layers]
    names = names[::-1] if film.beam_from == "ambient" else names  # the beam frame has the beam side last
    return [(name, *(float(v) for v in row)) for name, row in zip(names, w)]


def refnx_position(film: Film, i: int, par: str) -> tuple[int, str] | None:
    """Where layer ``i``'s ``par`` (of ``LAYER_FIELDS``) is in refnx's slabs: (row, field of
    ``REFNX_FIELDS``), or None where refnx has no such number (thickness of the media, the fronting's
    absorption, the ambient's roughness)."""
    mark = np.zeros((len(film.layers), 4))
    mark[i, LAYER_FIELDS.index(par)] = 1.0
    w = to_refnx_slabs(flip_stack(mark) if film.beam_from == "substrate" else mark)
    w[0, 0] = w[-1, 0] = 0.0
    hits = np.argwhere(w != 0)
    return (int(hits[0][0]), REFNX_FIELDS[int(hits[0][1])]) if len(hits) else None


def _contrasts(fit: dict, n_contrasts: int) -> list[list]:
    """[name, ambient SLD, scale, background, scale bounds, background bounds] per contrast. A scale or
    background parameter with ``contrast`` null applies to every contrast without its own."""
    films = [film_from_dict(f) for f in (fit.get("films") or [fit["film"]])]
    listed = fit.get("contrasts") or []
    rows = []
    for k in range(n_contrasts):
        c = listed[k] if k < len(listed) else {}
        film = films[min(k, len(films) - 1)]
        ambient = c.get("ambient_sld", film.layers[-1].sld)
        scale, background = c.get("scale", fit.get("scale", 1.0)), c.get("background", fit.get("background", 0.0))
        rows.append([str(c.get("name") or f"data set {k + 1}"), float(ambient), float(scale), float(background),
                     None, None])
    for p in fit.get("parameters") or []:
        if p.get("par") in ("scale", "background") and p.get("bounds"):
            column = 4 if p["par"] == "scale" else 5
            for k, row in enumerate(rows):
                if p.get("contrast") == k or (p.get("contrast") is None and row[column] is None):
                    row[column] = tuple(float(b) for b in p["bounds"])
    return rows


def _place(film: Film, i, par) -> tuple[int, str] | None:
    if par not in LAYER_FIELDS or not isinstance(i, int) or not 0 <= i < len(film.layers):
        return None
    return refnx_position(film, i, par)


def refnx_script(fit: dict, ort_file: str = ORT_FILE) -> str:
    """The text of a Python script that rebuilds the fit of ``fit`` (the fit.json dict) in refnx."""
    film = film_from_dict(fit["film"])
    contrasts = _contrasts(fit, max(1, len(fit.get("contrasts") or []), len(fit.get("films") or [])))
    vary, mixes = [], []
    for p in fit.get("parameters") or []:
        if (where := _place(film, p.get("i"), p.get("par"))) is not None and p.get("bounds"):
            vary.append((*where, *(float(b) for b in p["bounds"])))
    ties = [(*a, *b) for t in fit.get("ties") or []
            if (a := _place(film, t.get("i"), t.get("par"))) and (b := _place(film, (t.get("same_as") or {}).get("i"),
                                                                            (t.get("same_as") or {}).get("par")))]
    for m in fit.get("mixes") or []:
        if (where := _place(film, m.get("i"), "sld")) is not None:
            phi = m.get("phi") or {}
            fitted = [p["value"] for p in fit.get("parameters") or [] if p.get("par") == "phi" and p.get("i") == m["i"]]
            bounds = tuple(float(b) for b in phi["bounds"]) if phi.get("bounds") else None
            b = None if m.get("b") == "ambient" else float(m["b"])  # None: each contrast's ambient SLD (a solvent)
            mixes.append((where[0], float(m["a"]), b, float(fitted[0] if fitted else phi.get("value", 0.5)), bounds))
    values = {
        "FILM_NAME": film.name, "CHI2_REDUCED": fit.get("chi2_reduced"), "SEARCH": fit.get("search"),
        "LAYERS": refnx_layers(film), "AMBIENT": 0 if film.beam_from == "ambient" else len(film.layers) - 1,
        "CONTRASTS": contrasts, "DQ_PERCENT": 100 * float(fit.get("dq", PYREFLECT_DQ)), "VARY": vary,
        "TIES": ties, "MIXES": mixes, "ORT_FILE": ort_file,
    }
    constants = "\n".join(f"{name} = {_literal(value)}" for name, value in values.items())
    return SCRIPT.replace("@CONSTANTS@", constants)


def _literal(value) -> str:
    """Python source for numbers, strings (through ``repr``), None and lists/tuples of them, one row a line."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return "[\n" + "".join(f"    {_literal(tuple(row))},\n" for row in value) + "]"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else f"float({str(value)!r})"
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


SCRIPT = '''"""A refnx model of a film fitted by reflect_core, with the fit's free parameters and bounds.

Slabs are in refnx's order, from the fronting (the beam's side) to the backing; a slab's roughness is
that of its interface toward the fronting. Thickness and roughness in angstrom, SLD and iSLD in
1e-6 / angstrom^2; DQ_PERCENT is refnx's resolution (FWHM as a percentage of Q), used for data without
per-point resolution. Run it beside the .ort file of the fit (needs refnx and orsopy):
    python refnx_model.py [fit.ort]
"""

import sys

import numpy as np
from refnx.analysis import GlobalObjective, Objective, Parameter
from refnx.dataset import Data1D
from refnx.reflect import SLD, ReflectModel, Slab, Structure

@CONSTANTS@
# LAYERS: (name, thickness, SLD, iSLD, roughness); CONTRASTS: (name, ambient SLD, scale, background,
# scale bounds, background bounds); VARY: (slab, field, lower, upper); TIES: (slab, field) takes the value
# of (slab, field); MIXES: (slab, a, b, phi, phi bounds): that slab's SLD = phi * a + (1 - phi) * b, with
# b None meaning each contrast's ambient SLD (a solvent filling a fraction 1 - phi of the layer).
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))


def _parameter(slab, field):
    return {"thick": slab.thick, "sld": slab.sld.real, "isld": slab.sld.imag, "rough": slab.rough}[field]


def build_slabs():
    """The fitted slabs with refnx parameters: the varied ones free within their bounds, ties constrained;
    and the solvent mixes, {slab: (phi, a)}, whose SLD each contrast sets (build_structures)."""
    slabs = [Slab(thick, SLD(complex(sld, isld), name=name), rough, name=name)
             for name, thick, sld, isld, rough in LAYERS]
    for row, field, lower, upper in VARY:
        _parameter(slabs[row], field).setp(vary=True, bounds=(lower, upper))
    for row, field, source, source_field in TIES:
        _parameter(slabs[row], field).constraint = _parameter(slabs[source], source_field)
    solvent = {}
    for row, a, b, phi, bounds in MIXES:
        fraction = Parameter(phi, name=f"{LAYERS[row][0]} - phi", vary=bounds is not None, bounds=bounds)
        if b is None:
            solvent[row] = (fraction, a)
        else:
            slabs[row].sld.real.constraint = fraction * a + (1 - fraction) * b
    return slabs, solvent


def build_structures():
    """One Structure per contrast; they share every parameter but the ambient medium's SLD (and the SLD of
    layers a solvent fills, which follows it)."""
    slabs, solvent = build_slabs()
    structures = []
    for name, ambient_sld, *_ in CONTRASTS:
        own = list(slabs)
        ambient = slabs[AMBIENT].sld.real
        if len(CONTRASTS) > 1:
            shared = slabs[AMBIENT]
            ambient = Parameter(ambient_sld, name=f"{name} - ambient sld")
            own[AMBIENT] = Slab(shared.thick, SLD([ambient, shared.sld.imag], name=f"{name} ambient"), shared.rough,
                                name=f"{name} ambient")
        for row, (fraction, a) in solvent.items():
            shared = slabs[row]
            real = Parameter(shared.sld.real.value, name=f"{name} - {LAYERS[row][0]} sld")
            real.constraint = fraction * a + (1 - fraction) * ambient
            own[row] = Slab(shared.thick, SLD([real, shared.sld.imag], name=LAYERS[row][0]), shared.rough,
                            name=LAYERS[row][0])
        structures.append(Structure(own, name=name))
    return structures


def build_models():
    """A ReflectModel per contrast, with its scale and background (free within bounds where the fit varied them)."""
    models = []
    for structure, (name, _, scale, background, scale_bounds, background_bounds) in zip(build_structures(), CONTRASTS):
        model = ReflectModel(structure, scale=scale, bkg=background, dq=DQ_PERCENT, name=name)
        if scale_bounds is not None:
            model.scale.setp(vary=True, bounds=scale_bounds)
        if background_bounds is not None:
            model.bkg.setp(vary=True, bounds=background_bounds)
        models.append(model)
    return models


def load_ort(path=ORT_FILE):
    """The data sets of the fit's .ort file as refnx Data1D (Q, R, dR, dQ as FWHM), in contrast order."""
    from orsopy.fileio import orso

    found = []
    for dataset in orso.load_orso(path):
        q, r, dr, sigma_q = np.asarray(dataset.data, dtype=float)[:, :4].T  # as reflect_core writes it
        keep = dr > 0  # as in reflect_core's chi2: a point without an uncertainty carries no weight
        found.append(Data1D((q[keep], r[keep], dr[keep], sigma_q[keep] * FWHM_PER_SIGMA)))
    return found


def build_objective(datasets):
    """An Objective for one data set, a GlobalObjective for several (in CONTRASTS' order)."""
    objectives = [Objective(model, data) for model, data in zip(build_models(), datasets)]
    return objectives[0] if len(objectives) == 1 else GlobalObjective(objectives)


if __name__ == "__main__":
    objective = build_objective(load_ort(sys.argv[1] if len(sys.argv) > 1 else ORT_FILE))
    print(objective)
    print(f"chi2 = {objective.chisqr():.6g}; reflect_core's reduced chi2 was {CHI2_REDUCED}")
'''
