"""Train: a synthetic dataset from the explorer's film and a prior, a network, a background job."""

from __future__ import annotations

import numpy as np
import streamlit as st

from reflect_core.accounts import rate_limit
from reflect_core.accounts.access import User
from reflect_core.base.errors import ReflectError
from reflect_core.data.generate import (
    MAX_COUNTS,
    MAX_PROFILE_POINTS,
    MAX_SCALE_ERROR,
    DatasetError,
    dataset_from_dict,
)
from reflect_core.formats.curves import matching_grid, noise_level
from reflect_core.jobs import backends
from reflect_core.ml import costs
from reflect_core.ml.estimates import dataset_bytes, generation_seconds, model_size, training_seconds_apart
from reflect_core.ml.recipes import ABOUT as RECIPES
from reflect_core.ml.recipes import recipe
from reflect_core.ml.settings import (
    ARCHITECTURES,
    OPTIMIZERS,
    ModelError,
    TrainingError,
    settings_from_dict,
    train_settings_from_dict,
)
from reflect_core.ml.spec import SpecError, TrainSpec
from reflect_core.physics.film import FilmError
from reflect_core.physics.simulate import MAX_DQ, MAX_Q, PYREFLECT_DQ, PYREFLECT_NQ, PYREFLECT_QMAX, PYREFLECT_QMIN
from reflect_core.store import records, user_curves, user_files
from ui import film_editor, workspace
from ui.bounds_editor import render_bounds_editor
from ui.job_monitor import SELECTED, choose_run, render_monitor
from ui.layout import wrapping_columns
from ui.run_results import render_results
from ui.session import current_limits, current_user, rate_limit_per_minute
from ui.state import keep, remembered, seed
from ui.train_form import SPEC_KEY, apply_recipe, render_machine_cap, restore


def number(where, label, key, default, **kwargs):
    """A number input in ``where`` whose value survives page switches, clamped to its range
    (the range can shrink: the limits depend on who is signed in)."""
    seed(key, default)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if high is not None and st.session_state[key] > high:
        st.session_state[key] = high
    if low is not None and st.session_state[key] < low:
        st.session_state[key] = low
    return keep(key, where.number_input(label, key=key, **kwargs))


def clamped(key: str, default, low, high, shared: str | None = None) -> str:
    """``seed`` for a number input whose value is shared with another page: clamped to this
    page's range (Streamlit refuses to draw a widget whose value is out of range)."""
    seed(key, default, shared)
    st.session_state[key] = min(max(st.session_state[key], low), high)
    return key


@st.cache_data(show_spinner=False, max_entries=16)
def _generation_estimate(dataset: dict) -> float:
    return generation_seconds(dataset_from_dict(dataset))


@st.cache_data(show_spinner=False, max_entries=16)
def _training_estimate(model: dict, training: dict, n_train: int, n_q: int, n_z: int) -> float:
    # Timed in a child process: torch never loads into the server for an estimate.
    return training_seconds_apart(settings_from_dict(model), train_settings_from_dict(training), n_train, n_q, n_z)


def _estimate_or_none(*args) -> float | None:
    """The (cached) estimate kept with a local run, so that estimates can be checked against what runs take."""
    try:
        return _training_estimate(*args) if place["backend"] == "local" else None
    except TrainingError:
        return None


@st.cache_data(show_spinner=False, ttl=60, max_entries=64)
def _estimate_ratios(user_name: str, role: str) -> list[float]:
    # Reads every finished run's files: once a minute per user, not on every rerun of this page.
    return records.estimate_ratios(User(user_name, role))


def _estimate_spread() -> str:
    """How far the estimates were off for the user's finished runs here (measured / estimated, per epoch)."""
    ratios = _estimate_ratios(user.name, user.role)
    if len(ratios) < 2:
        return " Estimates are timed on this machine; once two of your runs have finished here, their spread is shown."
    low, mid, high = np.percentile(ratios, [0, 50, 100])
    return (f" On your last {len(ratios)} finished runs here, training took {low:.2g}–{high:.2g}× the estimate per "
            f"epoch (median {mid:.2g}×).")


