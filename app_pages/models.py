"""Models and data: upload training arrays, measured curves and models; see model cards;
predict an SLD profile for a measured curve. Every stored curve and model renders on its
own: one that cannot be read shows why, with a Delete button, and the rest still works.
Models of the user's runs kept on the Hub (when configured) are listed too, tagged "from the
Hub", and downloaded on first use; the Hub listing runs in a background thread, the page waits
for it at most HUB_LIST_WAIT_S and keeps it for HUB_LIST_TTL_S, so an unreachable Hub costs one
short wait and one caption. The built-in models (``reflect_core.ml.builtin``: shipped in the
package, trained on the default prior) are listed after the user's own, for every user, tagged
"built-in", with their model card; they are never deletable and never written to."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import streamlit as st

from reflect_core.accounts import rate_limit
from reflect_core.accounts.limits import LimitError, check_upload_size
from reflect_core.analysis.measured import analyse_with_model, has_own_resolution, profile_csv, save_analysis
from reflect_core.analysis.verdicts import fit_verdict, model_verdict
from reflect_core.base.errors import ReflectError
from reflect_core.ml.builtin import BuiltinModel, builtin_models
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.predict import PredictError
from reflect_core.ml.uncertainty import BandError, band_of
from reflect_core.store import records, user_curves, user_files
from reflect_core.store.user_files import human_bytes
from reflect_core.uploads import UploadError, validate_upload
from reflect_core.uploads.curves import validate_curves
from reflect_core.viz.figures import reflectivity_figure, sld_figure
from ui.manage import manage_buttons, show_message
from ui.overlay import forget_labels
from ui.session import configured_hub, current_limits, current_user, rate_limit_per_minute, sees_everyone
from ui.verdict import show_verdict

user, limits = current_user(), current_limits()
st.title("Models and data")
st.caption(f"Uploads are checked before they are kept (limit {limits.upload_bytes / 1e6:,.0f} MB per file, "
           f"{limits.profile} profile) and stay private to you.")
HUB_LISTING, HUB_LIST_WAIT_S, HUB_LIST_TTL_S = "models_hub_listing", 0.5, 60.0


def _list_into(future: Future, hub) -> None:
    try:
        future.set_result(hub.list_models())  # bounded by the store's own timeout
    except BaseException as exc:  # noqa: BLE001 - shown as the page's one Hub caption
        future.set_exception(exc)


def hub_listing(hub) -> tuple[list[str], str | None]:
    """Run ids with a model on the Hub and the problem, if any. Asked in a background thread at most once per
    HUB_LIST_TTL_S; the page waits for it at most HUB_LIST_WAIT_S and shows the answer on a later run."""
    cached = st.session_state.get(HUB_LISTING)
    if not cached or cached[1] != hub.repo_id or time.monotonic() - cached[0] > HUB_LIST_TTL_S:
        cached = (time.monotonic(), hub.repo_id, Future())
        threading.Thread(target=_list_into, args=(cached[2], hub), name="hub listing", daemon=True).start()
        st.session_state[HUB_LISTING] = cached
    try:
        return cached[2].result(timeout=HUB_LIST_WAIT_S), None
    except TimeoutError:
        return [], "the Hub has not answered yet (it may be unreachable); they appear here when it does"
    except ReflectError as exc:
        return [], str(exc)


def accept(upload, role: str):
    """The validated upload, or None after showing why it was refused (nothing is kept then)."""
    try:
        check_upload_size(upload.size, limits, upload.name)
        rate_limit.hit(user.name, "upload", rate_limit_per_minute("upload"))
        if role == "curves":  # a measured-curve file of one data set or several (ORSO)
            return validate_curves(upload.name, upload.getvalue(), limits.upload_bytes)
        return validate_upload(upload.name, upload.getvalue(), role, limits.upload_bytes)
    except (UploadError, LimitError, rate_limit.RateLimitError) as exc:
        st.error(f"Not kept: {exc}")
        return None


def once(upload) -> bool:
    """True the first time a given uploaded file is seen (reruns must not redo an upload)."""
    seen = st.session_state.setdefault("models_seen_uploads", set())
    if upload is None or upload.file_id in seen:
        return False
    seen.add(upload.file_id)
    return True


def forget_hub_listing() -> None:
    st.session_state.pop(HUB_LISTING, None)


def _rename_curve(name: str, label: str) -> None:
    user_curves.rename_curve(user, name, label)
    forget_labels()


def _delete_curve(name: str) -> None:
    user_curves.delete_curve(user, name)
    forget_labels()


def curve_row(name: str):
    """One stored curve on its own line, with Rename and Delete; its Curve, or None when it cannot be read."""
    c = st.columns([5, 2], vertical_alignment="center")
    label = user_curves.curve_label(user, name)
    manage_buttons(c[1], f"curve_{name}", f"curve '{label}'", label.removesuffix(f" ({name})"),
                   lambda new: _rename_curve(name, new), lambda: _delete_curve(name),
                   "Its stored file goes; the fits and records made from it keep their own results.")
    try:
        curve = user_curves.load_curve(user, name)
    except (ReflectError, OSError) as exc:
        c[0].error(f"**{name}** cannot be read: {exc}")
        return None
    extras = [label for label, column in (("dR", curve.dr), ("dQ", curve.dq)) if column is not None]
    c[0].markdown(f"**{label}** · {curve.q.size} points · "
                  f"Q {curve.q.min():.4g}–{curve.q.max():.4g} Å⁻¹"
                  + (f" · with {' and '.join(extras)}" if extras else ""))
    return curve


def band_caption(model_dir: Path) -> str:
    """What the uncertainty band drawn on a prediction is, or why there is none."""
    try:
        meta = ModelMeta.read(model_dir)
        band = band_of(meta.metrics, meta.z.size)
    except (ReflectError, BandError) as exc:
        return f"No uncertainty band: {exc}."
    return band.describe() if band is not None else (
        "No uncertainty band: this model was trained before bands were kept (train it again for one), or imported.")


def card_caption(model_dir: Path) -> str:
    meta = ModelMeta.read(model_dir)
    q, z = meta.q, meta.z
    metrics = (meta.metrics or {}).get("model") or {}
    baseline = (meta.metrics or {}).get("baseline") or {}
    prior = meta.prior or {}
    return (f"Architecture {meta.model.arch} ({meta.parameters or 0:,} parameters) · "
            f"Q grid {q.size} points {q.min():.4g}–{q.max():.4g} Å⁻¹ · dQ/Q {100 * meta.dq:.3g} % FWHM · "
            f"profile {z.size} points {z.min():.0f}–{z.max():.0f} Å · "
            + (f"prior: {len(prior['film']['layers'])} layers, {len(prior['bounds'])} bounds · " if prior else "")
            + (f"test RMSE {metrics['rmse']:.3g} (baseline {baseline['rmse']:.3g}) 10⁻⁶ Å⁻², verdict: "
               f"**{model_verdict(meta.metrics).level}** · " if metrics else "no test metrics · ")
            + f"{sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6:.1f} MB")


def _delete_model(record_id: str) -> str | None:
    left = user_files.delete_model(user, record_id, hub)
    forget_hub_listing()
    return left


def model_card(entry: user_files.StoredModel) -> None:
    record, problem, text = entry.record, entry.error, None
    if entry.hub and not (entry.model_dir / "model.json").is_file():
        problem, text = None, "On the Hub: downloaded when first used (Predict tab)."
    elif problem is None:
        try:
            text = card_caption(entry.model_dir)
        except Exception as exc:  # noqa: BLE001 - one damaged card must not take the page down
            problem = f"{type(exc).__name__}: {exc}"
    c = st.columns([5, 2], vertical_alignment="center")
    c[0].markdown(f"**{record['name']}** · {record['kind']}" + (" · :blue-badge[from the Hub]" if entry.hub else "")
                  + (f" · owner {record['owner']}" if sees_everyone(user) else ""))
    manage_buttons(c[1], f"model_{record['id']}", f"model '{record['name']}'", record["name"],
                   lambda new: records.rename_record(user, record["id"], new), lambda: _delete_model(record["id"]),
                   "Its files and its history record go" + (", with its copy on the Hub." if hub else "."))
    if text is not None:
        st.caption(text)
    else:
        st.error(f"This model cannot be read: {problem}")


def builtin_card(entry: BuiltinModel) -> None:
    """A built-in model's card: no owner, no Delete button (it ships with the app, read-only)."""
    st.markdown(f"**{entry.title}** · :green-badge[built-in] · trained on the default prior only")
    if entry.error is not None:
        st.error(f"This built-in model cannot be used: {entry.error}")
        return
    try:
        st.caption(card_caption(entry.model_dir))
    except Exception as exc:  # noqa: BLE001 - one damaged card must not take the page down
        st.error(f"This built-in model cannot be read: {type(exc).__name__}: {exc}")
        return
    st.caption(entry.scope)
    if card := entry.card():
        with st.expander("Model card"):
            st.markdown(card)


