"""A call that must answer in time: network clients (Modal, the Hub) can hang far longer than a
page or a scheduler tick may wait, and not all of them take a timeout of their own."""

from __future__ import annotations

import threading


class NoAnswer(TimeoutError):
    """The call did not return within its time; it goes on in its daemon thread, unattended."""


def call_with_deadline(fn, timeout_s: float, what: str):
    """``fn()`` in a daemon thread: its value, or its exception raised here, or ``NoAnswer``."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=what, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise NoAnswer(f"no answer to {what} within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")
