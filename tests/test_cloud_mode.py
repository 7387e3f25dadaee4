"""Community Cloud's shared defaults (README, Configuration): detected or set with REFLECT_CLOUD,
login required, the shared limits for non-admins, local training capped for everyone, error
details hidden from visitors but logged, no developer toolbar; an invalid setting keeps the app closed."""

import logging

import pytest
from conftest import ROOT
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from test_accounts_app import app_env, closed, hashes, log_in, login_file  # noqa: F401 - fixtures

from reflect_core import jobs
from reflect_core.accounts.auth_config import (
    AuthConfigError,
    cloud_override,
    deployment_profile,
    public_host,
)
from reflect_core.accounts.limits import LOCAL, SHARED, LimitError, local_cpu_seconds, spec_violations, with_machine
from reflect_core.accounts.machine import CLOUD
from reflect_core.jobs import backends
from reflect_core.jobs.runfiles import locked, read_state, run_dir, write_state
from reflect_core.ml.spec import TrainSpec

APP = str(ROOT / "app.py")
CLOUD_HOST = {"HOSTNAME": "streamlit"}
LAB = {"HOSTNAME": "lab-server"}
HOME = "/home/me/app"
OPTIONS = ("client.showErrorDetails", "client.toolbarMode")
FILM = {"layers": [{"name": "Si", "sld": 2.07, "isld": 0, "thickness": 0, "roughness": 3},
                   {"name": "film", "sld": 4.0, "isld": 0, "thickness": 100, "roughness": 5},
                   {"name": "air", "sld": 0, "isld": 0, "thickness": 0, "roughness": 0}]}
# The default network, 5,000 curves: 25 epochs are 4.6 CPU-min (fits), 200 are 36 CPU-min (does not).
BIG = {"train_epochs": 200}


def spec(epochs=25, backend="local", gpu=None) -> TrainSpec:
    return TrainSpec.parse({"kind": "train", "backend": backend, "gpu": gpu,
                            "dataset": {"prior": {"film": FILM, "bounds": [
                                {"i": 1, "par": "thickness", "bounds": [50, 150]}]}, "n": 5000},
                            "model": {}, "training": {"epochs": epochs}})


@pytest.fixture(autouse=True)
def client_options():
    """The options are process-wide: each test starts from config.toml's and leaves them so."""
    saved = {key: st_config.get_option(key) for key in OPTIONS}
    yield
    for key, value in saved.items():
        st_config.set_option(key, value)


@pytest.fixture
def cloud(login_file, monkeypatch):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("HOSTNAME", "streamlit")
    monkeypatch.delenv("REFLECT_CLOUD", raising=False)
    return login_file


def run_app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


def train_page(at, numbers=None):
    at.switch_page("app_pages/train.py").run()
    for key, value in (numbers or {}).items():
        at.number_input(key=key).set_value(value)
    at.run()
    assert not at.exception, at.exception
    return at


def click_train(at):
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception, at.exception
    return at


# --- the one place that names the deployment ------------------------------------------------------

@pytest.mark.parametrize("environ, app_dir, config, profile, public", [
    (CLOUD_HOST, HOME, {}, "cloud", True),
    ({}, "/mount/src/reflect-ml", {}, "cloud", True),
    (LAB, HOME, {}, "local", False),
    (LAB, HOME, {"AUTH_CONFIG": "auth.yaml"}, "server", False),
    (LAB, HOME, {"REFLECT_MODE": "shared"}, "server", False),
    (LAB, HOME, {"REFLECT_CLOUD": "on"}, "cloud", True),           # the Cloud defaults anywhere
    (LAB, HOME, {"REFLECT_CLOUD": True}, "cloud", True),
    (LAB, HOME, {"REFLECT_CLOUD": "off"}, "local", False),
    (CLOUD_HOST, HOME, {"REFLECT_CLOUD": " OFF "}, "server", True),  # lifts the cap only: still public
    (CLOUD_HOST, HOME, {"REFLECT_CLOUD": False}, "server", True),
])
def test_detection_and_override(environ, app_dir, config, profile, public):
    assert deployment_profile(config, environ, app_dir) == profile
    assert public_host(config, environ, app_dir) is public


@pytest.mark.parametrize("value", ["maybe", "cloud", "2", 3])
def test_an_invalid_cloud_setting_is_refused(value):
    with pytest.raises(AuthConfigError, match="REFLECT_CLOUD must be 'on' or 'off'"):
        deployment_profile({"REFLECT_CLOUD": value}, LAB, HOME)
    with pytest.raises(AuthConfigError):
        cloud_override(value)