hub, hub_problem = configured_hub()
show_message()  # what the last Rename or Delete did
uploads_tab, models_tab, predict_tab = st.tabs(["Upload", "Model cards", "Predict"])

with uploads_tab:
    usage_line = st.empty()  # filled in after this run's uploads
    st.subheader("Training arrays")
    st.caption("pyreflect format: NR (N, 2, L) rows [Q in Å⁻¹, R] and SLD (N, 2, M) rows [z in Å, SLD in 10⁻⁶ Å⁻²], "
               "float .npy without pickles. They appear as a data source on the Train page.")
    c = st.columns(2)
    nr_file = c[0].file_uploader("NR curves (.npy)", type=["npy"], key="up_nr")
    sld_file = c[1].file_uploader("SLD profiles (.npy)", type=["npy"], key="up_sld")
    if nr_file and sld_file and once(nr_file) | once(sld_file):
        nr, sld = accept(nr_file, "nr"), accept(sld_file, "sld")
        if nr and sld:
            try:
                user_files.save_array_pair(user, (nr_file.name, nr_file.getvalue(), nr.content.shape),
                                           (sld_file.name, sld_file.getvalue(), sld.content.shape), limits=limits)
                st.success(f"Kept: {nr.description}; {sld.description}.")
            except ReflectError as exc:
                st.error(f"Not kept: {exc}")
    sets = user_files.array_sets(user)
    if sets:
        st.dataframe(pd.DataFrame([{"uploaded": info["nr"] + " + " + info["sld"], "curves": info["curves"],
                                    "Q points": info["q_points"], "z points": info["z_points"]}
                                   for _, info in sets]), hide_index=True)

    st.subheader("Measured curves")
    curve_file = st.file_uploader("Text (Q, R[, dR[, dQ]] in Å⁻¹) or ORSO .ort", type=["txt", "dat", "csv", "ort"],
                                  key="up_curve")
    if once(curve_file) and (accepted := accept(curve_file, "curves")):
        try:  # each curve as the check parsed it is what is kept, and what every page reads back
            kept = user_curves.save_curves(user, curve_file.name, curve_file.getvalue(), accepted.content,
                                           limits=limits)
            st.success(f"Kept as {', '.join(kept)}: {accepted.description}.")
        except (ReflectError, OSError) as exc:
            st.error(f"Not kept: {exc}")
    readable = {}  # name → Curve, for the Predict tab
    names = user_curves.curves(user)
    previews = bool(names) and st.toggle("Show each curve", key="curve_previews",
                                         help="A small chart of each curve (R vs Q with its error bars).")
    for curve_name in names:
        if (curve := curve_row(curve_name)) is not None:
            readable[curve_name] = curve
            if previews:
                st.plotly_chart(reflectivity_figure([], data=curve).update_layout(height=260),
                                key=f"preview_{curve_name}")

    st.subheader("Models")
    c = st.columns(2)
    model_file = c[0].file_uploader("A model directory as .zip (from this app)", type=["zip"], key="up_model")
    if once(model_file) and accept(model_file, "model"):
        try:
            record = user_files.add_model_zip(user, model_file.name, model_file.getvalue(), limits.upload_bytes,
                                              limits=limits)
            st.success(f"Model '{record['name']}' added.")
        except (ReflectError, FileExistsError) as exc:
            st.error(f"Not kept: {exc}")
    with c[1]:
        weights_file = st.file_uploader("pyreflect weights (.pth)", type=["pth", "pt"], key="up_weights")
        stats_file = st.file_uploader("its normalisation stats (.json or .npz; a pickled .npy is refused with "
                                      "what to do instead)", type=["json", "npz", "npy"], key="up_stats")
        if weights_file and stats_file and once(weights_file) | once(stats_file):
            weights, stats = accept(weights_file, "pyreflect_weights"), accept(stats_file, "pyreflect_stats")
            if weights and stats:
                try:
                    record = user_files.add_pyreflect_model(user, weights_file.name, weights_file.getvalue(),
                                                            stats.content, limits=limits)
                    st.success(f"pyreflect model '{record['name']}' added.")
                except ReflectError as exc:
                    st.error(f"Not kept: {exc}")
    used = user_files.usage_bytes(user)
    usage_line.caption(f"Your storage: {human_bytes(used)} of {human_bytes(limits.storage_bytes)} "
                       f"({100 * used / limits.storage_bytes:.1f} %): uploads, models, training runs and analyses. "
                       f"An upload that would go over is not kept.")

