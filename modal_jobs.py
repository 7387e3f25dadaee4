"""The Modal app for GPU training: ``modal deploy modal_jobs.py`` (README, Configuration → Modal).

The app's Train page spawns ``train_run`` through ``reflect_core.jobs.backends.modal`` with the
GPU tier of the run (``with_options(gpu=...)``). The function body is
``reflect_core.jobs.remote_run.run_remote`` (tested without Modal): the same ``run_job`` as the
local worker, progress and pause/stop through the ``modal.Dict`` named ``DICT_NAME``, checkpoints,
generated data and the model through the Hub run store (``HF_TOKEN`` and ``HF_REPO_ID`` from the
Modal secret ``SECRET_NAME``).

Importing this module needs the modal package but no credentials and no network: nothing is
contacted until ``modal deploy`` (or a call).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import modal

from reflect_core.jobs.backends.modal import APP_NAME, DICT_NAME, FUNCTION_NAME  # noqa: F401 - the names the app uses
from reflect_core.ml.costs import TIMEOUT_S

SECRET_NAME = "reflect-hub"  # modal secret create reflect-hub HF_TOKEN=... HF_REPO_ID=...
PYTHON = "3.11"
_REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
# Not needed in the container (the app's UI and its login) and left out of the image.
_APP_ONLY = ("streamlit", "streamlit-authenticator", "plotly")


def requirement_pins(path: Path = _REQUIREMENTS) -> list[str]:
    """The pinned requirements the container needs (torch apart: it comes from the CUDA index)."""
    pins = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        name = line.split("==", 1)[0].strip().lower()
        if line and name not in _APP_ONLY and name != "torch":
            pins.append(line)
    return pins


def torch_pin(path: Path = _REQUIREMENTS) -> str:
    return next((p.split("#", 1)[0].strip() for p in path.read_text(encoding="utf-8").splitlines()
                 if p.strip().lower().startswith("torch==")), "torch")


app = modal.App(APP_NAME)
image = (
    modal.Image.debian_slim(python_version=PYTHON)
    # A plain pinned torch on Linux is the CUDA build (the app's CPU pin is for its own machine).
    .pip_install(torch_pin())
    .pip_install(*requirement_pins())
    .env({"HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    .add_local_python_source("reflect_core")
)


@app.function(image=image, gpu="T4", timeout=TIMEOUT_S, secrets=[modal.Secret.from_name(SECRET_NAME)])
def train_run(run_id: str, spec_dict: dict, owner: str, resume: bool) -> dict:
    """One attempt of a run; returns {"outcome", "error", "result", "progress"}."""
    from reflect_core.jobs.remote_run import run_remote
    from reflect_core.store.hub import hub_from_config

    run_store = hub_from_config({name: os.environ.get(name) for name in ("HF_TOKEN", "HF_REPO_ID")})
    if run_store is None:
        raise RuntimeError(f"the Modal secret {SECRET_NAME} must hold HF_TOKEN and HF_REPO_ID (the run store)")
    channel = modal.Dict.from_name(DICT_NAME, create_if_missing=True)
    return run_remote(run_id, spec_dict, owner, resume, channel, run_store)


def modal_available() -> bool:
    """True when the modal package is importable (credentials are checked by reflect_core.base.engines)."""
    return importlib.util.find_spec("modal") is not None
