"""Backends by name: the spec's ``backend`` field ("local" or "modal") picks one at submit.

Only "local" is built in. A backend that is not registered in this process is refused
at submit with a clear error; the scheduler of a process without it leaves that
backend's runs alone (another process, one that has it, polls and starts them).
"""

from __future__ import annotations

from reflect_core.jobs.backends.base import Backend, BackendUnavailable, Poll
from reflect_core.jobs.backends.local import LocalBackend
from reflect_core.jobs.runfiles import JobError

__all__ = ["Backend", "BackendUnavailable", "LocalBackend", "Poll", "get", "is_registered", "register", "registered",
           "register_modal", "unregister"]

_registry: dict[str, Backend] = {"local": LocalBackend()}


def register(name: str, backend: Backend) -> None:
    """Make ``backend`` the one that runs specs whose ``backend`` is ``name`` (replacing any)."""
    if not isinstance(backend, Backend):
        raise TypeError(f"a backend must subclass jobs.backends.Backend, got {type(backend).__name__}")
    _registry[name] = backend


def unregister(name: str) -> None:
    _registry.pop(name, None)


def is_registered(name: str) -> bool:
    return name in _registry


def registered() -> list[Backend]:
    return list(_registry.values())


def get(name: str) -> Backend:
    try:
        return _registry[name]
    except KeyError:
        raise JobError(f"the {name} backend is not configured") from None


def register_modal(config: dict, run_store=None, client=None) -> bool:
    """Register the Modal backend under "modal" when ``config`` has MODAL_TOKEN_ID and
    MODAL_TOKEN_SECRET (and unregister it when not); True when it is registered. Nothing is
    contacted here. The modal client reads the tokens from the environment (Streamlit exports
    root-level secrets there) or from ``~/.modal.toml`` (``modal token new``).
    ``run_store``: the Hub run store the remote runs use (models come back through it)."""
    from reflect_core.jobs.backends.modal import ModalBackend, modal_configured

    current = _registry.get("modal")
    if not modal_configured(config):
        if isinstance(current, ModalBackend):
            unregister("modal")
        return False
    if not isinstance(current, ModalBackend) or (client is not None and current._client is not client):
        register("modal", ModalBackend(client=client, run_store=run_store))
    elif run_store is not None:
        current.run_store = run_store
    return True
