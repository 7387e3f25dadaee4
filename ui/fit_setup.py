"""What a fit varies besides the film's bounds: ties between parameters, the contrasts' ambient
SLDs, scale and background, the resolution of curves without a dQ column; and the fit
configuration they make together (the contract's form, as ``FitConfig.parse`` reads it)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from reflect_core.data.prior import free_parameters
from reflect_core.physics.film import FIELD_UNITS, MAX_SLD, Film
from reflect_core.physics.simulate import MAX_DQ, PYREFLECT_DQ
from ui.state import keep, seed

TIES = "fit_ties_table"
MIXES = "fit_mixes_table"
CONTRASTS = "fit_contrasts_table"
SCALING = "fit_scaling_table"


def _editor(name: str, initial: pd.DataFrame, signature=None, **kwargs) -> pd.DataFrame:
    """A data editor whose rows survive reruns and page switches: it starts from the rows last
    edited (or ``initial``), and from ``initial`` again when ``signature`` (what the rows are
    about: the film, the datasets) changes."""
    editor, base, kept, about = (f"{name}_{part}" for part in ("editor", "base", "kept", "for"))
    if st.session_state.get(about) != signature:
        for key in (editor, kept):
            st.session_state.pop(key, None)
        st.session_state[about] = signature
        st.session_state[base] = initial
    elif editor not in st.session_state:  # back on the page: the widget is new, its rows are not
        st.session_state[base] = st.session_state.get(kept, initial)
    edited = st.data_editor(st.session_state[base], key=editor, hide_index=True, width="stretch", **kwargs)
    st.session_state[kept] = edited
    return edited


def _label(film: Film, i: int, par: str) -> str:
    return f"{i}: {film.layers[i].name} · {par}"


def _pairs(film: Film) -> dict[str, tuple[int, str]]:
    return {_label(film, i, par): (i, par) for i, par in free_parameters(film)}


def render_ties(film: Film, initial: list[dict] | None = None) -> list[dict]:
    """Parameters that take another's value (``{"i", "par", "same_as": {"i", "par"}}``); a tied
    parameter is not free. ``initial``: ties that came with the start (repeat units of a film text)."""
    pairs = _pairs(film)
    rows = [{"parameter": _label(film, t["i"], t["par"]),
             "same as": _label(film, t["same_as"]["i"], t["same_as"]["par"])}
            for t in initial or [] if isinstance(t, dict) and isinstance(t.get("same_as"), dict)
            and (t.get("i"), t.get("par")) in pairs.values()
            and (t["same_as"].get("i"), t["same_as"].get("par")) in pairs.values()]
    options = list(pairs)
    edited = _editor(
        TIES, pd.DataFrame(rows, columns=["parameter", "same as"]), (film.to_json(), repr(initial)), num_rows="dynamic",
        column_config={"parameter": st.column_config.SelectboxColumn("parameter", options=options, required=True,
                                                                     help="Takes the value of the other one."),
                       "same as": st.column_config.SelectboxColumn("same as", options=options, required=True)})
    ties = []
    for row in edited.itertuples(index=False):
        target, source = pairs.get(row[0]), pairs.get(row[1])
        if target and source and target != source:
            ties.append({"i": target[0], "par": target[1], "same_as": {"i": source[0], "par": source[1]}})
    return ties


def render_mixes(film: Film) -> list[dict]:
    """Mixed layers (``{"i", "a", "b", "phi": {"value", "bounds"}}``): SLD = φ·a + (1−φ)·b with φ fitted
    in [φ min, φ max], e.g. a blend of two materials; with "B = ambient" ticked, b is each contrast's
    ambient SLD (``"b": "ambient"``: a solvent filling 1 − φ of the layer, the same φ in every contrast)."""
    layers = {f"{i}: {layer.name}": i for i, layer in enumerate(film.layers[1:-1], start=1)}
    sld = f"SLD ({FIELD_UNITS['sld']})"
    columns = ["layer", f"A {sld}", f"B {sld}", "B = ambient", "φ start", "φ min", "φ max"]
    number = {"min_value": -MAX_SLD, "max_value": MAX_SLD, "format": "%.4g", "required": True}
    fraction = {"min_value": 0.0, "max_value": 1.0, "format": "%.3g", "required": True}
    edited = _editor(
        MIXES, pd.DataFrame(columns=columns), film.to_json(), num_rows="dynamic",
        column_config={"layer": st.column_config.SelectboxColumn("layer", options=list(layers), required=True,
                                                                 help="Its SLD becomes φ·A + (1−φ)·B."),
                       columns[1]: st.column_config.NumberColumn(columns[1], **number),
                       columns[2]: st.column_config.NumberColumn(columns[2], **number),
                       columns[3]: st.column_config.CheckboxColumn(
                           columns[3], help="B is each contrast's ambient SLD: a solvent (D2O, H2O…) fills 1 − φ."),
                       **{name: st.column_config.NumberColumn(name, **fraction) for name in columns[4:]}})
    mixes = []
    for row in edited.itertuples(index=False):
        layer, a, b, solvent, phi, lo, hi = row
        if layer in layers and not any(pd.isna(v) for v in (a, phi, lo, hi)) and (solvent or not pd.isna(b)):
            mixes.append({"i": layers[layer], "a": float(a), "b": "ambient" if solvent else float(b),
                          "phi": {"value": float(phi), "bounds": [float(lo), float(hi)] if hi > lo else None}})
    return mixes


def render_scaling(scale: dict, background: dict, signature=None) -> tuple[dict, dict]:
    """Scale and background: value, and bounds when fitted (``{"value", "bounds": [lo, hi] | None}``);
    the table starts from ``scale`` and ``background`` (the start's) whenever ``signature`` changes."""
    def row(name: str, start: dict) -> dict:
        lo, hi = start.get("bounds") or (start["value"], start["value"])
        return {"parameter": name, "value": start["value"], "fit": bool(start.get("bounds")), "min": lo, "max": hi}

    edited = _editor(
        SCALING, pd.DataFrame([row("scale", scale), row("background", background)]), signature,
        disabled=["parameter"],
        column_config={"value": st.column_config.NumberColumn("start", format="%.3g", required=True),
                       "fit": st.column_config.CheckboxColumn("fit", help="Unticked, it stays at its start."),
                       "min": st.column_config.NumberColumn("min", format="%.3g", required=True),
                       "max": st.column_config.NumberColumn("max", format="%.3g", required=True)})
    scale, background = ({"value": float(row.value), "bounds": [float(row.min), float(row.max)] if row.fit else None}
                         for row in edited.itertuples())
    return scale, background


def render_contrasts(film: Film, names: list[str]) -> list[dict] | None:
    """One contrast per dataset, each with its name and ambient SLD (every structure parameter is
    shared); a single dataset is named after its curve and keeps the film's ambient."""
    ambient = film.layers[-1].sld
    stems = [name.rsplit(".", 1)[0][:100] for name in names]
    if len(set(stems)) < len(stems):  # "run.txt" and "run.ort": contrasts need distinct names
        stems = [name[:100] for name in names]
    if len(names) < 2:
        return [{"name": stem, "ambient_sld": ambient} for stem in stems]
    column = f"ambient SLD ({FIELD_UNITS['sld']})"
    initial = pd.DataFrame({"dataset": names, "contrast": stems,
                            column: [ambient] * len(names)})
    edited = _editor(
        CONTRASTS, initial, (tuple(names), ambient), disabled=["dataset"],
        column_config={column: st.column_config.NumberColumn(column, min_value=-MAX_SLD, max_value=MAX_SLD,
                                                             format="%.4g", required=True,
                                                             help="Replaces the ambient layer's SLD for this "
                                                                  "dataset (e.g. D2O 6.36, H2O −0.56).")})
    return [{"name": str(row[1]) or str(row[0]), "ambient_sld": float(row[2])}
            for row in edited.itertuples(index=False)]


def render_resolution(key: str = "fit_dq_percent") -> float:
    """dQ/Q (FWHM) for datasets without their own dQ column, as a fraction."""
    seed(key, 100 * PYREFLECT_DQ, "dq_percent")
    percent = keep(key, st.number_input("dQ/Q for curves without a usable dQ column (FWHM, %)", key=key, min_value=0.0,
                                        max_value=100 * MAX_DQ, format="%.4f", step=0.5))
    return percent / 100


def fit_config(film: Film, bounds: list[dict], ties: list[dict], scale: dict, background: dict,
               contrasts: list[dict] | None, dq: float, mixes: list[dict] | None = None) -> dict:
    """The configuration the fit engine parses; a tied parameter, and a mixed layer's SLD, keep no
    bounds of their own (a mixed layer starts at its mix's SLD)."""
    mixes = mixes or []
    tied = {(t["i"], t["par"]) for t in ties} | {(m["i"], "sld") for m in mixes}
    for m in mixes:
        b = film.layers[-1].sld if m["b"] == "ambient" else m["b"]
        film = film.with_layer(m["i"], sld=m["phi"]["value"] * m["a"] + (1 - m["phi"]["value"]) * b)
    config = {"film": film.to_dict(), "bounds": [b for b in bounds if (b["i"], b["par"]) not in tied],
              "ties": ties, "mixes": mixes, "scale": scale, "background": background, "dq": dq}
    if contrasts is not None:
        config["contrasts"] = contrasts
    return config
