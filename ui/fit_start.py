"""Where a fit starts: the explorer's film, a film of the user's history (a saved film, a training
prior, a saved fit's result), a film typed as text (repeat units come with their ties), or the
slab film of a model's predicted profile of the first dataset. Each start comes as a fit
configuration (``analysis.start``: bounds around every value, scale, a background from the data's
high-Q floor), which fills the bounds editor whenever the start changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from reflect_core.accounts.access import User
from reflect_core.analysis.fit import FitConfig
from reflect_core.analysis.fit_runs import load_saved
from reflect_core.analysis.start import start_from_film, start_from_model
from reflect_core.base.errors import InvalidInput, ReflectError
from reflect_core.formats.curves import Curve
from reflect_core.ml.builtin import builtin_models
from reflect_core.physics.film import Film, FilmError, film_from_dict
from reflect_core.store import history, user_files
from ui import film_editor
from ui.bounds_editor import restore_bounds
from ui.materials import film_text_builder
from ui.state import keep, remembered, seed

KINDS = {"explorer": "the explorer's film", "record": "a film from my history", "text": "a film typed as text",
         "model": "a model's prediction"}
TEXT_BUILT = "fit_start_text_built"
MODEL_START = "fit_start_model"
READ_AS = {"prior": "the model's prior (its film and bounds)", "bic": "slabs, their number by BIC",
           **{str(k): f"{k} slab{'s' if k > 1 else ''}" for k in range(1, 7)}}
APPLIED = "fit_start_applied"  # the start whose bounds the editor was last filled with


@dataclass(frozen=True)
class Start:
    film: Film
    kind: str
    label: str
    config: dict  # the contract's form: film, bounds, scale, background (and dq from a model)
    ties: list = field(default_factory=list)
    note: str = ""
    data: str = ""  # which curve the start's suggestions (background, model start) were made for

    @property
    def signature(self) -> tuple:
        return self.kind, self.label, self.film.to_json(), repr(self.ties), self.data


def fingerprint(curve: Curve) -> str:
    """A curve's identity by content: a curve deleted and uploaded again under its name is another curve."""
    parts = [curve.q, curve.r, curve.dr, curve.dq]
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in parts if a is not None)).hexdigest()[:16]


def _record_film(record: dict) -> tuple[Film, list]:
    """A record's film (and ties): a saved film, a training run's prior film, a saved fit's fitted film."""
    params = record.get("params") or {}
    if record["kind"] == "fit":
        saved = load_saved(record)
        try:  # the ties as the fit checked them (an imported record's request was never checked here)
            ties = list(FitConfig.parse(saved.request.config, len(saved.request.curves)).raw_ties)
        except InvalidInput:
            ties = []  # a configuration that no longer parses: its fitted film alone
        return film_from_dict(saved.fit["film"]), ties
    if record["kind"] == "training":
        return film_from_dict(params["dataset"]["prior"]["film"]), []
    return film_from_dict(params.get("film", params)), []


def _has_film(record: dict) -> bool:
    params = record.get("params") or {}
    return (record["kind"] in ("film", "fit") or (record["kind"] == "import" and "film" in params)
            or (record["kind"] == "training" and isinstance(params.get("dataset"), dict)
                and "prior" in params["dataset"]))


def _around(film: Film, kind: str, label: str, curve: Curve, ties=None) -> Start:
    return Start(film, kind, label, start_from_film(film, curve=curve), list(ties or []), data=fingerprint(curve))


def _from_record(user: User, curve: Curve) -> Start | None:
    records = [r for r in history.list_records(user) if _has_film(r)]
    if not records:
        st.info("Your history has no films yet: save one from the explorer, or pick another start.")
        return None
    ids = [r["id"] for r in records]
    if remembered("fit_start_record") not in ids:
        keep("fit_start_record", ids[0])
    by_id = {r["id"]: r for r in records}
    chosen = keep("fit_start_record", st.selectbox(
        "Record", ids, key=seed("fit_start_record", ids[0]),
        format_func=lambda i: f"{by_id[i]['name']} · {by_id[i]['kind']}"))
    try:
        film, ties = _record_film(by_id[chosen])
    except (ReflectError, KeyError, TypeError, OSError) as exc:
        st.error(f"This record's film cannot be used: {exc}")
        return None
    return _around(film, "record", by_id[chosen]["name"], curve, ties)


