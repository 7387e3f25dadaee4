"""Who is using the app and what they may do: login (when configured), the user, the limits.

Without a login file the app is single-user: everything belongs to "local",
who has the local limits. With one, nothing renders until the user logs in.
"""

from __future__ import annotations

import copy

import streamlit as st

from reflect_core.accounts.access import LOCAL_USER, User
from reflect_core.accounts.auth_config import AuthConfigError, load_auth_config, roles_of, save_auth_config
from reflect_core.accounts.limits import Limits, limits_for

from .config import app_config

USER = "current_user"
AUTH_SETTING = "AUTH_CONFIG"


def login_file() -> str | None:
    config = app_config()
    return config.get(AUTH_SETTING) or config.get("auth_config")


def _authenticator(config: dict):
    import streamlit_authenticator as stauth

    cookie = config["cookie"]
    # A copy: the library rewrites the dict it is given (hashes, failed logins).
    return stauth.Authenticate(copy.deepcopy(config["credentials"]), cookie["name"], cookie["key"],
                               float(cookie.get("expiry_days", 7)), auto_hash=False)


def _register(path: str, config: dict, authenticator) -> None:
    with st.expander("New here? Create an account"):
        try:
            _, username, _ = authenticator.register_user(location="main", captcha=False, key="register_form")
        except Exception as exc:  # noqa: BLE001 - the library raises its own error types for bad input
            st.error(str(exc))
            return
        if username:
            config["credentials"] = authenticator.authentication_controller.authentication_model.credentials
            save_auth_config(path, config)
            st.success(f"Account {username} created: log in above.")


def require_user() -> User:
    """The logged-in user (or the single local user); stops the page until someone logs in."""
    path = login_file()
    if not path:
        st.session_state[USER] = LOCAL_USER
        return LOCAL_USER
    try:
        config = load_auth_config(path)
    except AuthConfigError as exc:
        st.error(f"Login is configured but unusable, so the app stays closed: {exc}")
        st.stop()
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
    if config.get("allow_registration"):
        _register(path, config, authenticator)
    st.stop()


def current_user() -> User:
    """For pages: the user app.py established for this run."""
    return st.session_state.get(USER, LOCAL_USER)


def current_limits() -> Limits:
    user = current_user()
    allowlist = ()
    path = login_file()
    if path:
        try:
            allowlist = load_auth_config(path).get("local_profile_users") or ()
        except AuthConfigError:
            allowlist = ()
    return limits_for(user.name, user.role, bool(path), allowlist)


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
