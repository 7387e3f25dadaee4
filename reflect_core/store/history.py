"""The history of runs: training runs, saved explorer films, analyses, imports.

One TinyDB file, ``data_dir()/history.json``, table ``records``. TinyDB is not
thread- or process-safe (DESIGN.md, Storage), so every operation here takes a
file lock, opens a fresh TinyDB instance on an atomically written JSON file and
closes it before returning; no instance outlives one operation.

A record::

    {"id": 12 hex digits, "owner": user name, "name": 1-80 characters,
     "kind": "training" | "film" | "analysis" | "import" | "fit",
     "created": Unix seconds, "updated": Unix seconds,
     "params": dict, "summary": dict (metrics, timings, sizes),
     "files": directory relative to data_dir() or None, "run_id": str or None}

Every function takes the acting ``User``; only the owner or an admin may see or
change a record. Records are returned as readers format them (``readable``): a field of the
wrong type (an imported ``summary.bytes = "lots"``) is dropped or defaulted and named in the
record's ``problems``, so one damaged record never breaks a page, and can still be deleted.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from reflect_core.accounts.access import User, check_owner
from reflect_core.base.errors import InvalidInput, NotFound, ReflectError
from reflect_core.base.storage import StorageError, atomic_write_json, data_dir, read_json

KINDS = ("training", "film", "analysis", "import", "fit")
NAME_MAX = 80
LOCK_TIMEOUT_S = 30.0
# Operations take milliseconds; filelock's default 50 ms poll would dominate under contention.
_LOCK_POLL_S = 0.005
_TABLE = "records"
_FIELDS = ("id", "owner", "name", "kind", "created", "updated", "params", "summary", "files", "run_id")


class HistoryError(ReflectError):
    """The history file is unreadable or busy, or a record cannot be acted on."""


class RecordNotFound(HistoryError, NotFound, KeyError):
    """No record with that id."""

    # KeyError's str() would wrap the message in quotes.
    __str__ = Exception.__str__


def history_path() -> Path:
    return data_dir() / "history.json"


class _AtomicJSONStorage(Storage):
    """TinyDB storage that reads the JSON file and replaces it atomically on write,
    so a writer killed mid-write leaves the old file or the new one."""

    def __init__(self, path: Path):
        self._path = path

    def read(self):
        try:
            data = read_json(self._path)
        except StorageError as exc:
            # Never reset a damaged history: that would silently lose every record.
            raise HistoryError(f"history database {self._path} is unreadable: {exc}") from exc
        if data is not None:
            _check_layout(data, self._path)
        return data

    def write(self, data) -> None:
        atomic_write_json(self._path, data)


def _check_layout(data, path: Path) -> None:
    """Raise HistoryError unless ``data`` is TinyDB tables whose records have every field."""
    tables_ok = isinstance(data, dict) and all(
        isinstance(table, dict) and all(isinstance(doc, dict) for doc in table.values()) for table in data.values()
    )
    if not tables_ok:
        raise HistoryError(f"history database {path} is not a TinyDB file of records; fix it or move it aside")
    for doc_id, doc in data.get(_TABLE, {}).items():
        missing = [field for field in _FIELDS if field not in doc]
        if missing:
            raise HistoryError(f"history database {path}: entry {doc_id} lacks {', '.join(missing)}")


@contextmanager
def _open_table() -> Iterator[Table]:
    """The records table of a fresh TinyDB instance, held under the history lock."""
    path = history_path()
    lock = FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S, poll_interval=_LOCK_POLL_S)
    try:
        lock.acquire()
    except Timeout as exc:
        raise HistoryError(f"history database {path} stayed locked for {LOCK_TIMEOUT_S:.0f} s; try again") from exc
    try:
        db = TinyDB(path, storage=_AtomicJSONStorage)
        try:
            yield db.table(_TABLE)
        finally:
            db.close()
    finally:
        lock.release()


def _now() -> float:
    return time.time()


def clean_name(name) -> str:
    """A name as every stored thing takes it: text, stripped, 1 to NAME_MAX characters."""
    if not isinstance(name, str):
        raise InvalidInput(f"name must be text, not {type(name).__name__}")
    name = name.strip()
    if not name:
        raise InvalidInput("name is empty")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"name is {len(name)} characters long; the limit is {NAME_MAX}")
    return name


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _json_dict(value, field: str) -> dict:
    """A JSON round-trip copy, so what is returned equals what a later read gives."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a dict, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} cannot be stored as JSON: {exc}") from exc


