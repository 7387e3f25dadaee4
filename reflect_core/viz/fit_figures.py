"""Plotly figures of a refinement fit, with units on every axis: the data against the fitted model (R,
R·Q⁴ or both, log scale, error bars from dR, each contrast in its own colour), the residuals in σ, the
SLD profile with the MCMC bands, and the parameters' correlation matrix.

A fitted curve is a ``FittedCurve`` of the fit or any mapping with q, r, dr, r_fit and name; the MCMC
band and the correlations are the fit.json forms (``mcmc.sld_band``, ``correlations``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reflect_core.formats.orso_out import fitted_column, fitted_name
from reflect_core.viz.figures import Q_LABEL, SLD_LABEL, Z_LABEL, _layout, band_traces

COLOURS = qualitative.Plotly
VIEWS = ("R", "RQ4", "both")
R_LABELS = {"R": "R", "RQ4": "R·Q⁴ (Å⁻⁴)"}
RESIDUAL_LABEL = "residual (R − R_fit)/dR (σ)"


def _name(curve, k: int) -> str:
    return fitted_name(curve) or f"data set {k + 1}"


def _colour(k: int) -> str:
    return COLOURS[k % len(COLOURS)]


def _curve_traces(curve, k: int, rq4: bool, legend: bool) -> list[go.Scatter]:
    """The data (markers, error bars) and the fit (line) of one contrast, in its colour. Points with
    R ≤ 0 cannot be drawn on a log axis and are left out."""
    q, r, dr, r_fit = (fitted_column(curve, key) for key in ("q", "r", "dr", "r_fit"))
    factor = q**4 if rq4 else np.ones_like(q)
    keep = r > 0
    name, colour = _name(curve, k), _colour(k)
    data = go.Scatter(x=q[keep], y=(r * factor)[keep], mode="markers", name=f"{name} data", legendgroup=name,
                      showlegend=legend, marker=dict(size=4, color=colour),
                      error_y=None if dr is None else dict(array=(dr * factor)[keep], thickness=1, width=0,
                                                           color=colour))
    fit = go.Scatter(x=q, y=r_fit * factor, mode="lines", name=f"{name} fit", legendgroup=name, showlegend=legend,
                     line=dict(color=colour, width=2))
    return [data, fit]


def fit_figure(curves: Sequence, view: str = "R") -> go.Figure:
    """The data against the fitted model, one colour per contrast: ``view`` "R", "RQ4" (R·Q⁴) or "both"
    (two panels, one Q axis)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if view != "both":
        fig = go.Figure([t for k, c in enumerate(curves) for t in _curve_traces(c, k, view == "RQ4", True)])
        return _layout(fig, Q_LABEL, R_LABELS[view], log_y=True)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, rq4 in ((1, False), (2, True)):
        for k, curve in enumerate(curves):
            for trace in _curve_traces(curve, k, rq4, legend=row == 1):
                fig.add_trace(trace, row=row, col=1)
    _layout(fig, "", R_LABELS["R"], log_y=True)
    fig.update_layout(height=620)
    fig.update_yaxes(title_text=R_LABELS["RQ4"], row=2, col=1)
    fig.update_xaxes(title_text=Q_LABEL, row=2, col=1)
    return fig


def residuals_figure(curves: Sequence) -> go.Figure:
    """(R − R_fit)/dR against Q for the points with dR > 0 (those the fit weighs), with guides at ±1 and ±3 σ."""
    fig = go.Figure()
    for k, curve in enumerate(curves):
        q, r, dr, r_fit = (fitted_column(curve, key) for key in ("q", "r", "dr", "r_fit"))
        used = dr > 0 if dr is not None else np.zeros(q.shape, bool)
        fig.add_trace(go.Scatter(x=q[used], y=(r[used] - r_fit[used]) / dr[used] if used.any() else [],
                                 mode="markers", name=_name(curve, k), marker=dict(size=4, color=_colour(k))))
    for level, dash in ((1, "dash"), (3, "dot")):
        fig.add_hline(y=level, line=dict(color="grey", width=1, dash=dash), annotation_text=f"±{level}σ",
                      annotation_position="top left")
        fig.add_hline(y=-level, line=dict(color="grey", width=1, dash=dash))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    return _layout(fig, Q_LABEL, RESIDUAL_LABEL)


def fit_profile_figure(z: np.ndarray, sld: np.ndarray, band: Mapping | None = None,
                       label: str = "best fit") -> go.Figure:
    """The fitted SLD profile; with ``band`` (fit.json ``mcmc.sld_band``: z, median, lo68, hi68, lo95,
    hi95), the MCMC's 95 % and 68 % intervals as fills and its median."""
    fig = go.Figure()
    if band:
        bz = np.asarray(band["z"], dtype=float)
        fig.add_traces(band_traces(bz, band, "MCMC"))
        fig.add_trace(go.Scatter(x=bz, y=np.asarray(band["median"], float), mode="lines", name="MCMC median",
                                 line=dict(color="rgb(31, 119, 180)", dash="dash")))
    fig.add_trace(go.Scatter(x=z, y=sld, mode="lines", name=label, line=dict(color="black", width=2)))
    return _layout(fig, Z_LABEL, SLD_LABEL)


def correlation_figure(correlations: Mapping) -> go.Figure:
    """The fit.json ``correlations`` ({names, matrix}) as a heatmap from −1 to 1, each cell labelled."""
    names = [str(n) for n in correlations["names"]]
    matrix = np.asarray(correlations["matrix"], dtype=float)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"correlations: a {len(names)}×{len(names)} matrix expected, got {matrix.shape}")
    text = [["" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               text=text, texttemplate="%{text}", colorbar=dict(title="correlation")))
    fig.update_yaxes(autorange="reversed")
    size = max(380, 60 + 40 * len(names))
    _layout(fig, "parameter", "parameter")
    fig.update_layout(height=size)
    return fig


def fit_figures(fit: Mapping, curves: Sequence, profile: tuple | None) -> dict[str, go.Figure]:
    """Every figure of a fit, by name: the fit.json dict, its fitted curves and (z, sld) of contrast 0."""
    figures = {"data_and_fit": fit_figure(curves, "both"), "residuals": residuals_figure(curves)}
    if profile is not None:
        band = (fit.get("mcmc") or {}).get("sld_band")
        figures["sld_profile"] = fit_profile_figure(np.asarray(profile[0]), np.asarray(profile[1]), band)
    if fit.get("correlations"):
        figures["correlations"] = correlation_figure(fit["correlations"])
    return figures
