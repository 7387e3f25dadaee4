"""A fit's data and model as an ORSO reflectivity file (.ort), written by orsopy's own writer.

One ORSO data set per fitted curve (contrast), with the columns Qz (1/angstrom), R, sR (1-sigma
uncertainty: our dR is 1σ already), sQz (the resolution as a 1-sigma width, converted from our FWHM
dQ, and the header says so) and R_fit (the fitted model). Each data set's header holds the fitted
film of its contrast as an ORSO sample model (``data_source.sample.model``: the stack from the beam's
side to the backing, as the ORSO model language and refnx's ``Structure.from_orso`` read it, each
layer's roughness that of its interface toward the beam's side, lengths in angstrom and SLD in
1/angstrom^2), and a ``fit`` entry with χ², the search and every parameter with its uncertainty.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
from orsopy import fileio
from orsopy.fileio import model_language, orso

from reflect_core.base.errors import InvalidInput
from reflect_core.formats.refnx_export import refnx_layers
from reflect_core.physics.film import Film, film_from_dict
from reflect_core.physics.resolution import FWHM_TO_SIGMA
from reflect_core.physics.simulate import PYREFLECT_DQ

R_FIT_COLUMN = "R_fit"
SOFTWARE = "reflect_core"
_FIT_KEYS = ("chi2", "chi2_reduced", "n_points", "n_free", "search")


def orso_sample_model(film: Film, origin: str | None = None) -> model_language.SampleModel:
    """The film as an ORSO sample model: layers named uniquely (names as the stack string can hold them),
    from the beam's side to the backing."""
    layers, names = {}, []
    for name, thickness, sld, isld, roughness in refnx_layers(film):
        key = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "layer"
        key = key if key not in names and not _is_number(key) else f"{key}_{len(names)}"
        names.append(key)
        layers[key] = model_language.Layer(thickness=thickness, roughness=roughness, material=model_language.Material(
            sld=fileio.ComplexValue(sld * 1e-6, isld * 1e-6)))
    return model_language.SampleModel(
        stack=" | ".join(names), layers=layers, origin=origin, reference="ORSO model language | 1.0",
        globals=model_language.ModelParameters(length_unit="angstrom", sld_unit="1/angstrom^2"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fitted_column(curve, key: str) -> np.ndarray | None:
    """A fitted curve's column (q, r, dr, dq, r_fit) as floats, or None: the curve is the fit's ``FittedCurve``
    or any mapping with those keys."""
    value = curve.get(key) if isinstance(curve, Mapping) else getattr(curve, key, None)
    return None if value is None else np.asarray(value, dtype=float)


def fitted_name(curve) -> str | None:
    name = curve.get("name") if isinstance(curve, Mapping) else getattr(curve, "name", None)
    return name if isinstance(name, str) and name.strip() else None


def _table(curve, dq_fraction: float, where: str) -> np.ndarray:
    q, r, r_fit = fitted_column(curve, "q"), fitted_column(curve, "r"), fitted_column(curve, "r_fit")
    if q is None or r is None or r_fit is None or q.ndim != 1 or not q.size == r.size == r_fit.size:
        raise InvalidInput(f"{where}: needs q, r and r_fit of one length")
    dr, dq = fitted_column(curve, "dr"), fitted_column(curve, "dq")
    dr = np.zeros_like(q) if dr is None else dr  # no uncertainty given: written as 0
    fwhm = dq_fraction * q if dq is None else dq
    if dr.shape != q.shape or fwhm.shape != q.shape:
        raise InvalidInput(f"{where}: dr and dq must have one value per point")
    return np.column_stack([q, r, dr, fwhm * FWHM_TO_SIGMA, r_fit])


def _fit_summary(fit: dict, k: int) -> dict:
    """JSON-safe numbers of the fit for data set ``k``'s header."""
    summary = {key: fit.get(key) for key in _FIT_KEYS if fit.get(key) is not None}
    contrasts = fit.get("contrasts") or []
    contrast = contrasts[k] if k < len(contrasts) else {"scale": fit.get("scale"), "background": fit.get("background")}
    summary["contrast"] = {key: contrast.get(key) for key in ("name", "scale", "background", "ambient_sld",
                                                               "n_points", "chi2_reduced") if key in contrast}
    summary["parameters"] = [{key: p.get(key) for key in ("name", "value", "stderr", "bounds")}
                             for p in fit.get("parameters") or []]
    return summary


def fit_orso_text(fit: dict, curves: Sequence, *, dq_fraction: float | None = None,
                  sample_name: str | None = None) -> str:
    """The .ort text of a fit: ``fit`` is the fit.json dict, ``curves`` one fitted curve per contrast
    (``FittedCurve`` or a mapping with q, r, dr, dq (FWHM, or None: ``dq_fraction`` · Q, default the fit's
    "dq" or pyreflect's) and r_fit)."""
    if not curves:
        raise InvalidInput("a fit's ORSO file needs at least one fitted curve")
    films = [film_from_dict(f) for f in (fit.get("films") or [fit["film"]])]
    fraction = float(dq_fraction if dq_fraction is not None else fit.get("dq", PYREFLECT_DQ))
    chi2 = fit.get("chi2_reduced")
    origin = (f"fitted by {SOFTWARE} ({fit.get('search') or 'least squares'})"
              + (f", reduced chi2 {chi2:.6g}" if isinstance(chi2, (int, float)) and math.isfinite(chi2) else ""))
    contrasts = fit.get("contrasts") or []
    datasets = []
    for k, curve in enumerate(curves):
        film = films[min(k, len(films) - 1)]
        header = orso.Orso.empty()
        header.data_source.sample.name = sample_name or film.name or "fitted film"
        header.data_source.sample.model = orso_sample_model(film, origin)
        header.reduction.software.name = SOFTWARE
        header.columns = [
            fileio.Column("Qz", "1/angstrom"), fileio.Column("R"),
            fileio.ErrorColumn("R", error_type="uncertainty", value_is="sigma"),
            fileio.ErrorColumn("Qz", error_type="resolution", value_is="sigma"),
            fileio.Column(R_FIT_COLUMN, physical_quantity="fitted model reflectivity")]
        name = (contrasts[k].get("name") if k < len(contrasts) else None) or fitted_name(curve)
        header.data_set = str(name) if name else k
        info = orso.Orso(header.data_source, header.reduction, header.columns, header.data_set,
                         fit=_fit_summary(fit, k))
        datasets.append(orso.OrsoDataset(info, _table(curve, fraction, f"fitted curve {k + 1}")))
    buffer = io.StringIO()
    orso.save_orso(datasets, buffer, comment=f"data and the model fitted to it ({R_FIT_COLUMN}) by {SOFTWARE}")
    return buffer.getvalue()
