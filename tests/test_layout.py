"""The project's shape (DESIGN.md) and the app without its optional parts."""

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys

from conftest import ROOT

from reflect_core.base import engines


def test_layout_exists_and_modal_app_imports():
    for path in ("app.py", "app_pages", "ui", "reflect_core", "modal_jobs.py", ".streamlit/config.toml",
                 ".streamlit/secrets.toml.example", "requirements.txt", "tests", "bench", ".ci/run"):
        assert (ROOT / path).exists(), path
    assert importlib.import_module("modal_jobs").APP_NAME


def test_library_never_imports_streamlit():
    code = ("import sys, reflect_core.cli, reflect_core.jobs, reflect_core.jobs.worker, "
            "reflect_core.store.history, reflect_core.uploads; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_requirements_hold_what_the_app_imports_and_not_pyreflect():
    names = {line.split("==")[0].strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"streamlit", "plotly", "numpy", "numba", "torch", "tinydb", "filelock", "streamlit-authenticator"} <= names
    assert "pyreflect-nr" not in names  # Community Cloud cannot install it beside torch 2.13


def test_sidebar_explains_missing_optional_parts(monkeypatch):
    real_find_spec, real_version = importlib.util.find_spec, importlib.metadata.version

    def missing(name, *args):
        if name.startswith("pyreflect") or name == "modal":
            return None
        return real_find_spec(name, *args)

    def no_version(dist):
        if dist == "pyreflect-nr":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real_version(dist)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    monkeypatch.setattr(importlib.metadata, "version", no_version)
    statuses = {s.name: s for s in engines.engine_statuses({})}
    assert not statuses["pyreflect"].available and "not installed" in statuses["pyreflect"].detail
    assert not statuses["Modal GPUs"].available and "not installed" in statuses["Modal GPUs"].detail
    assert "not configured" in statuses["Hugging Face Hub"].detail
    assert "single-user" in statuses["Login"].detail
    configured = {s.name: s for s in engines.engine_statuses({"HF_TOKEN": "x", "HF_REPO_ID": "me/models",
                                                              "AUTH_CONFIG": "auth.yaml"})}
    assert configured["Hugging Face Hub"].available and configured["Login"].available
