"""The figures that describe a history record, for the history page and exported bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from reflect_core.analysis.fit import FitResult
from reflect_core.analysis.fit_runs import load_saved as load_saved_fit
from reflect_core.analysis.measured import load_saved
from reflect_core.base.errors import InvalidInput, ReflectError
from reflect_core.base.storage import data_dir
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.formats.curves import Curve, q_grid
from reflect_core.jobs.runfiles import load_state
from reflect_core.ml.evaluation import recomputed_nr
from reflect_core.ml.meta import ModelLoadError, ModelMeta
from reflect_core.ml.predict import predict
from reflect_core.ml.uncertainty import BandError, band_of
from reflect_core.physics.film import film_from_dict
from reflect_core.physics.simulate import (
    PYREFLECT_DQ,
    PYREFLECT_NQ,
    PYREFLECT_QMAX,
    PYREFLECT_QMIN,
    CurveSettings,
    check_curve_request,
    check_q_range,
    film_profile,
    film_reflectivity,
)
from reflect_core.store.records import MODEL_FOLDER, model_meta, record_dir
from reflect_core.viz.figures import (
    EXPORT_TEMPLATE,
    loss_figure,
    parity_figure,
    profile_comparison_figure,
    reflectivity_figure,
    sld_figure,
)
from reflect_core.viz.fit_figures import fit_figures


def film_figures(params: dict) -> dict[str, go.Figure]:
    """A saved (or imported) film's curve and profile, within the explorer's bounds: a record's
    parameters are a file a user can bring."""
    film = film_from_dict(params.get("film", params))
    try:
        qmin, qmax = float(params.get("qmin", PYREFLECT_QMIN)), float(params.get("qmax", PYREFLECT_QMAX))
        nq, settings = int(params.get("nq", PYREFLECT_NQ)), CurveSettings(dq=float(params.get("dq", PYREFLECT_DQ)))
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"the film record's Q grid or resolution is not usable: {exc}") from None
    check_q_range(qmin, qmax, nq)
    q = q_grid(qmin, qmax, nq, params.get("spacing", "log"))
    check_curve_request(film, q, settings)
    r = film_reflectivity(film, q, settings)
    z, sld, isld = film_profile(film)
    return {"reflectivity": reflectivity_figure([(film.name or "film", q, r)]), "sld_profile": sld_figure(z, sld, isld)}


RESULT_CURVES = 300  # test curves in the parity plot (as on the Train page)


def training_figures(record: dict, run_dir: Path) -> dict[str, go.Figure]:
    """The loss curves and, when the run's training arrays are at hand, its results on the held-out test
    set: predicted vs true SLD (parity), and the first test curve's profile and recomputed NR."""
    try:
        meta = ModelMeta.read(Path(run_dir) / MODEL_FOLDER)
    except ModelLoadError:
        return {}  # not trained yet, or damaged: no figures rather than a broken page
    figures = {"loss_curves": loss_figure(meta.history["train"], meta.history["val"])} if meta.history else {}
    try:
        shared = shared_test_curves([record])
        nr = np.asarray(shared["nr"][:RESULT_CURVES])
        sld_true = np.asarray(shared["sld"][:RESULT_CURVES, 1])
        sld_pred = predict(Path(run_dir) / MODEL_FOLDER, nr)[:, 1]
    except (ReflectError, OSError, ValueError, IndexError, KeyError):
        return figures  # the arrays are not kept with this run (or a bundle without them): the losses only
    r_pred = recomputed_nr(meta.z, sld_pred[:1], meta.q, meta.dq, meta.beam_from)[0]
    figures["parity_test_set"] = parity_figure(sld_true, sld_pred)
    try:
        band = band_of(meta.metrics, meta.z.size)
    except BandError:
        band = None  # a damaged band: the profiles without it
    figures["test_curve_1_profile"] = profile_comparison_figure(
        meta.z, [("ground truth", sld_true[0]), ("predicted", sld_pred[0])],
        band=band.bounds(sld_pred[0]) if band is not None else None)
    figures["test_curve_1_reflectivity"] = reflectivity_figure(
        [("recomputed from the predicted profile", meta.q, r_pred)], data=Curve(q=meta.q, r=nr[0, 1]))
    return figures


def analysis_figures(files_dir: Path) -> dict[str, go.Figure]:
    saved = load_saved(files_dir)
    if saved is None:
        return {}
    curve, analysis = saved
    return {"sld_profile": sld_figure(analysis.z, analysis.sld, label="predicted SLD", band=analysis.band),
            "reflectivity": reflectivity_figure([("recomputed from the predicted profile", analysis.q, analysis.r)],
                                                data=curve)}


