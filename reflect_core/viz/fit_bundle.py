"""A fit's results as one zip, built in memory for download: fit.json; curve_K.csv (Q, R, dR, R_fit) per
data set, K from 0 as the fit's run folders number them; profile.csv (z, sld, and the MCMC band's
columns when there is one); fit.ort (the data, resolution and model curve with the fitted film in its
header, ``formats.orso_out``); refnx_model.py (``formats.refnx_export``); and figures.html, every
figure on one page with plotly.js embedded once, so it opens offline (about 4.8 MB of it is plotly.js,
about 1.5 MB once compressed).

Bounded: at most ``MAX_CURVES`` data sets of ``MAX_POINTS`` points and ``MAX_PROFILE_POINTS`` profile
points, so the archive stays under ``MAX_BUNDLE_BYTES``."""

from __future__ import annotations

import html
import io
import json
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.formats.curves import csv_text
from reflect_core.formats.orso_out import fit_orso_text, fitted_column
from reflect_core.formats.refnx_export import refnx_script
from reflect_core.viz.fit_figures import fit_figures
from reflect_core.viz.report import standalone_html

FIT_JSON, PROFILE_CSV, ORT_NAME, SCRIPT_NAME, FIGURES_HTML = (
    "fit.json", "profile.csv", "fit.ort", "refnx_model.py", "figures.html")
MAX_CURVES = 20  # as many data sets as one ORSO upload may hold
MAX_POINTS = 20_000  # per data set; measured curves have a few hundred
MAX_PROFILE_POINTS = 20_000
MAX_BUNDLE_BYTES = 50_000_000  # compressed: plotly.js (~1.5 MB) plus the data at their limits, with room
BAND_COLUMNS = ("median", "lo68", "hi68", "lo95", "hi95")


def curve_csv_name(k: int) -> str:
    return f"curve_{k}.csv"


def curve_csv(curve) -> str:
    """Q, R, dR, R_fit of one fitted curve (dR as 0 where the curve has none)."""
    q, r, dr, r_fit = (fitted_column(curve, key) for key in ("q", "r", "dr", "r_fit"))
    return csv_text(["Q", "R", "dR", "R_fit"], [q, r, np.zeros_like(q) if dr is None else dr, r_fit])


def profile_csv(z, sld, band: Mapping | None = None) -> str:
    """z, sld of the fitted profile; with an MCMC band on the same z grid, its median and 68/95 % bounds too
    (a band on another grid is interpolated onto the profile's z)."""
    z, sld = np.asarray(z, dtype=float), np.asarray(sld, dtype=float)
    header, columns = ["z", "sld"], [z, sld]
    if band:
        bz = np.asarray(band["z"], dtype=float)
        for key in BAND_COLUMNS:
            values = np.asarray(band[key], dtype=float)
            header.append(f"sld_{key}")
            columns.append(values if bz.shape == z.shape and np.allclose(bz, z) else np.interp(z, bz, values))
    return csv_text(header, columns)


def _check_sizes(curves: Sequence, profile) -> None:
    if not 1 <= len(curves) <= MAX_CURVES:
        raise InvalidInput(f"a fit bundle holds 1 to {MAX_CURVES} fitted curves, got {len(curves)}")
    for k, curve in enumerate(curves):
        q = fitted_column(curve, "q")
        if q is None or q.size > MAX_POINTS:
            raise InvalidInput(f"fitted curve {k + 1}: {0 if q is None else q.size:,} points; at most {MAX_POINTS:,}")
    if profile is not None and np.size(profile[0]) > MAX_PROFILE_POINTS:
        raise InvalidInput(f"the profile has {np.size(profile[0]):,} points; at most {MAX_PROFILE_POINTS:,}")


def fit_bundle(fit: dict, curves: Sequence, profile: tuple | None = None, *, title: str = "Refinement fit",
               figures: bool = True) -> bytes:
    """The zip of a fit: ``fit`` the fit.json dict, ``curves`` its fitted curves (``FittedCurve`` or mappings
    with q, r, dr, dq, r_fit, name), ``profile`` (z, sld) of contrast 0. ``figures=False`` leaves out
    figures.html (and its 4.8 MB of plotly.js)."""
    _check_sizes(curves, profile)
    band = (fit.get("mcmc") or {}).get("sld_band")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(FIT_JSON, json.dumps(fit, indent=1, allow_nan=False))
        for k, curve in enumerate(curves):
            archive.writestr(curve_csv_name(k), curve_csv(curve))
        if profile is not None:
            archive.writestr(PROFILE_CSV, profile_csv(profile[0], profile[1], band))
        archive.writestr(ORT_NAME, fit_orso_text(fit, curves))
        archive.writestr(SCRIPT_NAME, refnx_script(fit, ORT_NAME))
        if figures:
            archive.writestr(FIGURES_HTML, standalone_html(fit_figures(fit, curves, profile), html.escape(title)))
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:  # unreachable within the limits above; a guard, not a plan
        raise InvalidInput(f"the fit bundle is {len(data):,} bytes, over the {MAX_BUNDLE_BYTES:,}-byte limit")
    return data