user, limits = current_user(), current_limits()
st.title("Train an NR → SLD network")
st.caption(f"Limits in force ({limits.profile} profile): {limits.curves:,} curves "
           f"({limits.exact_curves:,} in exact mode), {limits.q_points:,} Q points, {limits.profile_points:,} profile "
           f"points, {limits.dataset_bytes / 1e6:,.0f} MB of arrays, {limits.epochs} epochs, batch "
           f"{limits.batch_size}, {limits.cnn_layers} CNN layers, {limits.channels} channels, dense width "
           f"{limits.hidden:,}, {limits.parameters / 1e6:,.0f} M parameters, dropout ≤ {limits.dropout}, "
           f"{limits.concurrent_jobs} concurrent job(s).")
st.caption("Curves are generated from the explorer's film with the parameters you let vary, then a network learns "
           "to map each curve to its SLD profile. The job runs in a separate process: it keeps going if you "
           "leave this page, close the browser or restart the app.")
film_editor.ensure_film()
workspace.restore_train(lambda raw: restore(TrainSpec.parse(raw), with_film=False))
workspace.render_notice()
try:
    film, film_problem = film_editor.current_film(), None
except FilmError as exc:
    film, film_problem = None, f"The explorer's film is not valid, so there is nothing to generate from: {exc}"



def _use_recipe(name: str) -> None:
    raw = recipe(name)
    apply_recipe(raw)
    over = [f"{what} {value:,} (limit {limit:,})" for what, value, limit in
            (("curves", raw["dataset"]["n"], limits.curves), ("epochs", raw["training"]["epochs"], limits.epochs))
            if value > limit]
    st.session_state["train_recipe_note"] = (
        f"Recipe '{name}': {raw['dataset']['n']:,} curves, {raw['training']['epochs']} epochs, batch "
        f"{raw['training']['batch_size']}, network {raw['model']['layers']} blocks × {raw['model']['channels']} "
        f"channels, dense {raw['model']['hidden']}. Your film, prior, Q grid and noise are unchanged."
        + (f" Over this profile's limits, so held at them: {'; '.join(over)}." if over else ""))


row = wrapping_columns([420, 200])
chosen_recipe = row[0].selectbox("Start from a recipe (optional)", list(RECIPES), index=None, key="train_recipe",
                                 format_func=lambda n: f"{n}: {RECIPES[n]}", placeholder="keep my settings",
                                 help="Data size, network and schedule measured on the default prior "
                                      "(bench/bench_training.py); the same files as examples/recipes/*.json "
                                      "for the command line.")
row[1].button("Use this recipe", disabled=chosen_recipe is None, on_click=_use_recipe, args=(chosen_recipe,))
if note := st.session_state.pop("train_recipe_note", None):
    st.info(note, icon=":material/info:")

# --- dataset ---------------------------------------------------------------------------------------
MAX_Q_POINTS = 20_000


def _match_curve(name: str) -> None:
    """Button callback: the Q settings below take the measured curve's range and resolution
    (the stored curve as its upload check parsed it: Q and dQ FWHM in Å⁻¹)."""
    try:
        curve = user_curves.load_curve(user, name)
        grid = matching_grid(curve)
    except (ReflectError, OSError) as exc:
        st.session_state["train_match_error"] = str(exc)
        return
    settings = [("train_qmin", "qmin", grid["qmin"]), ("train_qmax", "qmax", grid["qmax"]),
                ("train_nq", "nq", min(grid["nq"], MAX_Q_POINTS))]
    if grid["dq"] is not None:
        settings.append(("train_dq", "dq_percent", 100 * grid["dq"]))
    for key, shared_name, value in settings:
        st.session_state[key] = value
        keep(shared_name, value)
    level = noise_level(curve)
    if level is not None:  # train on curves as noisy as this one, over the spread its points show
        counts_lo, counts_hi = (min(max(v, 1.0), MAX_COUNTS) for v in level["counts_spread"])
        bkg_lo, bkg_hi = (min(v, 1.0) for v in level["background_spread"])
        for key, value in (("train_noise", True), ("train_counts", counts_lo), ("train_counts_hi", counts_hi),
                           ("train_bkg", bkg_lo), ("train_bkg_hi", bkg_hi)):
            st.session_state[key] = value
            keep(key, value)
        st.session_state["train_match_note"] = (
            f"Counting noise from its dR: N₀ from {counts_lo:.2g} to {counts_hi:.2g} counts at R = 1 (the 10th to "
            f"90th percentile of R/dR² over its points, median {level['counts_at_unity']:.2g}: angles of different "
            f"intensity differ); background from {bkg_lo:.2g} to {bkg_hi:.2g} (the same spread of R over its "
            f"highest-Q tenth, median {level['background']:.2g}).")


