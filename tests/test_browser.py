"""A real browser (Debian's Chromium through Playwright) against `streamlit run`."""

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env_changes: dict, launcher: list[str] | None = None):
    """`streamlit run app.py` on a free loopback port (through ``launcher`` instead of
    ``python -m streamlit`` when given); yields its URL."""
    port = free_port()
    env = dict(os.environ, **env_changes)
    proc = subprocess.Popen(
        [*(launcher or [sys.executable, "-m", "streamlit"]), "run", str(ROOT / "app.py"), "--server.port", str(port),
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
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def server(data_dir):
    with streamlit_server({"REFLECT_DATA_DIR": str(data_dir)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed; scripts/setup.sh --test installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


# null while Streamlit redraws the chart (the element is briefly absent or empty).
SIGNATURE_JS = ("() => { const p = document.querySelectorAll('.js-plotly-plot')[0];"
                " return p && p.data && p.data[0] ? JSON.stringify(p.data[0].y) : null; }")


def curve_signature(page) -> str:
    # The first trace of the reflectivity chart, as Plotly holds it in the page
    # (plain list or base64-packed array: either way its JSON changes with the data).
    return page.evaluate(SIGNATURE_JS)


def edit_table_cell(page, row: int, column: int, value: str) -> None:
    """Type into the layer table (a canvas grid) as a person does with the keyboard: click the first
    cell, arrow to the cell, Enter opens its editor, select all, type, Enter commits."""
    canvas = page.locator("[data-testid='stDataFrame'] canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 35 + 17)  # below the 35 px header row
    page.wait_for_timeout(250)  # a re-created table takes the keyboard once it has mounted
    for key, times in (("ArrowRight", column), ("ArrowDown", row)):
        for _ in range(times):
            page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    page.keyboard.press("Control+A")
    page.keyboard.type(value, delay=30)
    page.keyboard.press("Enter")


def test_edit_a_layer_and_see_the_chart_update(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1800})
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length == 2", timeout=30_000)
    page.wait_for_function(f"() => ({SIGNATURE_JS})() !== null", timeout=30_000)
    before = curve_signature(page)

    edit_table_cell(page, row=3, column=4, value="120")  # layer 3's thickness
    page.wait_for_function(f"(before) => {{ const now = ({SIGNATURE_JS})(); return now !== null && now !== before; }}",
                           arg=before, timeout=30_000)
    assert curve_signature(page) != before
    # the table's accessible copy of the cell (redrawn a moment after the chart)
    page.wait_for_function("() => document.querySelector('#glide-cell-4-3')?.innerText === '120'", timeout=10_000)
    assert page.locator("[data-testid='stException']").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # Undo takes the edit back; the edit is then made again.
    page.get_by_role("button", name="Undo").click()
    page.wait_for_function("() => document.querySelector('#glide-cell-4-3')?.innerText === '178.66'",
                           timeout=30_000)
    before = curve_signature(page)
    edit_table_cell(page, row=3, column=4, value="121")
    # (the cell shows a value as soon as it is typed; the chart only once the server has it)
    page.wait_for_function(f"(before) => {{ const now = ({SIGNATURE_JS})(); return now !== null && now !== before; }}",
                           arg=before, timeout=30_000)
    # A browser refresh is a new session: the film comes back from the user's kept work.
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function("() => document.querySelector('#glide-cell-4-3')?.innerText === '121'", timeout=60_000)
    page.close()


def fill_number(page, label, value):
    field = page.get_by_role("spinbutton", name=label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(700)  # let the rerun land before the next edit


def press_train_until_submitted(page, jobs) -> list:
    """Press Train until the job store (not the page) shows a run; the runs."""
    train = page.get_by_role("button", name="Train", exact=True)
    for _ in range(4):
        train.click(timeout=30_000)
        deadline = time.time() + 15
        while not jobs.list_runs() and time.time() < deadline:
            time.sleep(0.5)
        if jobs.list_runs():
            return jobs.list_runs()
    pytest.fail("four presses of Train submitted no run")


def test_train_a_tiny_model_and_see_its_results(server, browser, data_dir, monkeypatch):
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    page.get_by_role("link", name="Train", exact=True).click()
    page.wait_for_selector("text=Estimated training time", timeout=60_000)
    for label, value in (("Curves", 300), ("Epochs", 3), ("Conv layers", 2), ("Channels", 8), ("Dense width", 32)):
        fill_number(page, label, value)
    page.wait_for_selector("text=Estimated training time", timeout=60_000)
    page.get_by_label("Run name (optional)").fill("browser run")  # (Enter would submit the form)
    monkeypatch.setenv("REFLECT_DATA_DIR", str(data_dir))
    from reflect_core import jobs

    [run] = press_train_until_submitted(page, jobs)
    deadline = time.time() + 300
    while jobs.get(run.run_id).state in ("queued", "running"):
        assert time.time() < deadline, f"run still {jobs.get(run.run_id).state} after 300 s"
        time.sleep(1)
    run = jobs.get(run.run_id)
    assert run.state == "completed", f"run ended {run.state}: {run.error}"
    try:
        page.wait_for_selector("text=Results on the held-out test set", timeout=60_000)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "train_failure.png"), full_page=True)
        raise
    page.wait_for_timeout(2000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train_results.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    [run] = jobs.list_runs()
    assert run.name == "browser run" and run.state == "completed"
    page.close()


def choose_in_multiselect(page, label: str, option_name: re.Pattern, attempts: int = 6) -> None:
    """Pick one option of a Streamlit multiselect, retrying while reruns redraw it.

    Right after a login or a page switch Streamlit may rerun once more (the auth cookie
    component, the navigation); a rerun closes an open option list, so a single click
    can land on a list that no longer exists. Each attempt reopens it and checks the chip.
    """
    box = page.locator("[data-testid='stMultiSelect']").filter(has_text=label)
    option = page.get_by_role("option", name=option_name)
    for _ in range(attempts):
        try:
            box.locator("input").click(timeout=10_000)
            option.click(timeout=10_000)
            page.keyboard.press("Escape")  # close the list, or the next click only closes it
            box.get_by_text(option_name).first.wait_for(state="visible", timeout=10_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "multiselect_failure.png"), full_page=True)
    pytest.fail(f"could not choose {option_name.pattern!r} in {label!r} after {attempts} attempts "
                "(screenshot in tests/artifacts/multiselect_failure.png)")


def test_log_in_open_a_run_and_download_its_bundle(browser, tmp_path, monkeypatch):
    import io
    import zipfile

    import yaml

    from reflect_core import jobs
    from reflect_core.accounts.access import User
    from reflect_core.accounts.auth_config import hash_password
    from reflect_core.ml.spec import TrainSpec
    from reflect_core.store import records

    data = tmp_path / "data"
    monkeypatch.setenv("REFLECT_DATA_DIR", str(data))
    auth = tmp_path / "auth.yaml"
    auth.write_text(yaml.safe_dump({
        "credentials": {"usernames": {"alice": {"name": "Alice", "email": "alice@lab.org",
                                                "password": hash_password("alice-password-1")}}},
        "cookie": {"name": "reflect_browser_test", "key": secrets.token_urlsafe(48), "expiry_days": 1}}))
    # A finished run of alice's, made through the same job system the page uses.
    spec = TrainSpec.parse({"dataset": {"n": 200}, "model": {"layers": 1, "channels": 4, "hidden": 16},
                            "training": {"epochs": 2}})
    run_id, _ = records.submit_training(User("alice"), spec, "alice's first model")
    deadline = time.time() + 180
    while jobs.get(run_id).state != "completed":
        assert time.time() < deadline and jobs.get(run_id).state in ("queued", "running"), jobs.get(run_id)
        jobs.tick()
        time.sleep(0.5)

    with streamlit_server({"REFLECT_DATA_DIR": str(data), "AUTH_CONFIG": str(auth)}) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 2000}, accept_downloads=True)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("textbox", name="Username").fill("alice")
        page.get_by_role("textbox", name="Password").fill("alice-password-1")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.get_by_role("link", name="History", exact=True).click()
        page.wait_for_selector("text=Select records", timeout=60_000)
        choose_in_multiselect(page, "Select records", re.compile("alice's first model"))
        page.wait_for_selector("text=Export as a bundle", timeout=30_000)
        expander = page.locator("details").filter(has_text="Export as a bundle")
        download_button = page.get_by_role("button", name=re.compile("Download bundle"))
        for _ in range(3):  # open the expander; a click lost to a rerun leaves it closed
            if expander.get_attribute("open") is None:
                page.get_by_text("Export as a bundle").click()
            try:
                download_button.wait_for(state="visible", timeout=15_000)
                break
            except PlaywrightTimeout:
                pass
        download_button.wait_for(state="visible", timeout=15_000)
        page.wait_for_timeout(1000)  # let the selection's rerun finish before clicking
        with page.expect_download(timeout=90_000) as download:
            download_button.click()
        bundle = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
        assert {"record.json", "figures.html", "model/model.pt"} <= set(bundle.namelist())
        page.wait_for_timeout(1500)  # let the rerun after the download settle
        open_button = page.get_by_text("Open", exact=True).first
        results = page.get_by_text("Results on the held-out test set")
        for _ in range(3):  # a click that lands during a rerun is lost: click again while the button stays
            open_button.click(timeout=30_000)
            try:
                results.wait_for(state="visible", timeout=30_000)
                break
            except PlaywrightTimeout:
                if not open_button.is_visible():
                    raise
        results.wait_for(state="visible", timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "opened_run.png"), full_page=True)
        page.close()