def saved_fit_figures(record: dict) -> dict[str, go.Figure]:
    """A saved (or imported) fit's figures: data and fit, residuals, the profile (with its MCMC band), correlations."""
    try:
        saved = load_saved_fit(record)
        result = FitResult.from_json(saved.fit, saved.curves)
    except (ReflectError, OSError, ValueError, KeyError, TypeError):
        return {}  # damaged or partial: no figures rather than a broken page or bundle
    return fit_figures(saved.fit, result.curves, result.profile)


def figures_for(record: dict, files_dir: Path | None) -> dict[str, go.Figure]:
    if record["kind"] == "film":
        return film_figures(record["params"])
    if record["kind"] == "training" and files_dir is not None:
        return training_figures(record, files_dir)
    if record["kind"] == "analysis" and files_dir is not None:
        return analysis_figures(files_dir)
    if record["kind"] == "fit":
        return saved_fit_figures(record)
    return {}


def standalone_html(figures: dict[str, go.Figure], title: str) -> str:
    """One self-contained interactive HTML page (plotly.js embedded once): opens offline."""
    parts = [f"<h1>{title}</h1>"]
    for i, (name, fig) in enumerate(figures.items()):
        parts.append(f"<h2>{name.replace('_', ' ')}</h2>")
        styled = go.Figure(fig).update_layout(template=EXPORT_TEMPLATE)  # a copy: the caller's figure is unchanged
        parts.append(styled.to_html(full_html=False, include_plotlyjs=(i == 0)))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body>{''.join(parts)}</body></html>")


def overlay_losses(runs: list[tuple[str, dict]]) -> go.Figure:
    """Validation loss of several runs on one log axis (``runs``: (label, history))."""
    fig = go.Figure([go.Scatter(x=np.arange(1, len(h["val"]) + 1), y=h["val"], mode="lines+markers", name=label)
                     for label, h in runs])
    fig.update_layout(xaxis_title="epoch", yaxis_title="validation loss (MSE of normalised SLD)",
                      height=380, margin=dict(l=60, r=20, t=30, b=50))
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def _owner_of_run(run_folder: Path) -> str | None:
    try:
        state = load_state(run_folder)
    except ReflectError:
        return None
    return None if state is None else state["owner"]


def _allowed_folder(named, owner) -> Path | None:
    """``named`` resolved, when it lies inside a run of ``owner`` or inside ``owner``'s uploads."""
    if not isinstance(named, str) or not named or not isinstance(owner, str) or not owner:
        return None
    root = data_dir().resolve()
    try:
        folder = (root / named).resolve()
    except (OSError, ValueError, RuntimeError):
        return None
    runs, uploads = root / "runs", (root / "uploads" / owner).resolve()
    if folder.is_relative_to(uploads) and folder != uploads and uploads.parent == root / "uploads":
        return folder
    if folder.is_relative_to(runs) and folder != runs and _owner_of_run(runs / folder.relative_to(runs).parts[0]) \
            == owner:
        return folder
    return None


def _data_folder(named: str | None, record: dict) -> Path:
    """Where a model's training arrays are: the folder its model.json names when that resolves
    inside a run of the record's owner (under the data directory's runs/) or inside the owner's
    own uploads (a model.json is a file a user can bring), otherwise the record's own ``data/``."""
    folder = _allowed_folder(named, record.get("owner"))
    if folder is not None:
        return folder
    files = record_dir(record)
    if files is None:
        raise ModelLoadError(f"record {record.get('name')!r} has no files, so no test curves")
    return files / "data"


def shared_test_curves(trained: list[dict]) -> dict | None:
    """The test set common to several training records (same data and split), or None if they differ."""
    metas = [model_meta(r) for r in trained]
    first = metas[0]
    if any(m.dataset != first.dataset or m.test_index != first.test_index for m in metas[1:]):
        return None
    data = _data_folder(first.data_folder, trained[0])
    index = np.asarray(first.test_index)
    return {"index": index, "z": first.z,
            "nr": np.load(data / NR_FILE, mmap_mode="r")[index], "sld": np.load(data / SLD_FILE, mmap_mode="r")[index]}


def profile_overlay(trained: list[dict], shared: dict, pick: int) -> go.Figure:
    """Ground truth and every run's prediction for one shared test curve."""
    curves = [("ground truth", np.asarray(shared["sld"][pick, 1]))]
    for record in trained:
        curves.append((record["name"], predict(record_dir(record) / MODEL_FOLDER, shared["nr"][pick:pick + 1])[0, 1]))
    return profile_comparison_figure(shared["z"], curves)