NOISE_INPUTS = [  # key, label, default, bounds (physical: data.generate), format, step
    ("train_counts", "N₀ from (counts at R = 1)", 1e7, 1.0, MAX_COUNTS, "%.2e", None),
    ("train_counts_hi", "N₀ to", 1e7, 1.0, MAX_COUNTS, "%.2e", None),
    ("train_bkg", "Background from (R)", 0.0, 0.0, 1.0, "%.2e", 1e-7),
    ("train_bkg_hi", "Background to (R)", 0.0, 0.0, 1.0, "%.2e", 1e-7),
    ("train_scale_err", "Scale error ± (%)", 0.0, 0.0, 100 * MAX_SCALE_ERROR, "%.1f", 1.0),
]


def render_curve_matcher() -> None:
    """Train for a measurement: a network only reads curves on its own Q range."""
    names = user_curves.curves(user)
    c = wrapping_columns([450, 320])
    if not names:  # shown anyway, so that the option is known before a curve is uploaded
        c[0].selectbox("Match a measured curve (optional)", [], disabled=True,
                       placeholder="upload a measured curve on 'Models and data' first",
                       help="Sets Q min, Q max, the number of Q points and dQ/Q from a measured curve, so that "
                            "the model reads it without extrapolating.")
        c[1].button("Use its Q range, resolution and noise", disabled=True)
        return
    name = c[0].selectbox("Match a measured curve (optional)", names, index=None,
                          placeholder="one of your uploaded curves",
                          help="Sets Q min, Q max, the number of Q points and dQ/Q (from its dQ column, if it has "
                               "one) so that the model covers the curve without extrapolating, and, from its dR "
                               "column, counting noise and a background like the curve's.")
    c[1].button("Use its Q range, resolution and noise", disabled=name is None, on_click=_match_curve, args=(name,))
    if error := st.session_state.pop("train_match_error", None):
        st.error(error)
    if note := st.session_state.pop("train_match_note", None):
        st.info(note, icon=":material/info:")


def noise_inputs() -> dict | None:
    """Counting noise, background and scale error, each a range drawn anew for every curve: the
    dataset's ``noise`` (None: noise-free curves)."""
    noisy = keep("train_noise", st.toggle(
        "Measurement noise: counting statistics, background, scale error", key=seed("train_noise", False),
        help="Each curve gets its own N₀ (counts at R = 1; a point of reflectivity R carries √(R·N₀)/N₀ error), "
             "background and scale, drawn from these ranges (N₀ and background log-uniformly), so the network "
             "learns them all. A measured curve's are set by 'Use its Q range, resolution and noise' above."))
    c = wrapping_columns([172] * 5)
    values = {}
    for cell, (key, label, default, low, high, fmt, step) in zip(c, NOISE_INPUTS):
        values[key] = keep(key, cell.number_input(label, key=clamped(key, default, low, high), min_value=low,
                                                  max_value=high, format=fmt, step=step, disabled=not noisy))
    if not noisy:
        return None
    error = values["train_scale_err"] / 100
    return {"counts_at_unity": [values["train_counts"], values["train_counts_hi"]],
            "background": [values["train_bkg"], values["train_bkg_hi"]], "scale": [1 - error, 1 + error]}


