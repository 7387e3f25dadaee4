"""The login configuration: a YAML file in streamlit-authenticator's format, and the
deployment mode that decides whether login is required.

    credentials:
      usernames:
        alice: {name: Alice, email: alice@lab.org, password: <bcrypt hash>, roles: [admin]}
    cookie: {name: reflect_ml_auth, key: <output of secrets.token_urlsafe(48)>, expiry_days: 7}
    allow_registration: false        # optional self-registration (REFLECT_SIGNUP overrides it)
    local_profile_users: [alice]     # optional: these users get the local (larger) limits

Passwords are stored only as bcrypt hashes: a plain-text password is refused,
never hashed in place (streamlit-authenticator would rewrite the file). The cookie
key signs the login cookie: a guessable one lets anyone forge a login, so known
example keys and low-entropy keys are refused. User names become folder names and
the login lowercases what people type, so they must be folder-safe and unique
ignoring case.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections import Counter
from pathlib import Path

import yaml
from filelock import FileLock, Timeout

from reflect_core.accounts.access import LOCAL_USER, validate_username
from reflect_core.base.errors import InvalidInput, ReflectError
from reflect_core.base.storage import atomic_write_bytes

BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
MIN_COOKIE_KEY_BYTES = 32
MIN_KEY_DISTINCT_CHARS = 12
MIN_KEY_BITS_PER_CHAR = 3.3
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'

# Keys people copy from documentation: this README's and secrets.toml.example's placeholders, the
# streamlit-authenticator docs' example, and the usual "fill me in" words. Compared after lowercasing
# and dropping everything but letters and digits, as substrings (a random 32+ character key contains
# one of these 7+ letter words with a probability below 1e-8).
EXAMPLE_KEYS = ("at least 32 random characters ........",)
EXAMPLE_KEY_WORDS = ("changeme", "signaturekey", "somesignature", "randomcharacters", "atleast32", "placeholder",
                     "example", "replaceme", "yourkey", "yoursecret", "secretkey", "cookiekey", "tokenurlsafe",
                     "password", "notasecret", "fillmein", "insertkey")
RESERVED_NAMES = (LOCAL_USER.name,)  # the single-user mode's owner: a login of that name would own its data

MODES = ("local", "shared")
MODE_SETTING, SIGNUP_SETTING, AUTH_SETTING = "REFLECT_MODE", "REFLECT_SIGNUP", "AUTH_CONFIG"
CLOUD_SETTING = "REFLECT_CLOUD"
CLOUD_WORDS = "Streamlit Community Cloud (detected, or REFLECT_CLOUD=on)"
ON, OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
LOCK_TIMEOUT_S = 10


class AuthConfigError(InvalidInput):
    """A login configuration that would be unsafe or cannot work; the message says which entry."""


# --- cookie key ---------------------------------------------------------------

def _bits_per_char(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _key_weakness(key: str) -> str | None:
    """Why this key is guessable, or None. Thresholds: keys made by secrets.token_urlsafe(24+), base64
    of 24+ random bytes or 64 random hex digits all passed (200,000 of each); 32 hex digits fail about
    2 % of the time (16 symbols: too few to tell them from a weak key), then make another."""
    if len(key.encode()) < MIN_COOKIE_KEY_BYTES:
        return f"is shorter than {MIN_COOKIE_KEY_BYTES} bytes"
    folded = re.sub(r"[^a-z0-9]", "", key.lower())
    if key.strip().lower() in EXAMPLE_KEYS or any(word in folded for word in EXAMPLE_KEY_WORDS):
        return "is an example or placeholder from documentation"
    if any(c.isspace() for c in key):
        return "contains spaces (a phrase, not random text)"
    if len(set(key)) < MIN_KEY_DISTINCT_CHARS:
        return f"uses fewer than {MIN_KEY_DISTINCT_CHARS} different characters"
    if _bits_per_char(key) < MIN_KEY_BITS_PER_CHAR:
        return f"has too little entropy (under {MIN_KEY_BITS_PER_CHAR} bits per character)"
    grams = [key[i:i + 8] for i in range(len(key) - 7)]
    if len(set(grams)) < len(grams):
        return "repeats a part of itself"
    steps = [ord(b) - ord(a) for a, b in zip(key, key[1:])]
    if sum(abs(s) == 1 for s in steps) > len(steps) // 2:
        return "is mostly runs like 'abcd'"
    return None


def check_cookie_key(key) -> str:
    """The key unchanged if it looks random; else AuthConfigError saying why and how to make one.
    The message never repeats the key (it is shown to every visitor of a closed app)."""
    if not isinstance(key, str):
        raise AuthConfigError(f"cookie.key must be text; make one with: {MAKE_KEY}")
    weakness = _key_weakness(key)
    if weakness:
        raise AuthConfigError(f"cookie.key {weakness}, so anyone could forge a login cookie. "
                              f"Make a random one with: {MAKE_KEY}")
    return key


# --- user names -----------------------------------------------------------------

def _name_problem(name) -> str | None:
    try:
        validate_username(name)
    except InvalidInput as exc:
        return str(exc)
    if name.lower() in RESERVED_NAMES:
        return f"user name {name!r} is reserved for single-user mode"
    return None


def check_login_names(names) -> None:
    """Every name folder-safe, not reserved, and unique ignoring case (the login lowercases what is
    typed, so 'Root' and 'root' would be the same person with two entries); the message names them."""
    names = list(names)
    bad = [problem for problem in map(_name_problem, names) if problem]
    if bad:
        raise AuthConfigError("credentials.usernames: unusable user names (they name folders): " + "; ".join(bad))
    by_folded: dict[str, list[str]] = {}
    for name in names:
        by_folded.setdefault(name.lower(), []).append(name)
    clashes = [" and ".join(repr(n) for n in group) for group in by_folded.values() if len(group) > 1]
    if clashes:
        raise AuthConfigError("credentials.usernames: user names must be unique ignoring case (the login "
                              "lowercases what people type): " + "; ".join(clashes))


def check_new_username(name: str, existing) -> str:
    """A name someone chose at sign-up: folder-safe, not reserved, not taken in any case."""
    problem = _name_problem(name)
    if problem:
        raise InvalidInput(problem)
    if name.lower() in {str(n).lower() for n in existing}:
        raise InvalidInput(f"user name {name!r} is already taken")
    return name


# --- the file -------------------------------------------------------------------

def validate_auth_config(config) -> dict:
    if not isinstance(config, dict):
        raise AuthConfigError("the login file must be a YAML mapping with 'credentials' and 'cookie'")
    users = (config.get("credentials") or {}).get("usernames")
    if not isinstance(users, dict):
        raise AuthConfigError("credentials.usernames must map user names to {name, email, password}")
    check_login_names(users)
    for name, entry in users.items():
        password = (entry or {}).get("password", "")
        if not isinstance(password, str) or not BCRYPT.match(password):
            raise AuthConfigError(f"credentials.usernames.{name}.password must be a bcrypt hash ($2b$…); "
                                  "plain-text passwords are refused. "
                                  "Hash one with: python -m reflect_core hash-password")
    cookie = config.get("cookie") or {}
    check_cookie_key(cookie.get("key"))
    if not cookie.get("name"):
        raise AuthConfigError("cookie.name is missing")
    return config


def load_auth_config(path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the login file {path}: {exc.strerror}") from None
    try:
        return validate_auth_config(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"{path}: not valid YAML ({exc})") from None


def save_auth_config(path, config: dict) -> None:
    """Atomically, after a self-registration added a (hashed) user."""
    validate_auth_config(config)
    atomic_write_bytes(path, yaml.safe_dump(copy.deepcopy(config), sort_keys=False).encode())


def add_registered_user(path, name: str, entry: dict) -> None:
    """Add one signed-up user to the file as it is now (not to the copy read at the start of the
    page run, which would drop someone who signed up meanwhile), under a lock."""
    try:
        with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
            config = load_auth_config(path)
            users = config["credentials"]["usernames"]
            check_new_username(name, users)
            users[name] = {k: entry[k] for k in ("email", "first_name", "last_name", "name", "password",
                                                 "password_hint", "roles") if entry.get(k) is not None}
            save_auth_config(path, config)
    except Timeout:
        raise ReflectError("the login file is busy; try again in a moment") from None


def roles_of(config: dict, username: str) -> list[str]:
    """Roles of a logged-in user (the login lowercases names, the file may not)."""
    for name, entry in config["credentials"]["usernames"].items():
        if str(name).lower() == str(username).lower():
            return list((entry or {}).get("roles") or [])
    return []


def hash_password(password: str) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


# --- the deployment mode ---------------------------------------------------------

def on_community_cloud(environ=None, app_dir=None) -> bool:
    """Whether this runs on Streamlit Community Cloud, which is always a shared deployment.

    Streamlit documents no official flag for this. Two signals that apps and the Streamlit forum
    rely on: Cloud's containers have the host name "streamlit" (HOSTNAME=streamlit), and Cloud
    clones the repository under /mount/src/<repo> and runs the app from there (the paths in every
    Cloud traceback; the docs say Cloud runs apps from the repository root). Either one counts.
    A false positive only means login is required; REFLECT_MODE=shared forces it anywhere, and
    REFLECT_CLOUD=on the whole Cloud profile (``deployment_profile``).
    """
    environ = os.environ if environ is None else environ
    app_dir = str(Path.cwd() if app_dir is None else app_dir)
    return environ.get("HOSTNAME") == "streamlit" or app_dir == "/mount/src" or app_dir.startswith("/mount/src/")


def _setting_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None else str(value).strip().lower()


def cloud_override(setting) -> bool | None:
    """REFLECT_CLOUD: True (on), False (off) or None (unset: detect); anything else AuthConfigError,
    which keeps the app closed like an invalid REFLECT_MODE."""
    value = _setting_text(setting)
    if not value:
        return None
    if value in ON or value in OFF:
        return value in ON
    raise AuthConfigError(f"{CLOUD_SETTING} must be 'on' or 'off' (or unset: detect), not {str(setting)!r}")


def deployment_profile(config: dict, environ=None, app_dir=None) -> str:
    """The one place that names the deployment: "cloud" (Community Cloud's shared defaults: login,
    the shared limits for non-admins, local training capped to small runs, error details hidden,
    no developer toolbar), "server" (a login configured, or a Cloud host with REFLECT_CLOUD=off)
    or "local" (single user). Raises AuthConfigError for an invalid REFLECT_CLOUD.

    REFLECT_CLOUD=on gives any host the Cloud profile. =off on a detected Cloud host lifts only the
    local-training cap (for a false detection on a big lab server): login, hidden error details
    and the toolbar follow ``public_host``, which a setting can turn on but never off (fail closed).
    """
    override = cloud_override(config.get(CLOUD_SETTING))
    detected = on_community_cloud(environ, app_dir)
    if override or (override is None and detected):
        return "cloud"
    login = config.get(AUTH_SETTING) or config.get("auth_config")
    return "server" if detected or login or _setting_text(config.get(MODE_SETTING)) == "shared" else "local"


def public_host(config: dict, environ=None, app_dir=None) -> bool:
    """Login required, error details hidden, no developer toolbar: on a detected Cloud host whatever
    REFLECT_CLOUD says (a typo or a copied secret must not open a public app), or with REFLECT_CLOUD=on."""
    return on_community_cloud(environ, app_dir) or deployment_profile(config, environ, app_dir) == "cloud"


def resolve_mode(setting, login_path, on_cloud: bool) -> str:
    """"local" (single user, no login) or "shared" (login required), or AuthConfigError.

    ``on_cloud`` is ``public_host``. Unset: shared when a login file is configured or on a public host,
    else local. Shared never runs without a login file; local with a login file is a contradiction,
    refused rather than guessed.
    """
    mode = _setting_text(setting)
    if mode and mode not in MODES:
        raise AuthConfigError(f"{MODE_SETTING} must be 'local' or 'shared', not {str(setting)!r}")
    if mode == "local" and on_cloud:
        raise AuthConfigError(f"{MODE_SETTING}=local is refused on {CLOUD_WORDS}, which is "
                              f"public: remove it and set {AUTH_SETTING} to a login file")
    if mode == "local" and login_path:
        raise AuthConfigError(f"{MODE_SETTING}=local but {AUTH_SETTING} is set: remove {AUTH_SETTING} "
                              f"for single-user mode, or set {MODE_SETTING}=shared to require login")
    mode = mode or ("shared" if login_path or on_cloud else "local")
    if mode == "shared" and not login_path:
        where = f"this is {CLOUD_WORDS}, which is shared" if on_cloud else f"{MODE_SETTING}=shared"
        raise AuthConfigError(f"{where}, and a shared app never runs without login: set {AUTH_SETTING} "
                              "to a login YAML file (README, Login) in the secrets or the environment")
    return mode


def signup_enabled(setting, config: dict) -> bool:
    """REFLECT_SIGNUP (on/off) when set, else the login file's allow_registration (default off)."""
    value = _setting_text(setting)
    if not value:
        return config.get("allow_registration") is True
    if value in ON:
        return True
    if value in OFF:
        return False
    raise AuthConfigError(f"{SIGNUP_SETTING} must be 'on' or 'off', not {str(setting)!r}")