# --- login and the shared limits ------------------------------------------------------------------

def test_login_is_required_on_cloud(cloud):
    at = run_app()
    assert not at.exception
    assert [t.label for t in at.text_input][:2] == ["Username", "Password"]
    assert len(at.get("plotly_chart")) == 0 and "current_user" not in at.session_state


@pytest.mark.parametrize("env, message", [
    ({}, "Community Cloud"),
    ({"REFLECT_CLOUD": "off"}, "Community Cloud"),  # fail closed: off never opens a detected Cloud host
    ({"REFLECT_CLOUD": "off", "REFLECT_MODE": "local"}, "REFLECT_MODE=local is refused"),
])
def test_cloud_never_runs_without_login(app_env, monkeypatch, env, message):  # noqa: F811
    monkeypatch.setenv("HOSTNAME", "streamlit")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert closed(run_app(), message)


def test_cloud_setting_on_requires_login_anywhere(app_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("REFLECT_CLOUD", "on")
    assert closed(run_app(), "set AUTH_CONFIG")


@pytest.mark.parametrize("value", ["maybe", "1.5"])
def test_an_invalid_cloud_setting_keeps_the_app_closed(login_file, monkeypatch, value):  # noqa: F811
    monkeypatch.setenv("REFLECT_CLOUD", value)
    assert closed(run_app(), "REFLECT_CLOUD must be 'on' or 'off'")
    monkeypatch.setenv("HOSTNAME", "streamlit")  # closed on a Cloud host: its visitors see no tracebacks either
    assert closed(run_app(), "REFLECT_CLOUD must be 'on' or 'off'")
    assert st_config.get_option("client.showErrorDetails") == "none"


def test_shared_limits_for_users_local_profile_for_admins_on_cloud(cloud):
    alice = train_page(log_in("alice"))
    assert any("shared profile" in c.value for c in alice.caption)
    assert alice.number_input(key="train_n").max == SHARED.curves
    root = train_page(log_in("root"))
    assert any("local profile" in c.value for c in root.caption)
    assert root.number_input(key="train_n").max == LOCAL.curves


# --- local training capped to small runs -----------------------------------------------------------

def test_the_cap_names_the_estimate_and_the_cap():
    capped = with_machine(LOCAL, CLOUD)
    assert local_cpu_seconds(spec(25)) / 60 == pytest.approx(4.6, abs=0.1)  # the counted estimate, no timing
    assert spec_violations(spec(25), capped) == []
    [problem] = spec_violations(spec(200), capped)
    assert "estimated training compute 36.4 CPU-min > 10 CPU-min" in problem and "Community Cloud" in problem
    assert spec_violations(spec(200), LOCAL) == []                              # off Cloud: no cap
    assert spec_violations(spec(200, "modal", "H100"), capped) == []            # Modal runs are not capped
    # An admin's local profile allows more than the box's memory: the shared sizes hold here for everyone.
    big = TrainSpec.parse({**spec().to_dict(), "training": {"epochs": 1, "batch_size": 128}})
    assert spec_violations(big, LOCAL) == []
    assert spec_violations(big, capped) == ["batch size 128 > 64 (local training on Community Cloud)"]
    assert spec_violations(big, with_machine(SHARED, CLOUD)) == ["batch size 128 > 64"]  # once, as theirs


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")  # runs stay queued: no workers
    yield
    backends.unregister("modal")


def test_the_job_store_refuses_big_local_runs_at_submit_resume_and_retry(store):
    capped = with_machine(LOCAL, CLOUD)  # an admin on Cloud
    with pytest.raises(LimitError, match=r"36\.4 CPU-min > 10 CPU-min, the cap on training on this machine"):
        jobs.submit(spec(200), "root", limits=capped)
    assert jobs.list_runs() == []
    small = jobs.submit(spec(25), "root", limits=capped)
    # Runs queued before the cap (or by the command line, which passes no limits) are checked again.
    paused, cancelled = (jobs.submit(spec(200), "root") for _ in range(2))
    with locked():
        write_state(run_dir(paused), read_state(run_dir(paused)), state="paused")
    jobs.cancel(cancelled)
    with pytest.raises(LimitError, match="CPU-min"):
        jobs.resume(paused, limits=capped)
    with pytest.raises(LimitError, match="CPU-min"):
        jobs.retry(cancelled, limits=capped)
    assert [jobs.get(r).state for r in (small, paused, cancelled)] == ["queued", "paused", "cancelled"]
    jobs.retry(cancelled, limits=LOCAL)  # off Cloud the same run is fine
    backends.register("modal", backends.LocalBackend())  # stands in for Modal: nothing is launched
    jobs.submit(spec(200, "modal", "H100"), "other", limits=capped)


def test_the_train_page_refuses_a_big_local_run_on_cloud(cloud):
    root = train_page(log_in("root"), BIG)  # an admin: the cap is the machine's, not the profile's
    click_train(root)
    assert any("estimated training compute 36.4 CPU-min > 10 CPU-min" in e.value for e in root.error)
    assert jobs.list_runs() == []


def test_the_train_page_runs_big_local_runs_off_cloud(app_env, monkeypatch):  # noqa: F811
    click_train(train_page(run_app(), BIG))
    assert len(jobs.list_runs()) == 1


def _form(big: bool, modal: bool):
    """The Train form's message, drawn as the Train page draws it under its estimates."""
    from test_cloud_mode import spec

    from reflect_core.accounts.limits import LOCAL, with_machine
    from reflect_core.accounts.machine import CLOUD
    from reflect_core.jobs import backends
    from reflect_core.ml.spec import TrainSpec
    from ui.train_form import render_machine_cap

    if modal:
        backends.register("modal", backends.LocalBackend())
    else:
        backends.unregister("modal")
    render_machine_cap(spec(200 if big else 25), with_machine(LOCAL, CLOUD), "root")
    render_machine_cap(TrainSpec.parse({**spec(200).to_dict(), "backend": "modal", "gpu": "T4"}),
                       with_machine(LOCAL, CLOUD), "root")  # Modal: nothing to say
    render_machine_cap(spec(200), LOCAL, "root")  # no cap: nothing to say


@pytest.mark.parametrize("big, modal, shown", [
    (False, False, "Estimated training compute 4.6 CPU-min: within the 10 CPU-min cap"),
    (True, True, "Choose **Modal GPU** under *Run on*"),
    (True, False, "set `MODAL_TOKEN_ID` and `MODAL_TOKEN_SECRET`"),
])
def test_the_form_shows_the_estimate_and_the_cap_before_submit(store, big, modal, shown):
    at = AppTest.from_function(_form, args=(big, modal), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    messages = [m.value for m in (*at.caption, *at.warning)]
    assert len(messages) == 1 and shown in messages[0], messages
    if big:
        assert "36.4 CPU-min > 10 CPU-min" in messages[0] and len(at.warning) == 1


def test_the_cap_is_lifted_by_the_setting_on_a_cloud_host(cloud, monkeypatch):
    monkeypatch.setenv("REFLECT_CLOUD", "off")  # a false detection on a big server: login stays
    root = train_page(log_in("root"), BIG)
    click_train(root)
    assert not root.error and len(jobs.list_runs()) == 1


# --- what visitors see ------------------------------------------------------------------------------

def test_error_details_hidden_and_logged_on_cloud(cloud, monkeypatch):
    st_config.set_option("client.toolbarMode", "developer")  # as if a flag had asked for it

    def boom(deployment):
        raise RuntimeError("internal detail /mount/src/secret-path")

    monkeypatch.setattr("ui.session.require_user", boom)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("streamlit.error_util")
    logger.addHandler(handler)
    try:
        at = run_app()
    finally:
        logger.removeHandler(handler)
    assert st_config.get_option("client.showErrorDetails") == "none"
    assert st_config.get_option("client.toolbarMode") == "viewer"
    [shown] = at.exception
    assert "secret-path" not in shown.message and "RuntimeError" not in shown.message
    assert "redacted" in shown.message and not shown.stack_trace
    logged = [r for r in records if r.exc_info and "secret-path" in str(r.exc_info[1])]
    assert logged and logged[0].levelno == logging.ERROR  # the full traceback, for the server log


def test_config_toml_hides_developer_entries_and_logs_plainly():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"  # everywhere, Community Cloud included
    assert config["logger"]["enableRich"] is False  # tracebacks through logging, as the test above reads them


def test_minimal_toolbar_is_kept_on_cloud_and_nothing_changes_off_cloud(app_env, monkeypatch):  # noqa: F811
    st_config.set_option("client.toolbarMode", "developer")
    st_config.set_option("client.showErrorDetails", "full")
    run_app()  # a lab machine: the developer's own options stand
    assert [st_config.get_option(k) for k in OPTIONS] == ["full", "developer"]
    st_config.set_option("client.toolbarMode", "minimal")  # config.toml's: it hides even more than viewer
    monkeypatch.setenv("HOSTNAME", "streamlit")
    run_app()
    assert [st_config.get_option(k) for k in OPTIONS] == ["none", "minimal"]