def generated_dataset():
    """Settings for curves generated from the explorer's film: (spec, curves, Q points, z points), or
    None after saying what is wrong (beside the input; the rest of the page stays)."""
    if film is None:
        st.error(film_problem + " Fix it on the Film explorer page.")
        return None
    st.markdown(f"Film: **{len(film.layers)} layers** from the explorer "
                f"({film.layers[0].name} … {film.layers[-1].name}, "
                f"beam from the {film.beam_from}). Tick the parameters to vary and set their ranges.")
    bounds = render_bounds_editor(film)
    c = wrapping_columns([220] * 4)
    n_curves = number(c[0], "Curves", "train_n", min(5000, limits.curves), min_value=10, max_value=limits.curves,
                      step=1000,
                      help="Number of synthetic curves (train + validation + test).")
    data_seed = number(c[1], "Seed", "train_data_seed", 0, min_value=0, max_value=2**32 - 1, step=1,
                       help="Same seed, same curves.")
    sampler = keep("train_sampler", c[2].selectbox("Sampling", ["latin_hypercube", "uniform"],
                                                   key=seed("train_sampler", "latin_hypercube")))
    n_profile = number(c[3], "Profile points", "train_n_profile", 900, min_value=50,
                       max_value=min(MAX_PROFILE_POINTS, limits.profile_points), step=50,
                       help="Points of each SLD label on one z grid for the whole dataset.")
    render_curve_matcher()
    c = wrapping_columns([220] * 4)
    # The explorer's Q grid and resolution, shared both ways.
    # Physical bounds (physics.simulate) and the profile's Q points.
    qmin = keep("qmin", c[0].number_input("Q min (Å⁻¹)", key=clamped("train_qmin", PYREFLECT_QMIN, 0.0, MAX_Q, "qmin"),
                                          min_value=0.0, max_value=MAX_Q, format="%.5f", step=0.001))
    qmax = keep("qmax", c[1].number_input("Q max (Å⁻¹)", key=clamped("train_qmax", PYREFLECT_QMAX, 0.0, MAX_Q, "qmax"),
                                          min_value=0.0, max_value=MAX_Q, format="%.5f", step=0.01))
    max_nq = min(MAX_Q_POINTS, limits.q_points)
    nq = keep("nq", c[2].number_input("Q points", key=clamped("train_nq", PYREFLECT_NQ, 2, max_nq, "nq"), min_value=2,
                                      max_value=max_nq))
    dq_percent = keep("dq_percent", c[3].number_input(
        "dQ/Q (FWHM, %)", key=clamped("train_dq", 100 * PYREFLECT_DQ, 0.0, 100 * MAX_DQ, "dq_percent"),
        min_value=0.0, max_value=100 * MAX_DQ, format="%.4f", step=0.5))
    noise = noise_inputs()
    c = wrapping_columns([400])
    exact = keep("train_exact", c[0].toggle(
        "Exact pairs (R from the label profile)", key=seed("train_exact", False),
        help="Default: curves from the slab model (Névot–Croce), about 1 % median from the curve of their own label "
             "profile on the default prior, more where interfaces are very rough. Exact: each curve is computed from "
             "its label profile itself (microslabs), about 50× slower to generate."))

    dataset = {"prior": {"film": film.to_dict(), "bounds": bounds}, "n": int(n_curves), "seed": int(data_seed),
               "sampler": sampler, "qmin": qmin, "qmax": qmax, "nq": int(nq), "dq": dq_percent / 100,
               "n_profile": int(n_profile), "exact": exact,
               "noise": noise}
    try:
        dataset_config = dataset_from_dict(dataset)
    except DatasetError as exc:
        st.error(str(exc))
        return None
    with st.spinner("Estimating…"):
        gen_s = _generation_estimate(dataset)
    st.caption(f"On disk: {dataset_bytes(dataset_config) / 1e6:,.1f} MB (float32 .npy, pyreflect format). "
               f"Estimated generation time here: {gen_s:,.0f} s.")
    return dataset, int(n_curves), int(nq), int(n_profile)


def uploaded_dataset():
    """One of the user's uploaded array sets: (spec, curves, Q points, z points), or None."""
    sets = user_files.array_sets(user)
    if not sets:
        st.warning("You have no uploaded training arrays: add an NR + SLD pair on the 'Models and data' page, "
                   "or generate the curves from the explorer's film.")
        return None
    folders = [f for f, _ in sets]
    if remembered("train_arrays") not in folders:  # a set since deleted, or none chosen yet
        keep("train_arrays", folders[0])
    folder = keep("train_arrays", st.selectbox(
        "Array set", folders, key=seed("train_arrays", folders[0]),
        format_func=lambda f: next(f"{i['nr']} + {i['sld']} ({i['curves']:,} curves)" for g, i in sets if g == f)))
    info = next(i for f, i in sets if f == folder)
    dq = number(st, "Their resolution, dQ/Q (FWHM, %)", "train_arrays_dq", 100 * PYREFLECT_DQ, format="%.4f",
                min_value=0.0, max_value=49.9,
                help="Used when NR is recomputed from predicted profiles for the test metrics.")
    beam_from = film.beam_from if film is not None else "ambient"
    return {"arrays": folder, "dq": dq / 100, "beam_from": beam_from}, info["curves"], info["q_points"], \
        info["z_points"]


