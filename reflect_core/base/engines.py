"""Which optional engines and services this installation can use, in plain words.

Pure: the caller passes the configuration (Streamlit secrets merged with the
environment), so this module never touches the network or Streamlit.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineStatus:
    name: str
    available: bool
    detail: str


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_module(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def engine_statuses(config: dict) -> list[EngineStatus]:
    """``config``: flat mapping of setting name → value (secrets and environment)."""
    statuses = []

    pyreflect = _version("pyreflect-nr")
    statuses.append(
        EngineStatus(
            "pyreflect",
            pyreflect is not None and _has_module("pyreflect"),
            f"installed ({pyreflect}): its reference curves and CNN are available"
            if pyreflect
            else "not installed: physics and training use this app's own engine; "
            "`scripts/setup.sh` installs it (pip install --no-deps pyreflect-nr)",
        )
    )

    modal_pkg = _has_module("modal")
    modal_creds = bool(config.get("MODAL_TOKEN_ID") and config.get("MODAL_TOKEN_SECRET"))
    statuses.append(
        EngineStatus(
            "Modal GPUs",
            modal_pkg and modal_creds,
            "configured: training can run on Modal GPUs"
            if modal_pkg and modal_creds
            else ("not configured (no MODAL_TOKEN_ID / MODAL_TOKEN_SECRET): training runs on this machine"
                  if modal_pkg else "the modal package is not installed: training runs on this machine"),
        )
    )

    hub_pkg = _has_module("huggingface_hub")
    hub_creds = bool(config.get("HF_TOKEN") and config.get("HF_REPO_ID"))
    statuses.append(
        EngineStatus(
            "Hugging Face Hub",
            hub_pkg and hub_creds,
            f"configured: models can be pushed to {config.get('HF_REPO_ID')}"
            if hub_pkg and hub_creds
            else "not configured (no HF_TOKEN / HF_REPO_ID): models are kept on this disk only",
        )
    )

    login = bool(config.get("auth_config") or config.get("AUTH_CONFIG"))
    statuses.append(
        EngineStatus(
            "Login",
            login,
            "on: each user sees only their own work" if login else "off: single-user local mode",
        )
    )
    return statuses
