"""The body of a remote training attempt (``modal_jobs.train_run``), free of Modal so that it
can be tested with plain objects.

A remote worker cannot see the app's run files. It talks through two injected objects:

- ``channel``: a dict-like store shared with the app (a ``modal.Dict``): ``channel[run_id]`` is
  the run's progress (the fields of ``progress.json``, plus ``outcome`` once it has ended),
  ``channel[control_key(run_id)]`` a pending "pause" or "stop" from the app.
- ``run_store``: durable files of the run (``HubRunStore``'s methods: ``put``, ``get``, ``flush``,
  ``put_model_dir``, ``get_model_dir``): the checkpoint, the generated data and the final model.

``run_remote`` runs the same job function as the local worker (``ml.pipeline.run_job``) in a
scratch directory, restores the checkpoint and generated data of earlier attempts first, pushes
the checkpoint whenever the trainer writes one (and on pause), pushes the model at the end, and
writes its final state into the channel in ``finally``, even when the call is cancelled
(``InputCancellation`` is a ``BaseException``).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import traceback
from pathlib import Path

from reflect_core.base.job_protocol import Paused, Stopped
from reflect_core.data.generate import CONFIG_FILE, NR_FILE, SLD_FILE, STATUS_FILE
from reflect_core.jobs.runfiles import CHECKPOINT  # not ml.training's (the same name): that module loads torch
from reflect_core.ml.spec import ArraySource, TrainSpec

HEARTBEAT_INTERVAL_S = 5.0
PUBLISH_MIN_INTERVAL_S = 2.0  # in-phase progress; epochs, phase changes and log lines publish at once
LOG_TAIL_LINES = 50
DATA_FILES = (CONFIG_FILE, NR_FILE, SLD_FILE, STATUS_FILE)  # data/<name> in the run store
MODEL = "model"


def control_key(run_id: str) -> str:
    return f"{run_id}:control"


def empty_progress() -> dict:
    return {"phase": "", "done": 0, "total": 0, "epoch": 0, "epochs_total": 0,
            "train_loss": [], "val_loss": [], "log_tail": [], "heartbeat": None}


class DictReporter:
    """``job_protocol.Reporter`` that publishes the run's progress into ``channel[run_id]``.

    Thread-safe (the heartbeat thread publishes through it too). ``on_change`` is called after
    each report, outside the lock (the checkpoint sync hangs there)."""

    def __init__(self, channel, run_id: str, start: dict | None = None, on_change=None):
        self._channel, self._run_id = channel, run_id
        self._progress = {**empty_progress(), **(start or {})}
        self._progress.pop("outcome", None)
        self._lock = threading.Lock()
        self._published_at = 0.0
        self._on_change = on_change

    @property
    def progress(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._progress))

    def phase(self, name: str, done: int = 0, total: int = 0) -> None:
        with self._lock:
            changed = name != self._progress["phase"]
            self._progress.update(phase=name, done=done, total=total)
            self._publish(at_once=changed or bool(total and done >= total))
        self._changed()

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"{stamp} {line}" for line in message.splitlines() or [""]]
        with self._lock:
            self._progress["log_tail"] = (self._progress["log_tail"] + lines)[-LOG_TAIL_LINES:]
            self._publish(at_once=True)

    def epoch(self, epoch: int, total: int, train_loss: float, val_loss: float) -> None:
        self.log(f"epoch {epoch}/{total}: train {train_loss:.4g}, validation {val_loss:.4g}")
        with self._lock:
            p = self._progress
            p["train_loss"] = p["train_loss"][: epoch - 1] + [float(train_loss)]
            p["val_loss"] = p["val_loss"][: epoch - 1] + [float(val_loss)]
            p.update(epoch=epoch, epochs_total=total)
            self._publish(at_once=True)
        self._changed()

    def note(self, **fields) -> None:
        """Extra fields in the published progress (``checkpoint``: when the run store last got one)."""
        with self._lock:
            self._progress.update(fields)
            self._publish(at_once=True)

    def flush(self, **final) -> None:
        """Publish now (the heartbeat); ``final`` fields (``outcome``…) are added to this publication."""
        with self._lock:
            self._publish(at_once=True, **final)

    def _publish(self, at_once: bool, **extra) -> None:
        now = time.monotonic()
        if at_once or now - self._published_at >= PUBLISH_MIN_INTERVAL_S:
            self._progress["heartbeat"] = time.time()
            self._channel[self._run_id] = {**self._progress, **extra}
            self._published_at = now

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


class DictControl:
    """``job_protocol.Control`` reading ``channel[control_key(run_id)]``, at most every ``every_s``
    seconds (it is asked once per batch; each read is a network call)."""

    def __init__(self, channel, run_id: str, every_s: float = 1.0):
        self._channel, self._key, self._every_s = channel, control_key(run_id), every_s
        self._read_at = -float("inf")
        self._action = None

    def requested(self) -> str | None:
        now = time.monotonic()
        if self._action is None and now - self._read_at >= self._every_s:
            self._read_at = now
            try:
                action = self._channel.get(self._key)
            except Exception:  # noqa: BLE001 - a passing read failure: ask again next time
                action = None
            self._action = action if action in ("pause", "stop") else None
        return self._action


class CheckpointSync:
    """Pushes ``checkpoint.pt`` to the run store whenever the trainer has written a new one, and
    the generated data once generation is complete."""

    def __init__(self, run_store, run_id: str, run_dir: Path, data_stored: bool, on_pushed=None):
        self._store, self._run_id, self._run_dir = run_store, run_id, run_dir
        self._on_pushed = on_pushed
        self._seen = None
        self._data_stored = data_stored
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._data()
            path = self._run_dir / CHECKPOINT
            try:
                st = path.stat()
            except FileNotFoundError:
                return
            if (st.st_ino, st.st_mtime_ns, st.st_size) != self._seen:
                self._store.put(self._run_id, CHECKPOINT, path.read_bytes())
                self._seen = (st.st_ino, st.st_mtime_ns, st.st_size)
                if self._on_pushed is not None:
                    self._on_pushed()

    def _data(self) -> None:
        folder = self._run_dir / "data"
        if self._data_stored or not _generation_complete(folder):
            return
        for name in DATA_FILES:
            if (folder / name).is_file():
                self._store.put(self._run_id, f"data/{name}", (folder / name).read_bytes())
        self._data_stored = True


def _generation_complete(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / STATUS_FILE).read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def restore(run_store, run_id: str, run_dir: Path) -> bool:
    """Earlier attempts' generated data and checkpoint into ``run_dir``; True when the data came back."""
    found = True
    for name in DATA_FILES:
        raw = run_store.get(run_id, f"data/{name}")
        if raw is None:
            found = False
            continue
        (run_dir / "data").mkdir(exist_ok=True)
        (run_dir / "data" / name).write_bytes(raw)
    checkpoint = run_store.get(run_id, CHECKPOINT)
    if checkpoint is not None:
        (run_dir / CHECKPOINT).write_bytes(checkpoint)
    return found and _generation_complete(run_dir / "data")


