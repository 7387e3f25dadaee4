"""Which optional engines and services this installation can use, in plain words, and what to do
to get each one.

Pure: the caller passes the configuration (Streamlit secrets merged with the environment), so
this module never touches the network or Streamlit. ``reflect_core.doctor`` builds on it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

PYREFLECT_INSTALL = ("`pip install -r requirements-pyreflect.txt && pip install --no-deps pyreflect-nr==1.4.6` "
                     "(`scripts/setup.sh` does both)")


@dataclass(frozen=True)
class EngineStatus:
    name: str
    available: bool
    detail: str
    action: str = ""        # what to do to get it; empty when available
    half_set: bool = False  # configured in part (one of two settings, or settings without the package)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_module(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _pyreflect() -> EngineStatus:
    version = _version("pyreflect-nr")
    if version and _has_module("pyreflect"):
        return EngineStatus("pyreflect", True, f"installed ({version}): its reference curves and CNN are available")
    if version:  # a broken install: the distribution is listed but its package is gone
        return EngineStatus("pyreflect", False, f"pyreflect-nr {version} is listed but its module is missing",
                            f"reinstall it: {PYREFLECT_INSTALL}", half_set=True)
    return EngineStatus("pyreflect", False, "not installed: physics and training use this app's own engine",
                        PYREFLECT_INSTALL)


def _service(name: str, config: dict, settings: tuple[str, str], package: str,
             on: str, off: str, how: str) -> EngineStatus:
    """A service that needs a package and both of two settings; ``how`` says how to get the settings."""
    have = [s for s in settings if config.get(s)]
    both = " and ".join(settings)
    if not _has_module(package):
        then = "" if len(have) == 2 else f", then set {both} ({how})"
        return EngineStatus(name, False, f"the {package} package is not installed: {off}",
                            f"`pip install {package}` (it is in requirements.txt){then}", half_set=bool(have))
    if len(have) == 1:
        missing = next(s for s in settings if s not in have)
        return EngineStatus(name, False, f"{have[0]} is set but {missing} is not: {off}",
                            f"set {missing} too ({how})", half_set=True)
    if not have:
        return EngineStatus(name, False, f"not configured (no {' / '.join(settings)}): {off}", f"set {both} ({how})")
    return EngineStatus(name, True, on)


def engine_statuses(config: dict) -> list[EngineStatus]:
    """``config``: flat mapping of setting name → value (secrets and environment)."""
    modal = _service("Modal GPUs", config, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"), "modal",
                     "configured: training can run on Modal GPUs", "training runs on this machine",
                     "`modal token new`, then the same token in the secrets; README, Modal")
    hub = _service("Hugging Face Hub", config, ("HF_TOKEN", "HF_REPO_ID"), "huggingface_hub",
                   f"configured: models can be pushed to {config.get('HF_REPO_ID')}",
                   "models are kept on this disk only",
                   "a write token from huggingface.co/settings/tokens and a repo id owner/name; README, Hub")
    login = bool(config.get("auth_config") or config.get("AUTH_CONFIG"))
    return [
        _pyreflect(),
        modal,
        hub,
        EngineStatus("Login", login,
                     "on: each user sees only their own work" if login else "off: single-user local mode",
                     "" if login else "set AUTH_CONFIG to a login YAML file (README, Login) to require login"),
    ]
