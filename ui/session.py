"""Who is using the app and what they may do: the mode, login, the user, the limits.

``REFLECT_MODE`` says which deployment this is: ``local`` (single-user: everything belongs
to "local", who has the local limits) or ``shared`` (login required: nothing renders until
the user logs in). Unset, it is shared when ``AUTH_CONFIG`` is set or on Community Cloud.
Whatever cannot be read or is unsafe stops the app (``load_deployment`` raises; app.py shows
the message and stops): it never falls back to single-user mode.

On Community Cloud (``auth_config.deployment_profile``; ``REFLECT_CLOUD`` overrides the detection)
the shared defaults apply: login, the shared limits for non-admins, local training capped to
small runs for everyone (``current_limits``), and for visitors no error details and no developer
toolbar (``apply_client_options``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import streamlit as st

from reflect_core.accounts import machine
from reflect_core.accounts.access import LOCAL_USER, User
from reflect_core.accounts.auth_config import (
    AUTH_SETTING,
    MODE_SETTING,
    SIGNUP_SETTING,
    AuthConfigError,
    add_registered_user,
    check_new_username,
    deployment_profile,
    load_auth_config,
    on_community_cloud,
    public_host,
    resolve_mode,
    roles_of,
    signup_enabled,
)
from reflect_core.accounts.limits import Limits, limits_for, with_machine
from reflect_core.base.errors import ReflectError

from .config import app_config

USER = "current_user"
# Streamlit's generic message in the browser; Streamlit logs every uncaught exception's full traceback
# on the server whatever this option says (error_util: "Uncaught app execution", exc_info).
HIDDEN_ERROR_DETAILS = "none"
# Toolbar modes without the developer entries (rerun, clear cache, deploy). "minimal", which
# config.toml sets for every host, hides even more; anything else becomes "viewer" on a public host.
VISITOR_TOOLBARS = ("viewer", "minimal")


@dataclass(frozen=True)
class Deployment:
    mode: str                    # "local" or "shared"
    login_path: str | None       # the login YAML (shared only)
    auth: dict | None            # that file, validated
    signup: bool                 # the sign-up form is offered
    profile: str = "local"       # deployment_profile: "cloud", "server" or "local"


def login_file(config: dict | None = None) -> str | None:
    config = app_config() if config is None else config
    return config.get(AUTH_SETTING) or config.get("auth_config")


def apply_client_options(public: bool) -> None:
    """On a public host: uncaught exceptions show a generic message (tracebacks go to the server
    log) and the toolbar has no developer entries. Process-wide options, never loosened here."""
    if not public:
        return
    st.set_option("client.showErrorDetails", HIDDEN_ERROR_DETAILS)
    if st.get_option("client.toolbarMode") not in VISITOR_TOOLBARS:
        st.set_option("client.toolbarMode", "viewer")


def load_deployment() -> Deployment:
    """The checked mode and login settings; ReflectError (ConfigError, AuthConfigError) otherwise."""
    apply_client_options(on_community_cloud())  # first: a Cloud host whose configuration is broken too
    config = app_config()
    register_modal_backend(config)
    profile, public = deployment_profile(config), public_host(config)
    apply_client_options(public)
    path = login_file(config)
    mode = resolve_mode(config.get(MODE_SETTING), path, public)
    if mode == "local":
        return Deployment("local", None, None, False, profile)
    auth = load_auth_config(path)
    return Deployment("shared", str(path), auth, signup_enabled(config.get(SIGNUP_SETTING), auth), profile)


def register_modal_backend(config: dict) -> bool:
    """The Modal backend under "modal" when MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are set (nothing
    is contacted here), with the Hub run store when HF_TOKEN and HF_REPO_ID are set too."""
    from reflect_core.jobs import backends

    if not (config.get("MODAL_TOKEN_ID") and config.get("MODAL_TOKEN_SECRET")):
        return backends.register_modal(config)
    try:
        from reflect_core.store.hub import hub_from_config

        run_store = hub_from_config(config)
    except Exception:  # noqa: BLE001 - no Hub store: remote runs still run, models stay on the Hub side
        run_store = None
    return backends.register_modal(config, run_store=run_store)


def _authenticator(config: dict):
    import streamlit_authenticator as stauth

    cookie = config["cookie"]
    # A copy: the library rewrites the dict it is given (hashes, failed logins).
    return stauth.Authenticate(copy.deepcopy(config["credentials"]), cookie["name"], cookie["key"],
                               float(cookie.get("expiry_days", 7)), auto_hash=False)


def _register(deployment: Deployment, authenticator) -> None:
    with st.expander("New here? Create an account"):
        try:
            _, username, _ = authenticator.register_user(location="main", captcha=True, key="register_form")
        except Exception as exc:  # noqa: BLE001 - the library raises its own error types for bad input
            st.error(str(exc))
            return
        if not username:
            return
        # The library accepts e-mail addresses as user names; ours name folders. Only the new entry is
        # written, to the file as it is now (the library's copy also holds login counters).
        entry = authenticator.authentication_controller.authentication_model.credentials["usernames"][username]
        try:
            check_new_username(username, deployment.auth["credentials"]["usernames"])
            add_registered_user(deployment.login_path, username, entry)
        except ReflectError as exc:
            st.error(f"Account not created: {exc}")
            return
        st.success(f"Account {username} created: log in above.")


def require_user(deployment: Deployment | None = None) -> User:
    """The logged-in user (or the single local user); stops the page until someone logs in."""
    deployment = deployment or load_deployment()
    if deployment.mode == "local":
        st.session_state[USER] = LOCAL_USER
        return LOCAL_USER
    config = deployment.auth
    authenticator = _authenticator(config)
    authenticator.login(location="main", key="login_form")
    if st.session_state.get("authentication_status"):
        name = st.session_state["username"]
        user = User(name, "admin" if "admin" in roles_of(config, name) else "user")
        st.session_state[USER] = user
        with st.sidebar:
            st.caption(f"Signed in as **{name}**" + (" (admin)" if user.is_admin else ""))
            authenticator.logout("Log out", location="sidebar", key="logout_button")
        return user
    st.session_state.pop(USER, None)
    if st.session_state.get("authentication_status") is False:
        st.error("Wrong user name or password.")
    if deployment.signup:
        _register(deployment, authenticator)
    st.stop()


def current_user() -> User:
    """For pages: the user app.py established for this run."""
    return st.session_state.get(USER, LOCAL_USER)


def current_limits() -> Limits:
    """The user's profile, plus this machine's cap on local training on Community Cloud."""
    user, config = current_user(), app_config()
    allowlist = ()
    path = login_file(config)
    if path:
        try:
            allowlist = [str(n).lower() for n in load_auth_config(path).get("local_profile_users") or ()]
        except AuthConfigError:
            allowlist = ()
    limits = limits_for(user.name, user.role, bool(path), allowlist)
    try:
        cloud = deployment_profile(config) == "cloud"
    except AuthConfigError:
        cloud = True  # an unreadable REFLECT_CLOUD keeps the app closed anyway; never lift the cap on it
    return with_machine(limits, machine.CLOUD) if cloud else limits


def rate_limit_per_minute(action: str) -> int | None:
    """Configured limit for "submit" or "upload" (RATE_LIMIT_SUBMIT_PER_MINUTE, …); None = default."""
    raw = app_config().get(f"RATE_LIMIT_{action.upper()}_PER_MINUTE")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def sees_everyone(user: User) -> bool:
    """An admin of a shared deployment (the single local user owns everything anyway)."""
    return user.is_admin and bool(login_file())


def configured_hub():
    """(the Hub run store, None) when HF_TOKEN and HF_REPO_ID are set; (None, what is wrong) when
    they are set badly; (None, None) when the Hub is not configured."""
    from reflect_core.store.hub import hub_from_config

    try:
        return hub_from_config(app_config()), None
    except ReflectError as exc:
        return None, str(exc)
