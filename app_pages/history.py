"""History: every saved film, training run, analysis and fit of the signed-in user; open, rename,
delete, compare, export and import."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from reflect_core.analysis.verdicts import model_verdict
from reflect_core.base import storage
from reflect_core.base.errors import ReflectError
from reflect_core.ml.spec import TrainSpec
from reflect_core.physics.film import film_from_dict
from reflect_core.store import history, records
from reflect_core.store.bundles import BUNDLE_FIGURES, build_bundle, bundle_parts
from reflect_core.store.records import MODEL_FOLDER
from reflect_core.viz.report import figures_for, overlay_losses, profile_overlay, shared_test_curves, standalone_html
from ui import film_editor, train_form
from ui.fit_results import render_saved_fit
from ui.history_import import render_import
from ui.job_monitor import SELECTED
from ui.run_results import render_results
from ui.session import configured_hub, current_user, sees_everyone

HUB_LEFT = "history_hub_left"  # a message from the last delete, shown after its rerun
user = current_user()
st.title("History")
st.caption("Your saved films, training runs, analyses and fits, newest first. Select records below to open, rename, "
           "delete, compare or export them."
           + (" As an admin you see everyone's." if sees_everyone(user) else ""))

c = st.columns([2, 2, 2])
search = c[0].text_input("Search names", placeholder="part of a name")
kinds = c[1].multiselect("Kinds", list(history.KINDS), placeholder="all kinds")
dates = c[2].date_input("Created between", value=(), help="Leave empty for all dates.")
since = until = None
if isinstance(dates, tuple) and len(dates) == 2:
    since = dt.datetime.combine(dates[0], dt.time.min).timestamp()
    until = dt.datetime.combine(dates[1], dt.time.max).timestamp()

if hub_left := st.session_state.pop(HUB_LEFT, None):
    st.warning(hub_left)
found = records.list_with_summaries(user, search=search or None, since=since, until=until)
found = [r for r in found if not kinds or r["kind"] in kinds]
if not found:
    if search or kinds or since is not None:  # the filters hide what there is: say so, not "nothing here"
        st.info("No record matches " + ", ".join(
            ([f"the name '{search}'"] if search else []) + ([f"the kinds {', '.join(kinds)}"] if kinds else [])
            + (["those dates"] if since is not None else [])) + ": clear the search to see all your records.")
    else:
        st.info("Nothing here yet: save a film from the explorer or train a model.")
    render_import(user)
    st.stop()


def _when(record: dict) -> str:
    try:
        return dt.datetime.fromtimestamp(record["created"]).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _row(record: dict) -> dict:
    """One line of the table; a record that cannot be shown is a line that says why (select it to
    delete it), never an error that takes the page down for everyone who sees it."""
    owner = {"owner": str(record.get("owner"))} if sees_everyone(user) else {}
    try:
        summary = record.get("summary") or {}
        rmse, base = summary.get("rmse"), summary.get("baseline_rmse")
        problems = record.get("problems")
        return {
            "name": record["name"], "kind": record["kind"], "created": _when(record),
            "state": f"damaged: {'; '.join(problems)}" if problems else summary.get("state", ""),
            "rmse": rmse, "baseline": base,
            "misfit": (summary.get("agreement") or {}).get("median_decades"),
            "chi2": summary.get("chi2_reduced") if record["kind"] == "fit" else None,
            "size": round(summary["bytes"] / 1e6, 2) if summary.get("bytes") else None,
            **owner,
        }
    except Exception as exc:  # noqa: BLE001 - isolation: whatever is wrong with it, it is one line
        return {"name": str(record.get("name"))[:80], "kind": str(record.get("kind")), "created": _when(record),
                "state": f"error: {type(exc).__name__}: {exc}"[:200], **owner}


def _label(record: dict) -> str:
    return f"{record['name']} · {record['kind']} · {_when(record)}" + (" · damaged" if record.get("problems") else "")


# Short column names with their units in the header's help: long ones were cut at 1400 px. The numbers
# come right after the name: at 800 px the columns past "state" were out of sight.
COLUMNS = {
    "name": st.column_config.TextColumn("name", width="medium"),
    "kind": st.column_config.TextColumn("kind", width="small"),
    "created": st.column_config.TextColumn("created", width="small"),
    "rmse": st.column_config.NumberColumn("test RMSE", help="SLD RMSE on the held-out test set, 10⁻⁶ Å⁻²",
                                          format="%.3g", width="small"),
    "baseline": st.column_config.NumberColumn("baseline", format="%.3g", width="small",
                                              help="RMSE of the mean training profile, 10⁻⁶ Å⁻²"),
    "misfit": st.column_config.NumberColumn("NR misfit", format="%.3f", width="small",
                                            help="Median |Δlog₁₀R| of an analysis, decades"),
    "chi2": st.column_config.NumberColumn("fit χ²_red", format="%.3g", width="small"),
    "size": st.column_config.NumberColumn("size (MB)", format="%.2f", width="small"),
}
ORDER = ("name", "kind", "rmse", "baseline", "misfit", "chi2", "state", "created", "size", "owner")
table = st.dataframe(pd.DataFrame([_row(r) for r in found]), hide_index=True, width="stretch", column_config=COLUMNS,
                     column_order=ORDER,
                     placeholder="", key="history_table", on_select="rerun", selection_mode="multi-row")
by_id = {r["id"]: r for r in found}
# Rows clicked in the table become the selection below (which can also be typed into).
clicked = [found[i]["id"] for i in table.selection.rows if i < len(found)]
if clicked != st.session_state.get("history_clicked"):
    st.session_state["history_clicked"] = clicked
    st.session_state["history_selected"] = clicked
# A record deleted or filtered out must leave the selection, or the widget refuses the stale value.
st.session_state["history_selected"] = [i for i in st.session_state.get("history_selected", []) if i in by_id]
picked = st.multiselect("Select records", list(by_id), key="history_selected",
                        format_func=lambda i: _label(by_id[i]),
                        placeholder="one to open, rename, delete or export; two or more to compare")
chosen = [by_id[i] for i in picked if i in by_id]
if not chosen:
    render_import(user)
    st.stop()


def _open(record: dict) -> None:
    """Restore the record's parameters into the explorer or the training page."""
    params = record["params"]
    try:
        if record["kind"] == "training":
            train_form.restore(TrainSpec.parse(params))  # every setting and the prior bounds
            if record.get("run_id"):
                st.session_state[SELECTED] = record["run_id"]
            else:  # an import: no run of this server is its own, so the run list must not pick another one's
                st.session_state.pop(SELECTED, None)
                st.toast("Its settings are in the Train form. It was imported, so it has no run here: its "
                         "results are shown on the History page.", icon=":material/info:")
            st.switch_page("app_pages/train.py")
        film_dict = params.get("film")
        if film_dict:
            film_editor.load_film(film_from_dict(film_dict))
    except ReflectError as exc:
        st.error(f"This record's parameters cannot be opened: {exc}")
        return
    st.switch_page("app_pages/explorer.py")


