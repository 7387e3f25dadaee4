"""Each user's work in progress (the explorer's film and instrument, the Train form's settings), kept
on disk so that a browser refresh, a closed tab or a server restart does not lose it.

``workspace/<user>/<name>.json`` in the data directory (mirrored to the Hub with the rest when the
state mirror is on). Small JSON documents only: a file over ``MAX_BYTES`` or a name outside
``NAMES`` is refused, and a file that is unreadable or not a JSON object reads as nothing kept
(the page starts from its defaults and says so), never as an error that blocks the page.
"""

from __future__ import annotations

import json

from reflect_core.accounts.access import User, validate_username
from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import StorageError, atomic_write_bytes, data_dir, read_bounded

NAMES = ("explorer", "train")
MAX_BYTES = 512 * 1024  # a 1000-layer film with its bounds is ~150 kB


def workspace_file(user: User, name: str):
    if name not in NAMES:
        raise InvalidInput(f"workspace: unknown document {name!r} (one of {', '.join(NAMES)})")
    return data_dir() / "workspace" / validate_username(user.name) / f"{name}.json"


def save(user: User, name: str, document: dict) -> None:
    """Replace the kept document (atomically). StorageError when the disk refuses it."""
    try:
        data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # NaN, infinity, or something JSON cannot hold
        raise InvalidInput(f"workspace {name}: cannot be kept as JSON ({exc})") from None
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"workspace {name}: {len(data):,} bytes is over the {MAX_BYTES:,} kept per page")
    path = workspace_file(user, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
    atomic_write_bytes(path, data)


def load(user: User, name: str) -> tuple[dict | None, str | None]:
    """The kept document, or None with the reason it could not be used (None, None: nothing kept)."""
    path = workspace_file(user, name)
    if not path.exists():
        return None, None
    try:
        data = read_bounded(path, MAX_BYTES)
        if len(data) > MAX_BYTES:
            return None, f"your saved {name} work is over {MAX_BYTES:,} bytes"
        document = json.loads(data)
    except OSError as exc:
        return None, f"your saved {name} work could not be read ({exc.strerror})"
    except ValueError as exc:  # not UTF-8 or not JSON
        return None, f"your saved {name} work is not valid JSON ({str(exc)[:80]})"
    if not isinstance(document, dict):
        return None, f"your saved {name} work is not a JSON object"
    return document, None
