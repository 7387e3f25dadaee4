"""A real browser (Debian's Chromium through Playwright) against `streamlit run`."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def server(data_dir):
    port = free_port()
    env = dict(os.environ, REFLECT_DATA_DIR=str(data_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 60 s:\n" + proc.stdout.read().decode(errors="replace"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed; scripts/setup.sh --test installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


SIGNATURE_JS = "() => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[0].data[0].y)"


def curve_signature(page) -> str:
    # The first trace of the reflectivity chart, as Plotly holds it in the page
    # (plain list or base64-packed array: either way its JSON changes with the data).
    return page.evaluate(SIGNATURE_JS)


def test_edit_a_layer_and_see_the_chart_update(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1800})
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length == 2", timeout=30_000)
    before = curve_signature(page)

    thickness = page.get_by_label("Thickness (Å) of layer 3")
    thickness.fill("120")
    thickness.press("Enter")
    page.wait_for_function(f"(before) => ({SIGNATURE_JS})() !== before", arg=before, timeout=30_000)
    assert curve_signature(page) != before
    assert page.locator("[data-testid='stException']").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    page.close()


def fill_number(page, label, value):
    field = page.get_by_role("spinbutton", name=label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(700)  # let the rerun land before the next edit


def test_train_a_tiny_model_and_see_its_results(server, browser, data_dir, monkeypatch):
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    page.get_by_role("link", name="Train").click()
    page.wait_for_selector("text=Estimated training time", timeout=60_000)
    for label, value in (("Curves", 300), ("Epochs", 3), ("Conv layers", 2), ("Channels", 8), ("Dense width", 32)):
        fill_number(page, label, value)
    page.wait_for_selector("text=Estimated training time", timeout=60_000)
    page.get_by_label("Run name (optional)").fill("browser run")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Results on the held-out test set", timeout=240_000)
    page.wait_for_timeout(2000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train_results.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    monkeypatch.setenv("REFLECT_DATA_DIR", str(data_dir))
    from reflect_core import jobs

    [run] = jobs.list_runs()
    assert run.name == "browser run" and run.state == "completed"
    page.close()