def _show_analysis(record: dict, files_dir) -> None:
    """An analysis is its result: the predicted profile and the curve it implies, with the data."""
    fit = (record.get("summary") or {}).get("agreement") or {}
    st.caption(f"Model '{record['params'].get('model_name')}' on {record['params'].get('curve')}: "
               + (f"median |Δ log₁₀ R| {fit['median_decades']:.3f} decades" if fit.get("median_decades") is not None
                  else "no agreement measured")
               + (f", reduced χ² {fit['chi2_reduced']:.3g}" if fit.get("chi2_reduced") is not None else "")
               + (f" ({fit['chi2_reduced_scaled']:.3g} with scale {fit['scale']:.3g} and background "
                  f"{fit['background']:.2e} fitted)" if fit.get("chi2_reduced_scaled") is not None else "") + ".")
    figures = figures_for(record, files_dir)
    if not figures:
        st.warning("This analysis's files are missing or unreadable; only its parameters remain.")
    for column, figure in zip(st.columns(2), figures.values()):
        column.plotly_chart(figure)


def _delete(record: dict) -> None:
    with st.expander("Delete", expanded=bool(record.get("problems"))):
        st.warning("This removes the record and all its files (model, data, checkpoints). It cannot be undone.")
        if st.checkbox("Yes, delete it", key=f"confirm_{record['id']}") and st.button("Delete for good"):
            try:
                if hub_left := records.delete_record(user, record["id"], hub=configured_hub()[0]):
                    st.session_state[HUB_LEFT] = hub_left  # shown after the rerun
                st.rerun()
            except ReflectError as exc:  # a running job, access, files: all shown as they are
                st.error(str(exc))