st.header("1. Training data")
source = keep("train_source", st.radio("Source", ["generate", "upload"], horizontal=True,
                                       key=seed("train_source", "generate"),
                                       format_func={"generate": "generate from the explorer's film",
                                                    "upload": "my uploaded arrays"}.get))
chosen = generated_dataset() if source == "generate" else uploaded_dataset()
dataset, n_curves, nq, n_profile = chosen or (None, 0, 0, 0)

# --- model and training -------------------------------------------------------------------------------
st.header("2. Network and training")
c = wrapping_columns([225, 158, 158, 158, 158])  # the architecture's names are long
arch = keep("train_arch", c[0].selectbox("Architecture", ARCHITECTURES, key=seed("train_arch", "compact_cnn"),
                                         format_func={"compact_cnn": "compact CNN (CPU-friendly)",
                                                      "pyreflect_cnn": "pyreflect CNN (155 M, GPU)"}.get))
layers = number(c[1], "Conv layers", "train_layers", 4 if arch == "compact_cnn" else 12, min_value=1,
                max_value=limits.cnn_layers)
channels = number(c[2], "Channels", "train_channels", 32, min_value=1, max_value=limits.channels,
                  disabled=arch != "compact_cnn")
hidden = number(c[3], "Dense width", "train_hidden", 256, min_value=8, max_value=limits.hidden,
                disabled=arch != "compact_cnn")
dropout = number(c[4], "Dropout", "train_dropout", 0.05, min_value=0.0, max_value=limits.dropout, step=0.05,
                 format="%.2f")
c = wrapping_columns([172] * 5)
epochs = number(c[0], "Epochs", "train_epochs", 25, min_value=1, max_value=limits.epochs)
batch = number(c[1], "Batch size", "train_batch", 64, min_value=1, max_value=limits.batch_size)
lr = number(c[2], "Learning rate", "train_lr", 1e-3, min_value=1e-7, max_value=1.0, format="%.1e")
weight_decay = number(c[3], "Weight decay", "train_wd", 1e-5, min_value=0.0, max_value=1.0, format="%.1e")
optimizer = keep("train_opt", c[4].selectbox("Optimizer", OPTIMIZERS, key=seed("train_opt", "adamw")))
c = wrapping_columns([172] * 5)
val_fraction = number(c[0], "Validation fraction", "train_val", 0.1, min_value=0.01, max_value=0.49, step=0.05)
test_fraction = number(c[1], "Test fraction", "train_test", 0.1, min_value=0.01, max_value=0.49, step=0.05,
                       help="Held out until the end: never used for training, normalisation or model selection.")
train_seed = number(c[2], "Training seed", "train_seed", 0, min_value=0, max_value=2**32 - 1)
patience = number(c[3], "Early stopping (epochs)", "train_patience", 8, min_value=0, max_value=limits.epochs,
                  help="Stop after this many epochs without validation improvement; 0 = never.")
checkpoint_every = number(c[4], "Checkpoint every (epochs)", "train_ckpt", 5, min_value=0, max_value=limits.epochs)

model = {"arch": arch, "layers": int(layers), "channels": int(channels), "hidden": int(hidden),
         "dropout": float(dropout)}
training = {"epochs": int(epochs), "batch_size": int(batch), "lr": float(lr), "weight_decay": float(weight_decay),
            "optimizer": optimizer, "val_fraction": float(val_fraction), "test_fraction": float(test_fraction),
            "seed": int(train_seed), "patience": int(patience), "checkpoint_every": int(checkpoint_every)}

