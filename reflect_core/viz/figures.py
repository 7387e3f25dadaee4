"""Plotly figures of curves and profiles, with units on every axis."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

Q_LABEL = "Q (Å⁻¹)"
SLD_LABEL = "SLD (10⁻⁶ Å⁻²)"
Z_LABEL = "z (Å) from the substrate"  # 0 at the substrate's top interface; short enough for narrow columns
EXPORT_TEMPLATE = "plotly_white"  # the look of figures outside the app (HTML bundles)
_FONT = dict(family='"Source Sans", sans-serif', size=12, color="#808495")
# Streamlit's own light chart theme, as its frontend applies it (read from a drawn chart), as a template
# of the figure's own: a chart drawn with theme=None skips the frontend's theming pass on every redraw
# (~20 ms of the explorer's keystroke-to-chart time, bench/bench_browser.py).
APP_TEMPLATE = go.layout.Template(layout=dict(
    font=_FONT, paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
    colorway=["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a", "#6d3fc0",
              "#d5dae5"],
    xaxis=dict(showgrid=False, showline=False, zeroline=False, ticks="", title=dict(font={**_FONT, "size": 14})),
    yaxis=dict(showgrid=True, gridcolor="#e6eaf1", zeroline=True, zerolinecolor="#e6eaf1", showline=False, ticks="",
               title=dict(font={**_FONT, "size": 14})),
    hoverlabel=dict(bgcolor="#FFFFFF", bordercolor="#DCD8D4", font=_FONT),
))


def _layout_dict(x_title: str, y_title: str, log_y: bool) -> dict:
    # Fixed margins (automargin off): with automargin plotly lays a figure out twice on every redraw,
    # measured as half of the explorer's chart time in the browser.
    y_axis = dict(title=dict(text=y_title), automargin=False)
    if log_y:
        y_axis.update(type="log", exponentformat="power")
    return dict(template=APP_TEMPLATE, margin=dict(l=70, r=20, t=30, b=50), height=380,
                legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
                xaxis=dict(title=dict(text=x_title), automargin=False), yaxis=y_axis)


def _figure(traces: list, x_title: str, y_title: str, log_y: bool = False, x_axis: dict | None = None,
            y_axis: dict | None = None, **layout) -> go.Figure:
    """The figure with the app's layout, given as nested dicts to the constructor: update_layout with
    "xaxis_title"-style paths, and plotly's default template, cost ~20 ms per figure on every rerun.
    The small APP_TEMPLATE instead: Streamlit's chart theme restyles it anyway, charts drawn with
    theme=None look the same, and exports replace it with EXPORT_TEMPLATE (viz.report)."""
    merged = _layout_dict(x_title, y_title, log_y)
    merged["xaxis"].update(x_axis or {})
    merged["yaxis"].update(y_axis or {})
    return go.Figure(data=traces, layout={**merged, **layout})


def _layout(fig: go.Figure, x_title: str, y_title: str, log_y: bool = False) -> go.Figure:
    """The same layout on a figure built otherwise (subplots: every y axis logarithmic with ``log_y``)."""
    fig.update_layout(_layout_dict(x_title, y_title, log_y))
    return fig.update_yaxes(type="log", exponentformat="power") if log_y else fig


def reflectivity_figure(curves: list[tuple[str, np.ndarray, np.ndarray]], rq4: bool = False, data=None, *,
                        fresnel=None, log_q: bool = False, q_c: float | None = None) -> go.Figure:
    """``curves``: (label, Q, R). ``rq4`` plots R·Q⁴; ``fresnel`` (a function Q → R_F) plots R/R_F instead;
    ``data`` is an optional Curve with error bars; ``log_q`` a logarithmic Q axis; ``q_c`` marks the
    critical edge."""
    traces = []
    if rq4:
        factor, y_title = (lambda q: q**4), "R·Q⁴ (Å⁻⁴)"
    elif fresnel is not None:
        factor, y_title = (lambda q: 1.0 / fresnel(q)), "R / R_F (Fresnel of the bare backing)"
    else:
        factor, y_title = (lambda q: 1.0), "R"
    if data is not None and data.r is not None:
        keep = data.r > 0  # log axis: non-positive points cannot be drawn
        traces.append(
            go.Scatter(
                x=data.q[keep],
                y=data.r[keep] * factor(data.q[keep]),
                error_y=None if data.dr is None else dict(array=data.dr[keep] * factor(data.q[keep]), thickness=1),
                mode="markers",
                marker=dict(size=4, color="black"),
                name="data",
            )
        )
    for i, (label, q, r) in enumerate(curves):
        traces.append(
            go.Scatter(x=q, y=r * factor(q), mode="lines", name=label, line=dict(dash="dash" if i else "solid"))
        )
    edge = {}
    if q_c is not None:
        x_ref = np.log10(q_c) if log_q else q_c  # shapes and annotations sit in axis units
        edge = dict(shapes=[dict(type="line", xref="x", yref="paper", x0=x_ref, x1=x_ref, y0=0, y1=1,
                                 line=dict(dash="dot", width=1, color="grey"))],
                    annotations=[dict(x=x_ref, y=0, xref="x", yref="paper", text=f" Q_c = {q_c:.4g} Å⁻¹",
                                      showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=11))])
    return _figure(traces, Q_LABEL, y_title, log_y=True, x_axis=dict(type="log") if log_q else None,
                   y_axis=_log_ticks([t.y for t in traces]), **edge)


def _log_ticks(arrays) -> dict:
    """Log-axis ticks whose labels are values: one per decade over wide ranges (plotly's default minor
    labels, a bare "2" or "5", read as values), 1-2-5 with full labels over narrow ones (R/R_F)."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0 or np.log10(values.max() / values.min()) > 3:
        return dict(dtick=1)
    ticks = [m * 10.0**k for k in range(int(np.floor(np.log10(values.min()))), int(np.ceil(np.log10(values.max()))) + 1)
             for m in (1, 2, 5)]
    return dict(tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def band_traces(z: np.ndarray, band, what: str) -> list[go.Scatter]:
    """The 95 % and 68 % intervals of ``band`` (a mapping with lo95, hi95, lo68, hi68 on ``z``) as
    fills, widest first, named "<what> 95 % interval" and so on."""
    traces = []
    for lo, hi, opacity, level in (("lo95", "hi95", 0.18, "95 %"), ("lo68", "hi68", 0.35, "68 %")):
        traces.append(go.Scatter(x=z, y=np.asarray(band[lo], float), mode="lines", line=dict(width=0),
                                 showlegend=False, hoverinfo="skip", legendgroup=level))
        traces.append(go.Scatter(x=z, y=np.asarray(band[hi], float), mode="lines", line=dict(width=0),
                                 fill="tonexty", fillcolor=f"rgba(31, 119, 180, {opacity})",
                                 name=f"{what} {level} interval", legendgroup=level))
    return traces


def sld_figure(z: np.ndarray, sld: np.ndarray, isld: np.ndarray | None = None, label: str = "SLD",
               band=None) -> go.Figure:
    """An SLD profile; with ``band`` (lo68, hi68, lo95, hi95 on ``z``), the network's uncertainty band."""
    traces = (band_traces(z, band, "band") if band is not None else []) + [
        go.Scatter(x=z, y=sld, mode="lines", name=label)]
    if isld is not None and np.any(isld != 0):
        traces.append(go.Scatter(x=z, y=isld, mode="lines", name="iSLD (absorption)", line=dict(dash="dot")))
    return _figure(traces, Z_LABEL, SLD_LABEL)


def loss_figure(train: list, val: list) -> go.Figure:
    """Per-epoch training and validation loss (normalised MSE), log scale."""
    epochs = list(range(1, len(train) + 1))
    return _figure([go.Scatter(x=epochs, y=train, mode="lines+markers", name="training"),
                    go.Scatter(x=epochs, y=val, mode="lines+markers", name="validation")],
                   "epoch (counted from 1)", "loss (MSE of normalised SLD)", log_y=True,
                   x_axis=dict(tick0=1, dtick=max(1, -(-len(epochs) // 10))))  # whole epochs only


def profile_comparison_figure(z: np.ndarray, profiles: list[tuple[str, np.ndarray]], band=None) -> go.Figure:
    """Profiles on one z grid; with ``band`` (lo68, hi68, lo95, hi95), the network's uncertainty band."""
    return _figure((band_traces(z, band, "band") if band is not None else [])
                   + [go.Scatter(x=z, y=sld, mode="lines", name=label, line=dict(dash="dash" if i else "solid"))
                      for i, (label, sld) in enumerate(profiles)], Z_LABEL, SLD_LABEL)


def parity_figure(true: np.ndarray, pred: np.ndarray, max_points: int = 20000) -> go.Figure:
    """Predicted vs true SLD values over the test set (subsampled), with the identity line."""
    true, pred = np.ravel(true), np.ravel(pred)
    if true.size > max_points:
        pick = np.random.default_rng(0).choice(true.size, max_points, replace=False)
        true, pred = true[pick], pred[pick]
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    return _figure([go.Scattergl(x=true, y=pred, mode="markers", marker=dict(size=3, opacity=0.3), name="test values"),
                    go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect", line=dict(color="black"))],
                   "true SLD (10⁻⁶ Å⁻²)", "predicted SLD (10⁻⁶ Å⁻²)")
