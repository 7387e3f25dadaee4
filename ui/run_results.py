"""Results of a completed training run: test metrics against the baseline, one test
curve in detail, a parity view, the loss curves, the model download and, when the Hub is
configured (HF_TOKEN, HF_REPO_ID), a push of the model and its card to the Hub."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from reflect_core.analysis.verdicts import model_verdict
from reflect_core.base import storage
from reflect_core.base.errors import ReflectError
from reflect_core.data.generate import NR_FILE, SLD_FILE
from reflect_core.formats.curves import Curve
from reflect_core.jobs.runfiles import load_state
from reflect_core.ml.evaluation import recomputed_nr
from reflect_core.ml.meta import META, ModelLoadError, ModelMeta
from reflect_core.ml.predict import predict
from reflect_core.ml.uncertainty import BandError, band_of
from reflect_core.store.bundles import directory_size, zip_directory
from reflect_core.store.hub import model_card
from reflect_core.store.records import MODEL_FOLDER
from reflect_core.viz.figures import loss_figure, parity_figure, profile_comparison_figure, reflectivity_figure

from .session import configured_hub
from .verdict import show_verdict

PARITY_CURVES = 300


@st.cache_data(show_spinner=False, max_entries=8)
def _test_predictions(model_dir: str, data_dir: str, mtime: float):
    """(test index, true NR (n,2,L), true SLD (n,M), predicted SLD (n,M)) for up to PARITY_CURVES test curves."""
    index = np.asarray(ModelMeta.read(model_dir).test_index[:PARITY_CURVES])
    nr = np.load(Path(data_dir) / NR_FILE, mmap_mode="r")[index]
    sld = np.load(Path(data_dir) / SLD_FILE, mmap_mode="r")[index, 1]
    return index, np.asarray(nr), np.asarray(sld), predict(model_dir, nr)[:, 1]


def _metrics_table(metrics: dict) -> pd.DataFrame:
    rows = [("SLD RMSE (10⁻⁶ Å⁻²)", "rmse"), ("SLD MAE (10⁻⁶ Å⁻²)", "mae"),
            ("R² (vs mean training profile)", "r2"),
            ("NR from profile, median |Δlog₁₀R| (decades)", "nr_decades_median")]
    return pd.DataFrame({
        "metric": [label for label, _ in rows],
        "model": [metrics["model"][key] for _, key in rows],
        "baseline (mean training profile)": [metrics["baseline"][key] for _, key in rows],
    })


def render_results(run_dir: Path) -> None:
    model_dir = run_dir / MODEL_FOLDER
    try:
        meta = ModelMeta.read(model_dir)
    except ModelLoadError as exc:
        st.error(f"The trained model cannot be read: {exc}")
        return
    data_dir = storage.data_dir() / meta.data_folder if meta.data_folder else run_dir / "data"
    metrics = meta.metrics
    st.subheader("Results on the held-out test set")
    show_verdict(model_verdict(metrics))
    ratio = metrics["model"]["rmse"] / metrics["baseline"]["rmse"]
    st.caption(f"{metrics['n_test']:,} test curves never used for training, normalisation or model selection. "
               f"Model RMSE is {ratio:.0%} of the baseline's. Normalised MSE {metrics['normalized_mse']:.3g}. "
               f"Best epoch {meta.best_epoch}, {meta.parameters:,} parameters.")
    st.dataframe(_metrics_table(metrics), hide_index=True, width="stretch")

    if not ((data_dir / NR_FILE).is_file() and (data_dir / SLD_FILE).is_file()):
        # A Modal run generated its curves in its container; they stay in its run store (the Hub).
        st.info("This run's training curves are not on this machine (a Modal run keeps them in its run store), "
                "so the per-curve views are not shown; the metrics above and the loss curves are the run's own.")
        st.plotly_chart(loss_figure(meta.history["train"], meta.history["val"]), key=f"history_{run_dir.name}")
    else:
        _test_curve_views(run_dir, model_dir, data_dir, meta)
    _download_and_push(run_dir, model_dir)


def _test_curve_views(run_dir: Path, model_dir: Path, data_dir: Path, meta: ModelMeta) -> None:
    """One chosen test curve (true vs predicted SLD, data vs NR recomputed), the parity plot, the loss curves."""
    index, nr, sld_true, sld_pred = _test_predictions(str(model_dir), str(data_dir),
                                                      (model_dir / META).stat().st_mtime)
    z, q = meta.z, meta.q
    pick = st.number_input(f"Test curve (0–{len(index) - 1})", min_value=0, max_value=len(index) - 1, value=0,
                           key=f"curve_{run_dir.name}")
    r_pred = recomputed_nr(z, sld_pred[pick][None], q, meta.dq, meta.beam_from)[0]
    left, right = st.columns(2)
    try:
        band = band_of(meta.metrics, z.size)
    except BandError as exc:
        band = None
        st.caption(f"No uncertainty band: {exc}.")
    left.plotly_chart(profile_comparison_figure(z, [("ground truth", sld_true[pick]), ("predicted", sld_pred[pick])],
                                                band=band.bounds(sld_pred[pick]) if band is not None else None),
                      key=f"profile_{run_dir.name}")
    if band is not None:
        st.caption(band.describe())
    right.plotly_chart(reflectivity_figure([("recomputed from predicted profile", q, r_pred)],
                                           data=Curve(q=q, r=nr[pick, 1])), key=f"nr_{run_dir.name}")
    left, right = st.columns(2)
    left.plotly_chart(parity_figure(sld_true, sld_pred), key=f"parity_{run_dir.name}")
    history = meta.history
    right.plotly_chart(loss_figure(history["train"], history["val"]), key=f"history_{run_dir.name}")


def _download_and_push(run_dir: Path, model_dir: Path) -> None:
    size = directory_size(model_dir)
    try:
        name = (load_state(run_dir) or {}).get("name")
    except ReflectError:  # unreadable state: the run id still names it
        name = None
    stem = f"model_{storage.file_stem(name, run_dir.name)}"
    st.download_button(f"Download the model directory (zip, {size / 1e6:.1f} MB before compression)",
                       data=lambda: zip_directory(model_dir, stem), file_name=f"{stem}.zip", mime="application/zip")
    _push_button(run_dir.name, model_dir)


def _push_button(run_id: str, model_dir: Path) -> None:
    """'Push to the Hub': the model, its metadata and its model card in one commit to the private repo."""
    hub, problem = configured_hub()
    if hub is None:
        st.button("Push to the Hub", key=f"push_{run_id}", disabled=True)
        st.caption(problem or "The Hub is not configured: set HF_TOKEN and HF_REPO_ID (README, Configuration) "
                              "to keep models in a private Hub repo.")
        return
    if st.button("Push to the Hub", key=f"push_{run_id}", help=f"Upload this model and its card to {hub.repo_id}"):
        try:
            with st.spinner(f"Pushing the model to {hub.repo_id}…"):
                hub.put_model_dir(run_id, model_dir, card=model_card(ModelMeta.read(model_dir), run_id))
        except ReflectError as exc:
            st.error(f"Not pushed: {exc}")
        else:
            st.success(f"Pushed to {hub.repo_id} (private) as runs/{run_id}/model, with its model card.")
