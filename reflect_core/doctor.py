"""``python -m reflect_core doctor`` and the sidebar's "This installation": what this installation
has and lacks, and what to do about each.

No torch, no Streamlit and no network: the caller passes the settings (the app its secrets merged
with the environment; the command line ``read_settings``). Every check gives a status: ok, warning,
missing (optional and absent) or error (the app cannot work: only the ESSENTIAL checks can be).
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

from reflect_core.accounts.auth_config import (
    AUTH_SETTING,
    MODE_SETTING,
    SIGNUP_SETTING,
    AuthConfigError,
    deployment_profile,
    load_auth_config,
    public_host,
    resolve_mode,
    signup_enabled,
)
from reflect_core.base.engines import engine_statuses
from reflect_core.base.errors import ReflectError
from reflect_core.doctor_system import Check, data_checks, python_check, shown_path, torch_check

ESSENTIAL = ("torch", "Settings", "Login", "Data directory", "Free disk")
STATUSES = ("ok", "warning", "missing", "error")
SECRET_SETTINGS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "HF_TOKEN")
SECRETS_FILE_SETTING = "REFLECT_SECRETS_FILE"
README_CONFIG = "README, Configuration"


# --- settings for the command line (the app has Streamlit's secrets) ------------------------------------

def secrets_files(environ, cwd: Path) -> list[Path]:
    """The TOML files the app would read: REFLECT_SECRETS_FILE alone, else Streamlit's two default
    locations (the user's, then the project's, which wins)."""
    override = environ.get(SECRETS_FILE_SETTING)
    if override:
        return [Path(override)]
    return [Path.home() / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"]


def read_settings(environ=None, cwd: Path | None = None) -> tuple[dict, Check]:
    """(settings, the "Settings" check): the environment overlaid with the secrets files, as the app
    does. A file that exists but cannot be read is an error check, and only the environment counts."""
    environ = dict(os.environ if environ is None else environ)
    cwd = Path.cwd() if cwd is None else cwd
    config, read = dict(environ), []
    for path in secrets_files(environ, cwd):
        where = shown_path(path, cwd)
        if not path.exists() and not environ.get(SECRETS_FILE_SETTING):
            continue
        try:
            config.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return dict(environ), Check(
                "Settings", "error", f"the secrets file {where} cannot be read: {reason}; the app stays closed",
                f"fix or create {where} (TOML: `NAME = \"value\"`), or unset {SECRETS_FILE_SETTING}")
        read.append(where)
    found = f"{', '.join(read)} and the environment" if read else "the environment (no secrets file)"
    return config, Check("Settings", "ok", found)


# --- the deployment ------------------------------------------------------------------------------------

def login_check(config: dict, settings: Check) -> tuple[Check, str | None]:
    """(the "Login" check, the mode or None when it cannot be decided), as ui.session decides them."""
    if settings.status == "error":
        return Check("Login", "error", "unknown: the settings cannot be read", settings.action), None
    path = config.get(AUTH_SETTING) or config.get("auth_config")
    try:
        profile, public = deployment_profile(config), public_host(config)
        mode = resolve_mode(config.get(MODE_SETTING), path, public)
        if mode == "local":
            given = f"{MODE_SETTING}=local" if config.get(MODE_SETTING) else f"{MODE_SETTING} unset, no {AUTH_SETTING}"
            return Check("Login", "ok", f"off: single-user local mode ({given})"), mode
        auth = load_auth_config(path)
        signup = "on" if signup_enabled(config.get(SIGNUP_SETTING), auth) else "off"
    except AuthConfigError as exc:  # the messages name the entry and never repeat a key or password
        return Check("Login", "error", f"the app stays closed: {exc}",
                     f"fix {MODE_SETTING} / {AUTH_SETTING} or the login file as it says ({README_CONFIG})"), None
    users = len(auth["credentials"]["usernames"])
    return Check("Login", "ok", f"on: login required ({profile} profile); login file {shown_path(Path(path))} "
                 f"readable, {users} user{'s' if users != 1 else ''}, sign-up {signup}"), mode


def engine_checks(config: dict) -> list[Check]:
    """pyreflect, Modal and the Hub in base.engines' words (its Login entry is login_check's)."""
    return [Check(s.name, "ok" if s.available else "warning" if s.half_set else "missing", s.detail, s.action)
            for s in engine_statuses(config) if s.name != "Login"]


# --- parts other modules provide (this installation may not have them yet) ------------------------------------

def kernels_check() -> Check:
    name = "Numerical kernels"
    try:
        from reflect_core.physics.warmup import kernel_cache_dir, kernels_compiled

        ready, cache = kernels_compiled(), kernel_cache_dir()
    except Exception as exc:  # noqa: BLE001 - an older or broken warm-up module: say so, never crash
        return Check(name, "warning", f"unknown: this installation cannot tell ({type(exc).__name__}: {exc})",
                     "reinstall the app: `scripts/setup.sh`")
    where = f"cached in {shown_path(cache)}" if cache else "not cached on disk: compiled again by every new process"
    if ready:
        return Check(name, "ok", f"compiled, {where}")
    return Check(name, "warning", f"not compiled yet ({where}): the app compiles them in the background on start "
                 "(~10 s of CPU) and uses slower numpy versions meanwhile; workers and commands compile on first use",
                 "start the app once, or run "
                 "`python -m reflect_core simulate examples/film_default.json --out /tmp/curve.csv`")


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def mirror_check(config: dict, mode: str | None) -> Check:
    """Whether this deployment's state (history, runs, uploads, logins) survives a restart."""
    name = "State mirror"
    if mode is None:
        return Check(name, "warning", "unknown until the login settings are fixed")
    try:
        from reflect_core.store.mirror import mirror_settings, mirror_status
    except Exception as exc:  # noqa: BLE001 - an older or broken mirror module: say so, never crash
        return Check(name, "warning", f"unknown: this installation cannot tell ({type(exc).__name__}: {exc})",
                     "reinstall the app: `scripts/setup.sh`")
    try:
        settings, status = mirror_settings(config, mode), mirror_status()
    except ReflectError as exc:  # set badly: the app says so on every page and keeps work on this disk only
        return Check(name, "warning", f"misconfigured: {exc}", "fix HF_STATE_REPO_ID / HF_TOKEN (README, Hub)")
    if settings is None:
        if mode == "shared":
            return Check(name, "warning", "off: this shared app's work is lost when its server restarts",
                         "set HF_TOKEN and HF_REPO_ID (README, Hub)")
        return Check(name, "ok", "off: work stays on this disk")
    if not status.get("configured"):  # this process has not started it (the command line never does)
        return Check(name, "ok", f"configured: the app mirrors its state to {status.get('repo') or 'the Hub'}")
    synced = status.get("last_sync")
    text = (f"mirrored to {status.get('repo')}, last sync {_ago(time.time() - synced) if synced else 'not yet'}, "
            f"{status.get('pending', 0)} change(s) waiting")
    if status.get("error"):
        return Check(name, "warning", f"{text}; last error: {status['error']}",
                     "check HF_TOKEN (a write token) and HF_REPO_ID")
    return Check(name, "ok", text)


