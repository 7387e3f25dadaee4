"""The Modal app for GPU training (placeholder until the Modal backend lands).

It imports without Modal installed or configured, so the rest of the app and the
tests never depend on it. The training issue replaces ``APP_NAME`` users with
real GPU functions that call ``reflect_core`` training.
"""

APP_NAME = "reflect-ml"


def modal_available() -> bool:
    """True when the modal package is importable (credentials are checked by reflect_core.base.engines)."""
    import importlib.util

    return importlib.util.find_spec("modal") is not None