def _details(record: dict) -> None:
    files_dir = records.record_dir(record)
    c = st.columns([1, 2, 1])
    if record["kind"] == "analysis":
        _show_analysis(record, files_dir)
    elif record["kind"] == "fit":
        render_saved_fit(record)  # the result as the Analyse page showed it, with its exports
    elif c[0].button("Open", type="primary",
                     help="Restore its parameters (and results) in the explorer or training page."):
        _open(record)
    new_name = c[1].text_input("New name", value=record["name"], max_chars=80, label_visibility="collapsed")
    if c[2].button("Rename"):
        try:
            records.rename_record(user, record["id"], new_name)  # a training run's own name too
            st.rerun()
        except ReflectError as exc:
            st.error(str(exc))
    with st.expander("Export as a bundle"):
        sizes = bundle_parts(record, files_dir)
        picked = {part for part, size in sizes.items()
                  if st.checkbox(f"{part} ({size / 1e6:,.2f} MB)", value=part != "data", key=f"part_{part}")}
        st.download_button(
            f"Download bundle ({sum(sizes[p] for p in picked) / 1e6:,.1f} MB before compression)",
            data=lambda: build_bundle(record, files_dir, picked,
                                      standalone_html(figures_for(record, files_dir), record["name"])
                                      if BUNDLE_FIGURES in picked else None),
            file_name=f"{storage.file_stem(record['name'], record['id'])}.zip", mime="application/zip")
    if record["kind"] == "training" and files_dir is not None and (files_dir / MODEL_FOLDER).is_dir():
        with st.expander("Results", expanded=True):
            render_results(files_dir)  # as the Train page shows them, imported runs included
    st.caption("Parameters")
    st.json(record["params"], expanded=False)


def _compare(chosen: list[dict]) -> None:
    trained = [r for r in chosen if r["kind"] == "training" and r["summary"].get("state") == "completed"]
    if len(trained) < 2:
        st.info("Comparison needs two or more completed training runs.")
    else:
        metas = {r["name"]: records.model_meta(r) for r in trained}
        st.plotly_chart(overlay_losses([(name, meta.history) for name, meta in metas.items()]))
        st.dataframe(pd.DataFrame([{
            "run": name, "test RMSE (10⁻⁶ Å⁻²)": meta.metrics["model"]["rmse"],
            "test MAE (10⁻⁶ Å⁻²)": meta.metrics["model"]["mae"], "R²": meta.metrics["model"]["r2"],
            "baseline RMSE (10⁻⁶ Å⁻²)": meta.metrics["baseline"]["rmse"],
            "verdict": model_verdict(meta.metrics).level, "epochs run": len(meta.history["train"]),
            "parameters": meta.parameters} for name, meta in metas.items()]), hide_index=True)
        shared = shared_test_curves(trained)
        if shared is None:
            st.caption("These runs have different test sets, so their profiles cannot be put side by side.")
        else:
            pick = st.number_input("Test curve", 0, len(shared["index"]) - 1, 0)
            st.plotly_chart(profile_overlay(trained, shared, int(pick)))


if len(chosen) == 1:
    record = chosen[0]
    st.subheader(record["name"])
    if record.get("problems"):
        st.error("This record is damaged (" + "; ".join(record["problems"]) + "): what can be read is shown; "
                 "it can be deleted below.")
    try:
        _details(record)
    except Exception as exc:  # noqa: BLE001 - isolation: one record's files never take the page down
        st.error(f"This record cannot be shown: {type(exc).__name__}: {exc}")
    _delete(record)
else:
    st.subheader(f"Comparing {len(chosen)} records")
    try:
        _compare(chosen)
    except Exception as exc:  # noqa: BLE001 - a damaged model among them
        st.error(f"These records cannot be compared: {type(exc).__name__}: {exc}")
render_import(user)