# --- all together --------------------------------------------------------------------------------------

def _redacted(check: Check, secrets: list[str]) -> Check:
    """No token value ever reaches a screen or a log, whatever message quoted it."""
    found, action = check.found, check.action
    for secret in secrets:
        found, action = found.replace(secret, "***"), action.replace(secret, "***")
    return Check(check.name, check.status, found, action)


def run_checks(config: dict, settings: Check) -> list[Check]:
    """Every fact, in reading order. ``settings``: how the settings were read (``read_settings``'s check)."""
    login, mode = login_check(config, settings)
    pyreflect, *services = engine_checks(config)
    checks = [python_check(), torch_check(), kernels_check(), pyreflect, settings, login, *services,
              mirror_check(config, mode), *data_checks()]
    secrets = [str(config[s]) for s in SECRET_SETTINGS if len(str(config.get(s) or "")) >= 4]
    return [_redacted(c, secrets) for c in checks]


def broken(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "error"]


def as_json(checks: list[Check]) -> str:
    return json.dumps({"ok": not broken(checks),
                       "checks": [{"name": c.name, "status": c.status, "essential": c.name in ESSENTIAL,
                                   "found": c.found, "action": c.action} for c in checks]}, indent=1)


def as_text(checks: list[Check]) -> str:
    """One aligned line per fact, and under each that is not ok, what to do."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<7}  {c.found}")
        if c.status != "ok" and c.action:
            lines.append(f"{'':<{width}}  {'':<7}  → {c.action}")
    errors = broken(checks)
    notes = sum(c.status in ("warning", "missing") for c in checks)
    lines.append("")
    lines.append(f"{len(errors)} error(s): {', '.join(c.name for c in errors)}; the app cannot work as installed"
                 if errors else f"nothing essential is broken ({notes} note(s) above)")
    return "\n".join(lines)