hub_entries = []
if hub is not None:
    hub_ids, hub_problem = hub_listing(hub)
    hub_entries = user_files.hub_models(user, hub_ids)
on_hub = {entry.record.get("run_id") for entry in hub_entries}
entries = [e for e in user_files.models(user) if e.record.get("run_id") not in on_hub or not e.record.get("run_id")]
entries += hub_entries
builtins = builtin_models()
# The user's own usable models first (the newest is the default pick), then the built-in ones.
models = [entry for entry in entries if entry.error is None] + [b for b in builtins if b.error is None]
with models_tab:
    if hub_problem:
        st.caption(f"Models on the Hub are not listed: {hub_problem}")
    if not entries:
        st.info("No models yet of your own: train one, or upload one."
                + (" The built-in model below works at once." if any(b.error is None for b in builtins) else ""))
    for entry in entries:
        with st.container(border=True):
            model_card(entry)
    for entry in builtins:
        with st.container(border=True):
            builtin_card(entry)

with predict_tab:
    if not models:
        st.info("No models yet: train one, or upload one.")
        st.stop()
    names = [f"{e.title} · built-in, default prior only" if isinstance(e, BuiltinModel)
             else f"{e.record['name']} ({e.record['id']})" + (" · from the Hub" if e.hub else "") for e in models]
    pick = st.selectbox("Model", range(len(models)), format_func=names.__getitem__)
    chosen = models[pick]
    record, model_dir = chosen.record, chosen.model_dir
    if isinstance(chosen, BuiltinModel):
        st.caption(f"Built-in model: {chosen.scope}")
    elif chosen.hub:
        try:
            with st.spinner("Downloading the model from the Hub…"):
                model_dir = user_files.hub_model(user, chosen, hub)
        except (ReflectError, OSError) as exc:
            st.error(f"The model cannot be downloaded from the Hub: {exc}")
            st.stop()
    if not readable:
        st.info("Upload a measured curve first (Upload tab).")
        st.stop()
    curve_name = st.selectbox("Measured curve", list(readable))
    curve, stem = readable[curve_name], Path(curve_name).stem
    try:
        model_dq = ModelMeta.read(model_dir).dq
        result = analyse_with_model(model_dir, curve)
    except PredictError as exc:  # this curve is outside what the model reads: said, not an app error
        st.warning(str(exc))
        st.info("To train a model that reads this curve, choose it under 'Match a measured curve' on the Train "
                "page: the synthetic curves then cover its Q range with its resolution.")
        st.stop()
    except ReflectError as exc:
        st.error(str(exc))
        st.stop()
    st.caption("The network sees the curve interpolated (in log R) onto its own Q grid; zero or negative R is "
               "floored before the log. The recomputed curve is at the data's own Q points, smeared with "
               + ("the file's dQ column." if has_own_resolution(curve)
                  else f"the model's dQ/Q = {100 * model_dq:.3g} % FWHM (the file has no dQ column)."))
    for note in result.notes:
        st.caption(f"Q range: {note}.")
    st.caption(band_caption(model_dir))
    fit = result.agreement
    c = st.columns(5)
    c[0].metric("Misfit (decades)", f"{fit['median_decades']:.3f}" if fit["median_decades"] is not None
                else "n/a", help="Median |Δ log₁₀ R| over the points with R > 0, both floored at 1e-10.")
    c[1].metric("Reduced χ²", f"{fit['chi2_reduced']:.3g}" if fit["chi2_reduced"] is not None else "no dR column",
                help="No fitted scale or background: far above 1 means the profile does not explain the data.")
    scaled = fit.get("chi2_reduced_scaled")
    c[2].metric("χ², scale & bkg fitted", f"{scaled:.3g}" if scaled is not None else "n/a",
                help="Reduced χ² with the best scale and background ≥ 0 (weighted least squares, as refnx fits "
                     "them); the networks never see either."
                     + (f" Scale {fit['scale']:.3g}, background {fit['background']:.2e}."
                        if scaled is not None else ""))
    c[3].metric("Points", f"{fit['points']}")
    rq4 = c[4].toggle("Plot R·Q⁴", key="predict_rq4", help="Removes the Fresnel Q⁻⁴ decay.")
    show_verdict(fit_verdict(fit))
    show_verdict(result.prior.verdict)  # is the network extrapolating?
    curves = [("recomputed from the predicted profile", result.q, result.r)]
    if scaled is not None:  # what the χ² above was computed from
        curves.append((f"× {fit['scale']:.3g} + {fit['background']:.2e} (fitted scale, background)", result.q,
                       fit["scale"] * result.r + fit["background"]))
    c = st.columns(2)
    c[0].plotly_chart(sld_figure(result.z, result.sld, label="predicted SLD", band=result.band))
    c[1].plotly_chart(reflectivity_figure(curves, rq4=rq4, data=curve))
    c = st.columns([2, 1, 1])
    name = c[0].text_input("Analysis name", value=f"{stem} · {record['name']}"[:80], max_chars=80)
    c[1].download_button("Profile (CSV)", profile_csv(result), file_name=f"{stem}_profile.csv", mime="text/csv",
                         help="z and SLD, with the uncertainty band's bounds when the model has one.")
    if c[2].button("Save to history", type="primary"):
        try:
            saved = save_analysis(user, name, result, curve_name, curve, record)
            st.success(f"Saved '{saved['name']}' to your history.")
        except (OSError, ReflectError) as exc:
            st.error(f"Not saved: {exc}")