# --- where it runs ---------------------------------------------------------------------------------------
MODAL_LABELS = {"local": "this machine", "modal": "Modal GPU"}
place = {"backend": "local", "gpu": None}
if backends.is_registered("modal"):  # registered at startup when MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are set
    c = st.columns([2, 2, 3], vertical_alignment="bottom")
    backend = keep("train_backend", c[0].radio("Run on", list(MODAL_LABELS), key=seed("train_backend", "local"),
                                               horizontal=True, format_func=MODAL_LABELS.get))
    tiers = list(limits.gpu_tiers)
    if remembered("train_gpu") not in tiers:
        keep("train_gpu", tiers[0])
    gpu = keep("train_gpu", c[1].selectbox(
        "GPU tier", tiers, key=seed("train_gpu", tiers[0]), disabled=backend != "modal",
        format_func=lambda t: f"{t} (${costs.GPU_PRICE_PER_S[t] * 3600:,.2f}/h)",
        help="Modal bills per second of GPU time. " + "; ".join(f"{t}: {costs.WHEN_TO_PICK[t]}" for t in tiers)))
    if backend == "modal":
        place = {"backend": "modal", "gpu": gpu}
        c[2].caption(f"On Modal: progress every few seconds, pause and resume through checkpoints on the Hub; a "
                     f"call ends after {costs.TIMEOUT_S / 3600:g} h.")
elif remembered("train_backend") == "modal":
    keep("train_backend", "local")  # Modal is not configured (any more): this machine

spec = None
try:
    if dataset is None:
        raise SpecError("the training data above are not set")  # said there, beside their inputs
    spec = TrainSpec.parse({"kind": "train", "dataset": dataset, "model": model, "training": training, **place})
    st.session_state[SPEC_KEY] = spec.to_dict()
    workspace.keep_train(spec.to_dict())  # written only when something changed
    n_train = int(n_curves * (1 - val_fraction - test_fraction))
    params, size = model_size(spec.model, nq, n_profile)
    # Filled after the runs below: timing a new network takes a few seconds, and the monitor should not wait.
    estimates = st.container()
    render_machine_cap(spec, limits, user.name)
except (SpecError, ModelError, TrainingError) as exc:
    if dataset is not None:
        st.error(str(exc))
    spec = None

with st.form("submit_run", clear_on_submit=False, border=False):
    c = st.columns([3, 1], vertical_alignment="bottom")
    run_name = c[0].text_input("Run name (optional)", max_chars=80, placeholder="e.g. polymer on Si, 5k curves")
    if c[1].form_submit_button("Train", type="primary", width="stretch", disabled=spec is None,
                               help="Fix the message above first." if spec is None else None):
        try:
            # The widgets are clamped to the limits; the job store checks the spec and the user's
            # active jobs again, once, under its lock (two tabs submitting at once cannot both pass).
            rate_limit.hit(user.name, "submit", rate_limit_per_minute("submit"))
            run_id, _ = records.submit_training(user, spec, run_name.strip() or None, limits=limits,
                                                estimate_s=_estimate_or_none(model, training, n_train, nq, n_profile))
            st.session_state[SELECTED] = run_id
        except ReflectError as exc:
            st.error(str(exc))

# --- runs ------------------------------------------------------------------------------------------------
st.header("3. Runs")
run = choose_run(user)
if run is not None:
    render_monitor(run.run_id, run.state, user)
    if run.state == "completed":
        render_results(run.run_dir)

if spec is not None:
    with estimates:
        try:
            with st.spinner("Timing this network on this machine (a few seconds, once per setting)…"):
                train_s = _training_estimate(model, training, n_train, nq, n_profile)
            timing = (f"Estimated training time here: {train_s / 60:,.1f} min for {epochs} epochs (early stopping "
                      "may end sooner)." + _estimate_spread())
        except TrainingError as exc:  # the timing process failed (memory, a timeout): training itself may still run
            train_s, timing = None, f"No training time estimate: {exc}."
        st.caption(f"Model: {params:,} parameters ({size / 1e6:,.1f} MB), counted from the settings. {timing}")
        if spec.backend == "modal" and train_s is not None:
            gen_s = 0.0 if "arrays" in dataset else _generation_estimate(dataset)
            st.info(costs.estimate(spec.gpu, train_s, gen_s).describe())