def _optional_text(value, field: str) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise InvalidInput(f"{field} must be a non-empty string or None, not {value!r}")
    return value


def _check_files(files: str | None) -> str | None:
    """``files`` unchanged if it is None or a relative path strictly inside data_dir()."""
    if _optional_text(files, "files") is not None:
        if Path(files).is_absolute():
            raise InvalidInput(f"files path {files!r} must be relative to the data directory")
        _files_path(files)
    return files


def _files_path(files: str) -> Path:
    """The absolute directory ``files`` names; ValueError unless strictly inside data_dir()."""
    root = data_dir().resolve()
    target = (root / files).resolve()
    if root not in target.parents:
        raise InvalidInput(f"files path {files!r} is not inside the data directory {root}")
    return target


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _new_id(table: Table) -> str:
    while True:
        record_id = secrets.token_hex(6)
        if not table.contains(Query().id == record_id):
            return record_id


# Summary fields the pages format as numbers; ``agreement`` is an object of numbers.
NUMERIC_SUMMARY = ("rmse", "baseline_rmse", "r2", "nr_decades", "parameters", "bytes", "total_s")
_LATEST_TIME = 1e10  # Unix seconds (year 2286): a later "created" is not a time


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit
        return "a number of thousands of digits"
    return text if len(text) <= 40 else text[:37] + "..."


def _readable_summary(summary, problems: list[str]) -> dict:
    if not isinstance(summary, dict):
        problems.append(f"summary is {type(summary).__name__}, not an object")
        return {}
    kept = {}
    for key, value in summary.items():
        if key in NUMERIC_SUMMARY and not (value is None or _is_number(value)):
            problems.append(f"summary.{key} is not a number ({_shown(value)})")
        elif key == "agreement" and not (value is None or (
                isinstance(value, dict) and all(v is None or _is_number(v) for v in value.values()))):
            problems.append(f"summary.agreement is not an object of numbers ({_shown(value)})")
        elif key == "state" and not isinstance(value, str):
            problems.append(f"summary.state is not text ({_shown(value)})")
        else:
            kept[key] = value
    return kept


def readable(doc: dict) -> dict:
    """A copy of a stored record with every field of the type its readers format; anything that
    was not is dropped or defaulted and described in ``record["problems"]`` (absent when none)."""
    record, problems = {key: value for key, value in doc.items() if key != "problems"}, []
    for field, check, default in (
            ("name", lambda v: isinstance(v, str) and v, "unnamed record"),
            ("kind", lambda v: v in KINDS, "import"),
            ("created", lambda v: _is_number(v) and 0 <= v <= _LATEST_TIME, 0.0),
            ("updated", lambda v: _is_number(v) and 0 <= v <= _LATEST_TIME, 0.0),
            ("params", lambda v: isinstance(v, dict), {}),
            ("files", lambda v: v is None or (isinstance(v, str) and v), None),
            ("run_id", lambda v: v is None or (isinstance(v, str) and v), None)):
        if not check(record[field]):
            problems.append(f"{field} is {_shown(record[field])}")
            record[field] = default
    record["summary"] = _readable_summary(record["summary"], problems)
    if problems:
        record["problems"] = problems
    return record


def _load_owned(table: Table, user: User, record_id: str) -> Document:
    doc = table.get(Query().id == record_id)
    if doc is None:
        raise RecordNotFound(f"no record {record_id!r} in history")
    check_owner(user, doc["owner"], f"record {record_id}")
    return doc


def _newest_first(docs: list[Document]) -> list[dict]:
    """Readable copies, newest first; doc_id breaks ties between records created within the
    clock's resolution."""
    ordered = sorted(((readable(doc), doc.doc_id) for doc in docs), key=lambda pair: (pair[0]["created"], pair[1]),
                     reverse=True)
    return [record for record, _ in ordered]


def _modify(user: User, record_id: str, change: Callable[[dict], None]) -> dict:
    """Apply ``change`` to the user's record and bump ``updated``, all under one lock."""
    with _open_table() as table:
        doc = _load_owned(table, user, record_id)
        record = dict(doc)
        change(record)
        record["updated"] = _now()
        table.update(record, doc_ids=[doc.doc_id])
    return readable(record)