class _Heartbeat(threading.Thread):
    def __init__(self, reporter: DictReporter, interval_s: float):
        super().__init__(name="heartbeat", daemon=True)
        self._reporter, self._interval_s = reporter, interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._reporter.flush()
            except Exception:  # noqa: BLE001 - a passing failure; the next beat tries again
                pass

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=self._interval_s + 1)


def run_remote(run_id: str, spec_dict: dict, owner: str, resume: bool, channel, run_store,
               workdir: Path | None = None, heartbeat_s: float = HEARTBEAT_INTERVAL_S) -> dict:
    """One attempt; returns ``{"outcome", "error", "result", "progress"}`` (``Poll.ended``'s fields).
    ``resume``: continue from the run store's checkpoint (a fresh attempt ignores one)."""
    with tempfile.TemporaryDirectory(prefix=f"run-{run_id}-", dir=workdir) as tmp:
        return _attempt(run_id, spec_dict, owner, resume, channel, run_store, Path(tmp), heartbeat_s)


def _attempt(run_id, spec_dict, owner, resume, channel, run_store, run_dir: Path, heartbeat_s: float) -> dict:
    earlier = _read(channel, run_id) if resume else None  # the launcher has cleared old requests
    outcome = {"outcome": "failed", "error": "the attempt ended before it reported", "result": None}
    reporter = DictReporter(channel, run_id, earlier)
    heartbeat = _Heartbeat(reporter, heartbeat_s)
    try:
        data_stored = restore(run_store, run_id, run_dir)
        if not resume:
            (run_dir / CHECKPOINT).unlink(missing_ok=True)
        sync = CheckpointSync(run_store, run_id, run_dir, data_stored,
                              on_pushed=lambda: reporter.note(checkpoint=time.time()))
        reporter._on_change = sync
        heartbeat.start()
        reporter.log(f"remote attempt started ({'resuming' if resume else 'from the start'})")
        outcome = _train(run_id, spec_dict, owner, run_dir, reporter, DictControl(channel, run_id), run_store, sync)
    except BaseException as exc:  # InputCancellation (a cancel), KeyboardInterrupt, SystemExit
        cancelled = type(exc).__name__ == "InputCancellation"
        outcome = {"outcome": "stopped" if cancelled else "failed",
                   "error": None if cancelled else f"{type(exc).__name__}: {exc}", "result": None}
        raise
    finally:
        heartbeat.stop()
        try:
            run_store.flush()
        except Exception as exc:  # noqa: BLE001 - reported, the outcome still goes out
            reporter.log(f"could not finish uploading to the run store: {type(exc).__name__}: {exc}")
            if outcome["outcome"] in ("completed", "paused"):
                outcome = {"outcome": "failed", "error": f"run store upload failed: {exc}", "result": None}
        outcome["progress"] = reporter.progress
        try:
            reporter.flush(outcome=outcome["outcome"], error=outcome["error"], result=outcome["result"])
        except Exception:  # noqa: BLE001 - the return value carries the outcome too
            pass
    return outcome


def _train(run_id, spec_dict, owner, run_dir, reporter, control, run_store, sync) -> dict:
    try:
        from reflect_core.ml.pipeline import run_job

        spec = TrainSpec.parse(spec_dict)
        if isinstance(spec.dataset, ArraySource):
            raise ValueError("uploaded training arrays cannot be used on the modal backend yet: train them here")
        result = run_job(spec, run_dir, reporter, control)
        json.dumps(result)
        reporter.phase("uploading the model")
        run_store.put_model_dir(run_id, run_dir / MODEL, f"NR → SLD model of run {run_id} (owner {owner})")
    except Paused as exc:
        sync()  # the pause checkpoint, before the container exits
        reporter.log(f"paused: {exc}")
        return {"outcome": "paused", "error": None, "result": None}
    except Stopped as exc:
        reporter.log(f"stopped: {exc}")
        return {"outcome": "stopped", "error": None, "result": None}
    except Exception as exc:
        reporter.log(traceback.format_exc().rstrip())
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}", "result": None}
    reporter.log("completed")
    return {"outcome": "completed", "error": None, "result": result}


def _read(channel, key: str):
    try:
        return channel.get(key)
    except Exception:  # noqa: BLE001
        return None
