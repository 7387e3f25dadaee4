"""The training page through AppTest: submit, poll, pause and resume, results; and
values that survive switching pages."""

import time

import pytest
from conftest import ROOT
from layer_table import edit_cells, table_values
from streamlit.testing.v1 import AppTest

from reflect_core import jobs

APP = str(ROOT / "app.py")
TINY = {"train_n": 300, "train_epochs": 3, "train_layers": 2, "train_channels": 8, "train_hidden": 32}


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: threads cost more than they give
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    return at


def set_numbers(at, values):
    for key, value in values.items():
        at.number_input(key=key).set_value(value)
    at.run()


def submit(at, name):
    at.text_input[0].set_value(name)
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception, at.exception
    return at.session_state["train_selected_run"]


def wait_for(at, run_id, states, timeout=120):
    """Rerun the page (fragment timers do not fire in AppTest) until the run is in
    one of ``states`` and the page has drawn it so."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if jobs.get(run_id).state in states and any(f"**{jobs.get(run_id).state}" in m.value for m in shown(at)):
            return
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} is {jobs.get(run_id).state}; page shows {[m.value for m in shown(at)]}")


def shown(at):
    return [*at.success, *at.info, *at.warning, *at.error, *at.markdown]


def test_submit_poll_and_results(app):
    set_numbers(app, TINY)
    assert any("Estimated training time" in c.value for c in app.caption)
    run_id = submit(app, "tiny run")
    assert jobs.get(run_id).name == "tiny run"
    wait_for(app, run_id, {"completed"})
    assert any(s.value.startswith("**completed") for s in app.success)
    assert any("Results on the held-out test set" in s.value for s in app.subheader)
    table = app.dataframe[-1].value
    assert list(table["metric"])[0].startswith("SLD RMSE")
    assert len(app.get("plotly_chart")) >= 4  # profile, NR, parity, losses
    assert any("Download the model" in b.label for b in app.get("download_button"))


def test_pause_and_resume_buttons(app):
    set_numbers(app, {**TINY, "train_n": 2000, "train_epochs": 200})
    run_id = submit(app, "long run")
    wait_for(app, run_id, {"running"})
    deadline = time.time() + 60
    while jobs.get(run_id).progress.phase != "training" and time.time() < deadline:
        time.sleep(0.5)
    app.run()
    next(b for b in app.button if b.label == "Pause").click().run()
    wait_for(app, run_id, {"paused"})
    assert (jobs.get(run_id).run_dir / "checkpoint.pt").exists()
    next(b for b in app.button if b.label == "Resume").click().run()
    wait_for(app, run_id, {"running"})
    next(b for b in app.button if b.label == "Stop").click().run()
    wait_for(app, run_id, {"stopped"})
    assert {"retry", "delete"} <= set(jobs.get(run_id).actions)


def runs_section_shown(at) -> bool:
    return any(h.value == "3. Runs" for h in at.header)


def test_bad_dataset_is_reported_beside_it_and_the_rest_of_the_page_stays(app):
    set_numbers(app, {"train_qmin": 0.3})
    assert any("qmin" in e.value and "below" in e.value for e in app.error)
    train = next(b for b in app.button if b.label == "Train")
    assert train.disabled and runs_section_shown(app)  # the monitor and results are still there
    assert app.number_input(key="train_epochs").value == 25  # and the network settings
    assert jobs.list_runs() == []


def test_my_uploaded_arrays_without_any_keeps_the_page(app):
    app.radio(key="train_source").set_value("upload").run()
    assert not app.exception
    assert any("no uploaded training arrays" in w.value for w in app.warning)
    assert next(b for b in app.button if b.label == "Train").disabled and runs_section_shown(app)


def test_a_refresh_keeps_the_train_form_and_the_film(app, tmp_path):
    set_numbers(app, {"train_epochs": 7, "train_n": 1234})
    app.switch_page("app_pages/explorer.py").run()
    edit_cells(app, {2: {"thickness": 77.0}})
    app.number_input(key="qmax").set_value(0.25).run()
    # A browser refresh is a new session: nothing of the old one's state is left.
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.run()
    assert table_values(fresh)["thickness"][2] == 77.0 and fresh.number_input(key="qmax").value == 0.25
    assert any("from your last visit are back" in t.value for t in fresh.toast)
    fresh.switch_page("app_pages/train.py").run()
    assert fresh.number_input(key="train_epochs").value == 7 and fresh.number_input(key="train_n").value == 1234
    assert (tmp_path / "workspace" / "local" / "explorer.json").exists()


def test_an_unreadable_kept_film_starts_from_the_default_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    folder = tmp_path / "workspace" / "local"
    folder.mkdir(parents=True)
    (folder / "explorer.json").write_text('{"film": {"layers": [{"sld": "x"}]}}')
    (folder / "train.json").write_bytes(b"\xff\xfe not json")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and len(at.session_state["film_rows"]) == 8  # the default film
    assert any("could not be used" in t.value for t in at.toast)
    at.switch_page("app_pages/train.py").run()
    assert not at.exception and at.number_input(key="train_epochs").value == 25
    assert any("not valid JSON" in t.value for t in at.toast)


def test_edits_survive_switching_pages(app):
    set_numbers(app, {"train_epochs": 7, "train_qmax": 0.25})
    app.switch_page("app_pages/explorer.py").run()
    assert app.number_input(key="qmax").value == 0.25  # the Q grid is shared with the explorer
    edit_cells(app, {2: {"thickness": 77.0}})
    app.switch_page("app_pages/train.py").run()
    assert app.number_input(key="train_epochs").value == 7
    app.switch_page("app_pages/explorer.py").run()
    assert table_values(app)["thickness"][2] == 77.0


def test_match_a_measured_curve_sets_q_range_and_resolution(app):
    import numpy as np

    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.formats.curves import csv_text
    from reflect_core.store import user_curves

    q = np.geomspace(0.00835, 0.269, 120)
    user_curves.save_curve(LOCAL_USER, "run212592.txt",
                          csv_text(["Q", "R", "dR", "dQ"], [q, 1e-4 / q, 1e-5 / q, 0.028 * q]).encode())
    app.run()
    [matcher] = [s for s in app.selectbox if s.label.startswith("Match a measured curve")]
    matcher.set_value("run212592.txt").run()
    next(b for b in app.button if b.label == "Use its Q range, resolution and noise").click().run()
    assert not app.exception, app.exception
    assert app.number_input(key="train_qmin").value == pytest.approx(0.00835, rel=1e-9)
    assert app.number_input(key="train_qmax").value == pytest.approx(0.269, rel=1e-9)
    assert app.number_input(key="train_nq").value == 120
    assert app.number_input(key="train_dq").value == pytest.approx(2.8, rel=1e-9)
    # dR = R/10 everywhere: N₀ = median(R/dR²) = median(100/R); the background is the last tenth's median R.
    r = 1e-4 / q
    assert app.toggle(key="train_noise").value
    # The ranges are the 10th–90th percentiles over its points (N₀) and over its last tenth (background).
    assert app.number_input(key="train_counts").value == pytest.approx(np.percentile(100 / r, 10), rel=1e-9)
    assert app.number_input(key="train_counts_hi").value == pytest.approx(np.percentile(100 / r, 90), rel=1e-9)
    assert app.number_input(key="train_bkg").value == pytest.approx(np.percentile(r[-12:], 10), rel=1e-9)
    assert app.number_input(key="train_bkg_hi").value == pytest.approx(np.percentile(r[-12:], 90), rel=1e-9)
    assert any("Counting noise from its dR" in i.value and "median" in i.value for i in app.info)
    noise = app.session_state["train_spec"]["dataset"]["noise"]
    assert noise["counts_at_unity"][0] <= np.median(100 / r) <= noise["counts_at_unity"][1]


def test_match_the_real_measurement_sets_its_background_floor(app, shared_data_path):
    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.store import user_curves

    user_curves.save_curve(LOCAL_USER, "REFL_212592.txt", shared_data_path.read_bytes())
    app.run()
    [matcher] = [s for s in app.selectbox if s.label.startswith("Match a measured curve")]
    matcher.set_value("REFL_212592.txt").run()
    next(b for b in app.button if b.label == "Use its Q range, resolution and noise").click().run()
    assert not app.exception, app.exception
    # Its high-Q floor is ~1e-6 (9.1e-7: the median R above 0.18 Å⁻¹), its counting level ~1e6 at R = 1 (median).
    # Over its points the counting level spans three decades (1.3e4–8.5e6: angles of different intensity), the
    # floor 2.1e-7–2.4e-6 around its median; the ranges hold both medians.
    assert 1e-7 < app.number_input(key="train_bkg").value < 9.1e-7 < app.number_input(key="train_bkg_hi").value < 3e-6
    assert 5e3 < app.number_input(key="train_counts").value < 1e6 < app.number_input(key="train_counts_hi").value < 3e7


def test_widgets_carry_the_limits_and_the_physical_bounds(app):
    assert app.number_input(key="train_nq").max == 20_000  # the local profile: the physical bound
    assert app.number_input(key="train_n_profile").max == 5_000
    assert app.number_input(key="train_qmax").max == 2.0 and app.number_input(key="train_dq").max == 50.0
    assert app.number_input(key="train_channels").max == 512 and app.number_input(key="train_hidden").max == 8192
    assert any("20,000 Q points" in c.value and "200 M parameters" in c.value for c in app.caption)


def test_the_estimate_at_the_maxima_is_counted_not_built(app):
    set_numbers(app, {"train_nq": 20_000, "train_n_profile": 5_000, "train_channels": 512, "train_hidden": 8192,
                      "train_layers": 12})
    assert not app.exception, app.exception
    assert any("309,957,512 parameters" in c.value for c in app.caption), [c.value for c in app.caption]


def test_a_damaged_run_does_not_take_the_page_down_and_can_be_deleted(app):
    set_numbers(app, TINY)
    run_id = submit(app, "soon damaged")
    wait_for(app, run_id, {"completed"})
    (jobs.run_dir(run_id) / jobs.STATE).write_text('{"owner": "local", "state": "compl')
    app.run()
    assert not app.exception, app.exception
    assert any("**damaged**" in e.value and "state.json" in e.value for e in app.error)
    next(b for b in app.button if b.label == "Delete").click().run()
    assert not app.exception, app.exception
    assert len(jobs.list_runs()) == 1 and any("cannot be undone" in w.value for w in app.warning)  # asks first
    next(b for b in app.button if b.label == "Keep it").click().run()
    assert len(jobs.list_runs()) == 1 and any(b.label == "Delete" for b in app.button)
    next(b for b in app.button if b.label == "Delete").click().run()
    next(b for b in app.button if b.label == "Yes, delete it").click().run()
    assert not app.exception, app.exception
    assert jobs.list_runs() == []


def test_a_recipe_fills_size_network_and_schedule_and_keeps_the_film(app):
    from reflect_core.ml.recipes import ABOUT, FOLDER, recipe

    assert {p.stem for p in FOLDER.glob("*.json")} == set(ABOUT)  # every recipe file is offered, and parses
    qmax = app.number_input(key="train_qmax").value
    app.selectbox(key="train_recipe").set_value("quick").run()
    next(b for b in app.button if b.label == "Use this recipe").click().run()
    assert not app.exception, app.exception
    quick = recipe("quick")
    assert app.number_input(key="train_n").value == quick["dataset"]["n"]
    assert app.number_input(key="train_epochs").value == quick["training"]["epochs"]
    assert app.number_input(key="train_qmax").value == qmax  # the Q grid is the film's business, not the recipe's
    assert any("Recipe 'quick'" in i.value for i in app.info)
    app.selectbox(key="train_recipe").set_value("gpu").run()
    next(b for b in app.button if b.label == "Use this recipe").click().run()
    # 200,000 curves are over the local profile's 100,000: held at the limit, and said.
    assert app.number_input(key="train_n").value == 100_000
    assert any("held at them: curves 200,000 (limit 100,000)" in i.value for i in app.info)