def add(user: User, kind: str, name: str, params: dict, summary: dict | None = None,
        files: str | None = None, run_id: str | None = None) -> dict:
    """Store a new record owned by ``user`` and return it."""
    name = clean_name(name)
    kind = _check_kind(kind)
    params = _json_dict(params, "params")
    summary = _json_dict({} if summary is None else summary, "summary")
    files = _check_files(files)
    run_id = _optional_text(run_id, "run_id")
    with _open_table() as table:
        # Stamped under the lock so creation order matches insertion order across processes.
        now = _now()
        record = {"id": _new_id(table), "owner": user.name, "name": name, "kind": kind, "created": now,
                  "updated": now, "params": params, "summary": summary, "files": files, "run_id": run_id}
        table.insert(record)
    return record


def get(user: User, record_id: str) -> dict:
    with _open_table() as table:
        return readable(_load_owned(table, user, record_id))


def list_records(user: User, kind: str | None = None, search: str | None = None,
                 since: float | None = None, until: float | None = None) -> list[dict]:
    """The records ``user`` may see, newest first.

    ``search`` matches a case-insensitive substring of the name; ``since`` and
    ``until`` bound ``created`` (Unix seconds, both inclusive).
    """
    if kind is not None:
        _check_kind(kind)
    needle = search.casefold() if search else None
    with _open_table() as table:
        docs = table.all()
    chosen = [
        record for record in _newest_first([doc for doc in docs if user.is_admin or doc["owner"] == user.name])
        if (kind is None or record["kind"] == kind)
        and (needle is None or needle in record["name"].casefold())
        and (since is None or record["created"] >= since)
        and (until is None or record["created"] <= until)
    ]
    return chosen


def rename(user: User, record_id: str, new_name: str) -> dict:
    name = clean_name(new_name)
    return _modify(user, record_id, lambda record: record.update(name=name))


def unique_name(user: User, name: str) -> str:
    """``name``, or ``name (2)``, ``(3)``… when the user already has a record of that name (an import of
    a bundle made here would otherwise look exactly like its original everywhere)."""
    taken = {r["name"] for r in list_records(user) if r["owner"] == user.name}
    if name not in taken:
        return name
    candidates = (f"{name[:NAME_MAX - len(f' ({k})')]} ({k})" for k in itertools.count(2))
    return next(c for c in candidates if c not in taken)


def update(user: User, record_id: str, *, summary: dict | None = None, params: dict | None = None) -> dict:
    """Merge ``summary`` and ``params`` into the record (top-level keys replace)."""
    changes = {
        field: _json_dict(value, field)
        for field, value in (("summary", summary), ("params", params))
        if value is not None
    }

    def merge(record: dict) -> None:
        for field, value in changes.items():  # a damaged field is replaced rather than merged into
            record[field] = {**(record[field] if isinstance(record[field], dict) else {}), **value}

    return _modify(user, record_id, merge)


def delete(user: User, record_id: str) -> dict:
    """Remove the record and then its files directory; return the removed record.

    A ``files`` path that escapes the data directory (a hand-edited file, a
    symlink) refuses the whole deletion. Files another record also points into
    are kept.
    """
    with _open_table() as table:
        doc = _load_owned(table, user, record_id)
        target = _files_of(doc)
        if target is not None and _shared(table, doc, target):
            target = None
        table.remove(doc_ids=[doc.doc_id])
    # Outside the lock: a run directory can be large; no record points at it any more.
    if target is not None:
        _remove_tree(target, record_id)
    return dict(doc)


def _files_of(doc: Document) -> Path | None:
    if not isinstance(doc["files"], str) or not doc["files"]:
        return None  # none, or damaged: the record goes, nothing is removed on its word
    try:
        return _files_path(doc["files"])
    except ValueError as exc:
        raise HistoryError(f"record {doc['id']} was not deleted: {exc}") from exc


def _shared(table: Table, doc: Document, target: Path) -> bool:
    """Whether another record's files are, contain or lie inside ``target``."""
    root = data_dir().resolve()
    others = [(root / other["files"]).resolve() for other in table.all()
              if other.doc_id != doc.doc_id and isinstance(other["files"], str) and other["files"]]
    return any(_overlaps(target, other) for other in others)


def _remove_tree(target: Path, record_id: str) -> None:
    try:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    except OSError as exc:
        raise HistoryError(f"record {record_id} was deleted but its files {target} were not: {exc.strerror}") from exc


def find_by_run(user: User, run_id: str) -> dict | None:
    """The newest record of ``run_id``, or None if there is none."""
    with _open_table() as table:
        docs = table.search(Query().run_id == run_id)
    if not docs:
        return None
    record = _newest_first(docs)[0]
    check_owner(user, record["owner"], f"run {run_id}")
    return record