def open_explorer(server, browser, height=2200):
    page = browser.new_page(viewport={"width": 1500, "height": height})
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length == 2", timeout=60_000)
    page.wait_for_function(f"() => ({SIGNATURE_JS})() !== null", timeout=30_000)
    return page


def wait_for_cell(page, column: int, row: int, text: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#glide-cell-{column}-{row}')?.innerText === '{text}'",
                           timeout=30_000)


def test_tune_a_layer_then_remove_it_and_undo(server, browser):
    page = open_explorer(server, browser)
    before = curve_signature(page)
    thickness = page.locator("[data-testid='stNumberInput'] input[aria-label='Thickness (Å)']").first
    thickness.fill("40")
    thickness.press("Enter")  # the tuner sends on Enter
    page.wait_for_function(f"(before) => {{ const now = ({SIGNATURE_JS})(); return now !== null && now !== before; }}",
                           arg=before, timeout=30_000)
    wait_for_cell(page, 4, 1, "40")  # layer 1's thickness in the table
    rows = page.evaluate("() => document.querySelectorAll('[id^=glide-cell-0-]').length")
    # A structure edit: remove the picked layer (layer 1), then take it back with Undo.
    page.wait_for_timeout(1000)  # the tuner's rerun has ended (a click during a rerun is lost)
    page.get_by_role("button", name=re.compile("icon Remove$")).click()
    try:
        wait_for_cell(page, 0, rows - 2, "ambient")  # one row fewer, the ambient still last
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "remove_failure.png"), full_page=True)
        raise
    page.wait_for_timeout(1000)
    page.get_by_role("button", name=re.compile("icon Undo$")).click()
    try:
        wait_for_cell(page, 0, rows - 1, "ambient")
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "undo_failure.png"), full_page=True)
        raise
    wait_for_cell(page, 4, 1, "40")  # the removed layer is back with its tuned value
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_overlay_a_measured_curve_and_read_its_chi2(server, browser, data_dir, monkeypatch):
    import numpy as np

    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.formats.curves import csv_text
    from reflect_core.store import user_curves

    monkeypatch.setenv("REFLECT_DATA_DIR", str(data_dir))
    q = np.geomspace(0.01, 0.15, 80)
    r = 1e-3 * (0.02 / q) ** 4
    user_curves.save_curve(LOCAL_USER, "steep.txt", csv_text(["Q", "R", "dR"], [q, r, 0.05 * r]).encode())
    page = open_explorer(server, browser)
    page.get_by_role("combobox", name="Overlay a measured curve").click()
    page.get_by_role("option", name=re.compile("steep")).click()
    page.get_by_text(re.compile("χ²")).first.wait_for(state="visible", timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot')[0].data.some(t => t.name === 'data')",
                           timeout=30_000)  # the measured points are drawn on the film's curve
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_bad_train_input_keeps_the_runs_and_delete_asks_first(server, browser, data_dir, monkeypatch):
    from reflect_core import jobs
    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.ml.spec import TrainSpec
    from reflect_core.store import records

    monkeypatch.setenv("REFLECT_DATA_DIR", str(data_dir))
    spec = TrainSpec.parse({"dataset": {"n": 200}, "model": {"layers": 1, "channels": 4, "hidden": 16},
                            "training": {"epochs": 1}})
    run_id, _ = records.submit_training(LOCAL_USER, spec, "run to delete")
    deadline = time.time() + 180
    while jobs.get(run_id).state in ("queued", "running"):
        assert time.time() < deadline, jobs.get(run_id)
        jobs.tick()
        time.sleep(0.5)
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(server + "/train", wait_until="domcontentloaded")
    page.wait_for_selector("text=3. Runs", timeout=60_000)
    # "my uploaded arrays" with none uploaded: said beside the choice, Train disabled, the runs stay.
    page.get_by_text("my uploaded arrays").click()
    page.get_by_text("You have no uploaded training arrays").wait_for(timeout=30_000)
    # Train is disabled (every copy: Streamlit keeps a hidden one of a form's button).
    page.wait_for_function("() => { const b = [...document.querySelectorAll("
                           "'[data-testid=stBaseButton-primaryFormSubmit]')]"
                           ".filter(x => x.innerText.trim() === 'Train');"
                           " return b.length > 0 && b.every(x => x.disabled); }", timeout=30_000)
    page.get_by_text("3. Runs").first.wait_for(state="visible")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stSelectbox]')].some("
                           "e => e.innerText.includes('Run') && (e.innerText + (e.querySelector('input')?.value ?? ''))"
                           ".includes('run to delete'))", timeout=30_000)  # the newest run is the one shown
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text(re.compile("Delete run 'run to delete'.*cannot be undone")).wait_for(timeout=30_000)
    assert jobs.get(run_id).state == "completed"  # nothing is deleted before the answer
    page.get_by_role("button", name="Keep it").click()
    page.get_by_role("button", name="Delete", exact=True).wait_for(timeout=30_000)
    assert jobs.get(run_id).state == "completed"
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Yes, delete it").click()
    deadline = time.time() + 30
    while run_id in [r.run_id for r in jobs.list_runs()]:
        assert time.time() < deadline, "the run was not deleted after 'Yes, delete it'"
        time.sleep(0.5)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()