def _from_text(beam_from: str, curve: Curve) -> Start | None:
    built = film_text_builder("fit_start", beam_from=beam_from, button="Use as start")
    if built is not None:
        st.session_state[TEXT_BUILT] = built
    built = st.session_state.get(TEXT_BUILT)
    if built is None:
        st.caption("Type a film and press 'Use as start'.")
        return None
    return _around(built.film, "text", "film text", curve, built.ties)


def _model_choices(user: User) -> dict[str, tuple[str, object]]:
    """label → (model id, model folder) of every usable model: the user's own, then the built-in ones."""
    choices = {}
    for entry in user_files.models(user):
        if entry.error is None and entry.model_dir is not None:
            choices[f"{entry.record['name']} ({entry.record['id']})"] = (entry.record["id"], entry.model_dir)
    for entry in builtin_models():
        if entry.error is None:
            choices[f"{entry.title} · built-in, default prior only"] = (entry.record["id"], entry.model_dir)
    return choices


def _from_model(user: User, curves: list[tuple[str, Curve]]) -> Start | None:
    choices = _model_choices(user)
    if not choices:
        st.info("No models yet: train one, or upload one on the 'Models and data' page.")
        return None
    labels = list(choices)
    if remembered("fit_start_model_pick") not in labels:
        keep("fit_start_model_pick", labels[0])
    label = keep("fit_start_model_pick", st.selectbox("Model", labels, key=seed("fit_start_model_pick", labels[0])))
    model_id, model_dir = choices[label]
    read_as = keep("fit_start_read_as", st.selectbox(
        "Read the profile as", list(READ_AS), key=seed("fit_start_read_as", "prior"), format_func=READ_AS.get,
        help="The model's prior: its own film, with the parameters it varied fitted to the predicted profile (falls "
             "back to slabs when the model keeps no prior). Slabs: the profile cut into layers, their number chosen "
             "by the Bayesian information criterion or by you."))
    name, curve = curves[0]
    wanted = (model_id, name, fingerprint(curve), read_as)
    cached = st.session_state.get(MODEL_START)
    if cached is None or cached[0] != wanted:
        try:
            with st.spinner("Predicting the profile of the first curve…"):
                config, analysis = start_from_model(model_dir, curve, None if read_as in ("prior", "bic") else
                                                    int(read_as), use_prior=read_as == "prior")
        except ReflectError as exc:
            st.error(f"This model gives no start for {name}: {exc}")
            return None
        fit = analysis.agreement.get("chi2_reduced")
        how = [n.removeprefix("start: ") for n in analysis.notes if n.startswith("start: ")]
        note = " ".join([f"The network's profile, {how[0] if how else 'as slabs'}"
                         + (f"; its own curve: χ²_red {fit:.3g} against {name}." if fit is not None else "."),
                         *(f"Q range: {n}." for n in analysis.notes if not n.startswith("start: "))])
        cached = (wanted, config, note)
        st.session_state[MODEL_START] = cached
    _, config, note = cached
    return Start(film_from_dict(config["film"]), "model", f"{label} on {name}", config, note=note,
                 data=f"{wanted[2]}:{read_as}")


def render_start(user: User, curves: list[tuple[str, Curve]]) -> Start | None:
    """The start the user chose, or None (with a message) while there is none. A new start fills
    the bounds editor (prefix "fit") with its bounds."""
    start = _render_start(user, curves)
    if start is not None and st.session_state.get(APPLIED) != start.signature:
        restore_bounds(start.film, start.config["bounds"], prefix="fit")
        st.session_state[APPLIED] = start.signature
    return start


def _render_start(user: User, curves: list[tuple[str, Curve]]) -> Start | None:
    kinds = list(KINDS)
    kind = keep("fit_start_kind", st.radio("Start from", kinds, key=seed("fit_start_kind", "explorer"),
                                           horizontal=True, format_func=KINDS.get))
    if kind == "explorer":
        film_editor.ensure_film()
        try:
            film = film_editor.current_film()
        except FilmError as exc:
            st.error(f"The explorer's film is not valid: {exc}")
            return None
        return _around(film, "explorer", film.name or "the explorer's film", curves[0][1])
    if kind == "record":
        return _from_record(user, curves[0][1])
    if kind == "text":
        return _from_text(st.session_state.get(film_editor.BEAM, "ambient"), curves[0][1])
    return _from_model(user, curves)
