"""The local side of the state mirror: which files are mirrored, where a repo path lands on
this machine, and how a downloaded file is put in place.

Mirrored: every file under the data directory (as ``data/<relative path>``) and the login file
(``AUTH_CONFIG``, outside it, as ``login/auth.yaml``), except what is rebuilt or private to one
process: the Hub model cache (``hub_cache/``), lock files, temporary files of atomic writes
(``.<name>.*.tmp``, ``checkpoint.tmp``), anything under a folder or file whose name starts with
a dot (the mirror's own ``.mirror/``, runs being deleted), a training run's generated arrays
(``runs/<id>/data/``: seeded, so resume and retry generate the same bytes again) and files over
``MAX_FILE_BYTES`` (listed as skipped). Nothing in a manifest from the Hub is trusted: a path
must be relative, plain, not excluded, and land inside the data directory with no symlink on
the way.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from pathlib import Path

from reflect_core.base.storage import sha256_file

MB = 1_000_000
MAX_FILE_BYTES = 200 * MB  # the largest upload of the local profile; bigger files are skipped and listed
STATE_DIR = ".mirror"  # in the data directory: the last synced manifest, staging, conflict copies
DATA, LOGIN = "data/", "login/auth.yaml"
_PART = re.compile(r"[^/\\\x00-\x1f]{1,255}")
_MAX_PATH = 1000


def excluded(parts: tuple[str, ...]) -> bool:
    """Whether a path relative to the data directory (its parts) stays off the mirror."""
    name = parts[-1]
    return (any(part.startswith(".") for part in parts) or parts[0] == "hub_cache"
            or name.endswith((".lock", ".tmp")) or (parts[0] == "runs" and len(parts) > 3 and parts[2] == "data"))


def repo_path_problem(path) -> str | None:
    """Why ``path`` (from a manifest) is not a repo path this mirror writes, or None."""
    if path == LOGIN:
        return None
    if not isinstance(path, str) or len(path) > _MAX_PATH or not path.startswith(DATA):
        return "not a path under data/ (or login/auth.yaml)"
    parts = tuple(path[len(DATA):].split("/"))
    if not all(_PART.fullmatch(part) and part not in (".", "..") for part in parts):
        return "not a plain relative path"
    if excluded(parts):
        return "a path this mirror never writes"
    return None


def local_target(path: str, root: Path, login_path: Path | None) -> Path | None:
    """Where repo path ``path`` lives here (None: the login file when none is configured)."""
    if path == LOGIN:
        return login_path
    return root / path[len(DATA):]


def inside(target: Path, root: Path) -> bool:
    """``target`` lies in ``root`` with no symlink in between (nor is one itself)."""
    base = Path(os.path.abspath(root))
    try:
        relative = Path(os.path.abspath(target)).relative_to(base)
    except ValueError:
        return False
    current = base
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            return False
    return current.resolve().is_relative_to(base.resolve())


def scan(root: Path, login_path: Path | None) -> tuple[dict[str, tuple[Path, int, int]], list[str]]:
    """(repo path → (file, size, mtime_ns) of every mirrored file, repo paths skipped for their size)."""
    found, skipped = {}, []
    login = None if login_path is None else os.path.abspath(login_path)
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        relative = base.relative_to(root).parts
        dirs[:] = [d for d in dirs if not excluded((*relative, d, "x")) and not (base / d).is_symlink()]
        for name in names:
            parts = (*relative, name)
            if excluded(parts) or os.path.abspath(base / name) == login:  # the login file goes as login/
                continue
            _add(found, skipped, DATA + "/".join(parts), base / name)
    if login_path is not None:
        _add(found, skipped, LOGIN, login_path)
    return found, skipped


def _add(found: dict, skipped: list, path: str, file: Path) -> None:
    try:
        info = file.lstat()
    except OSError:  # gone meanwhile, or the login file not written yet
        return
    if not os.path.isfile(file) or file.is_symlink():
        return
    if info.st_size > MAX_FILE_BYTES:
        skipped.append(path)
    else:
        found[path] = (file, info.st_size, info.st_mtime_ns)



def install(downloaded: Path, target: Path, entry: dict, root: Path) -> None:
    """Put a downloaded file in place atomically (moved beside the target, then ``os.replace``), once
    its sha256 and size match the manifest and the target is inside ``root``. OSError or ValueError
    otherwise; the target is then untouched."""
    if downloaded.stat().st_size != entry["size"] or sha256_file(downloaded) != entry["sha256"]:
        raise ValueError(f"{target.name}: the downloaded bytes do not match the Hub's manifest")
    if not inside(target, root):
        raise ValueError(f"{target} would lie outside the data directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique to this process and thread: two restores of one data directory never share a temporary file.
    temp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.mirror.tmp")
    try:
        shutil.move(downloaded, temp)  # a rename: the staging folder is in the data directory
        os.replace(temp, target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
