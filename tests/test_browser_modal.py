"""The Modal flow in a real browser: submit on "Modal GPU" (T4) with the cost shown, watch progress,
pause, resume, complete, see the results. The server runs with a fake Modal client boundary
(``modal_fake_server.py``): the remote body, job store, scheduler and pages are the real ones."""

import json
import sys
import time

import pytest
from conftest import ROOT
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_browser import (  # noqa: F401 - browser is a fixture
    ARTIFACTS,
    browser,
    fill_number,
    press_train_until_submitted,
    streamlit_server,
)

pytestmark = pytest.mark.browser


def wait_for_state(jobs, run_id, states, timeout=240, check=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = jobs.get(run_id)
        if info.state in states and (check is None or check(info)):
            return info
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} is {jobs.get(run_id).state} ({jobs.get(run_id).error}), not {states}")


def press(page, name, run_id):
    """A job-monitor button, found again each time: the fragment redraws it every poll."""
    for _ in range(5):
        try:
            page.locator(f".st-key-{name}_{run_id} button").first.click(timeout=10_000)
            return
        except PlaywrightTimeout:
            page.wait_for_timeout(500)
    pytest.fail(f"no {name} button for run {run_id}")


def test_submit_on_modal_pause_resume_complete(browser, tmp_path, monkeypatch):  # noqa: F811
    data = tmp_path / "data"
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('MODAL_TOKEN_ID = "ak-fake"\nMODAL_TOKEN_SECRET = "as-fake"\n')
    launcher = [sys.executable, str(ROOT / "tests" / "modal_fake_server.py"), str(tmp_path / "hub"), "0.4"]
    monkeypatch.setenv("REFLECT_DATA_DIR", str(data))
    from reflect_core import jobs

    env = {"REFLECT_DATA_DIR": str(data), "REFLECT_SECRETS_FILE": str(secrets), "OMP_NUM_THREADS": "1"}
    with streamlit_server(env, launcher=launcher) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 2600})
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.get_by_role("link", name="Train", exact=True).click()
        page.wait_for_selector("text=Estimated training time", timeout=60_000)
        for label, value in (("Curves", 200), ("Epochs", 10), ("Conv layers", 1), ("Channels", 4),
                             ("Dense width", 16), ("Checkpoint every (epochs)", 1)):
            fill_number(page, label, value)
        page.get_by_text("Modal GPU", exact=True).click()
        page.wait_for_selector("text=Estimated cost on T4", timeout=30_000)
        page.get_by_label("Run name (optional)").fill("on modal")

        [run] = press_train_until_submitted(page, jobs)
        spec = json.loads((run.run_dir / jobs.SPEC).read_text())
        assert (run.backend, spec["gpu"]) == ("modal", "T4")

        wait_for_state(jobs, run.run_id, {"running"}, check=lambda i: i.progress.epoch >= 2)
        page.wait_for_selector("text=epoch", timeout=30_000)
        press(page, "pause", run.run_id)
        paused = wait_for_state(jobs, run.run_id, {"paused"})
        assert 2 <= paused.progress.epoch < 10
        press(page, "resume", run.run_id)
        done = wait_for_state(jobs, run.run_id, {"completed"})
        assert done.attempts == 2 and done.progress.epoch == 10 and done.error is None
        try:
            page.wait_for_selector("text=Results on the held-out test set", timeout=90_000)
        except PlaywrightTimeout:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "modal_failure.png"), full_page=True)
            raise
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "modal_results.png"), full_page=True)
        errors = page.locator("[data-testid='stException']")
        assert errors.count() == 0, errors.first.inner_text()
        page.close()
