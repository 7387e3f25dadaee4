"""Files on disk for the embedded default (DESIGN.md, Storage).

Every write goes to a temporary file in the same directory, is fsynced and then
renamed over the target, so a reader in another process sees the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from reflect_core.base.errors import InvalidInput, ReflectError


class StorageError(ReflectError):
    """A file that cannot be written or read; the message names the file and the reason."""


def data_dir() -> Path:
    """The data directory: env ``REFLECT_DATA_DIR`` or ``./data``, created on demand."""
    path = Path(os.environ.get("REFLECT_DATA_DIR") or "./data")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create data directory {path}: {exc.strerror}") from exc
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike, default=None):
    """The parsed file, or ``default`` when it does not exist; corrupt JSON is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StorageError(f"cannot read {path}: {reason}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StorageError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc


def shown_path(path) -> str:
    """A path as a message may show it: relative to the data directory when inside it, so that
    a shared server never reveals its own folders; as given otherwise (the command line's files)."""
    path = Path(path)
    root = Path(os.environ.get("REFLECT_DATA_DIR") or "./data").resolve()
    try:
        return str(path.resolve().relative_to(root))
    except (OSError, ValueError):
        return str(path)


def read_bounded(path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file: enough for the caller to say it is too big
    without reading a huge file into memory. OSError propagates for the caller to word."""
    with open(path, "rb") as handle:
        return handle.read(limit + 1)


def read_input_file(path, limit: int) -> bytes:
    """A file a command was given, refused past ``limit`` without reading more than that; InvalidInput
    naming the file when it cannot be read or is too big."""
    try:
        data = read_bounded(path, limit)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{path}: larger than {limit:,} bytes")
    return data


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_stem(name: str, fallback: str) -> str:
    """A download's file name from a user's name for it: letters, digits, ``-_.``, at most 40 characters."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name or ""))[:40].strip("._")
    return stem or fallback
