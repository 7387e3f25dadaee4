"""The Modal backend: each attempt is a call of the deployed GPU function ``modal_jobs.train_run``.

Every Modal call goes through a client boundary (default: the ``modal`` package itself; tests
inject a fake with ``Function``, ``FunctionCall``, ``Dict`` and ``exception``) and runs in a
daemon thread with a short timeout, so an unreachable Modal never holds a page for long:
``poll`` then raises ``BackendUnavailable`` (the scheduler asks again and fails the run only when
it is overdue); ``launch`` raises ``JobError`` (the run fails with the reason).

The ref is ``<run id>:<function call id>``: the call id is what Modal needs, the run id keys the
run's entry in the shared ``modal.Dict`` (progress in, pause/stop out) and names the run directory
that receives the model. Checkpoints, generated data and the model travel through the run store
(the Hub, ``store.hub``), handed in by the app: this wing cannot import it.
"""

from __future__ import annotations

from pathlib import Path

from reflect_core.base.deadline import NoAnswer, call_with_deadline
from reflect_core.base.storage import atomic_write_json
from reflect_core.jobs.backends.base import Backend, BackendUnavailable, Poll
from reflect_core.jobs.remote_run import MODEL, control_key
from reflect_core.jobs.runfiles import CHECKPOINT, JobError, runs_dir
from reflect_core.ml.costs import TIMEOUT_S
from reflect_core.ml.spec import ArraySource, TrainSpec

APP_NAME = "reflect-ml"
FUNCTION_NAME = "train_run"
DICT_NAME = "reflect-ml-runs"
CALL_TIMEOUT_S = 10.0  # each network call from the app
LAUNCH_TIMEOUT_S = 20.0
MODEL_TIMEOUT_S = 120.0  # fetching a finished model (outside the store's lock)
FINAL_FIELDS = ("outcome", "error", "result")


def _default_client():
    import modal

    return modal


def bounded(fn, timeout_s: float, what: str):
    """``fn()`` with a deadline; ``BackendUnavailable`` when it takes longer than ``timeout_s``
    (the call is left to finish on its own). Exceptions from ``fn`` are raised here."""
    try:
        return call_with_deadline(fn, timeout_s, f"modal: {what}")
    except NoAnswer as exc:
        raise BackendUnavailable(str(exc)) from None


def split_ref(ref: str) -> tuple[str, str]:
    run_id, sep, call_id = str(ref).rpartition(":")
    if not sep or not run_id or not call_id:
        raise JobError(f"{ref!r} is not a modal ref (<run id>:<call id>)")
    return run_id, call_id


class ModalBackend(Backend):
    name = "modal"
    remote = True
    poll_interval_s = 5.0

    def __init__(self, client=None, run_store=None, call_timeout_s: float = CALL_TIMEOUT_S):
        self._client = client
        self.run_store = run_store  # HubRunStore-like, or None: then models stay on the Hub side
        self.call_timeout_s = call_timeout_s
        self._dict = None

    @property
    def client(self):
        if self._client is None:
            self._client = _default_client()
        return self._client

    def _channel(self):
        if self._dict is None:
            self._dict = self.client.Dict.from_name(DICT_NAME, create_if_missing=True)
        return self._dict

    def _unavailable(self, exc: BaseException) -> bool:
        """A passing problem: network, auth, Modal's own service errors."""
        errors = self.client.exception
        passing = tuple(getattr(errors, name) for name in ("AuthError", "ConnectionError", "InternalError",
                                                           "ServiceError", "ResourceExhaustedError")
                        if hasattr(errors, name))
        return isinstance(exc, (*passing, OSError, BackendUnavailable))

    # ---- Backend ------------------------------------------------------------------------------

    def launch(self, run_dir: Path, spec: TrainSpec) -> str:
        if isinstance(spec.dataset, ArraySource):
            raise JobError("uploaded training arrays cannot train on Modal yet: choose this machine")
        run_id = Path(run_dir).name
        resume = (Path(run_dir) / CHECKPOINT).is_file()  # retry removes it: a retry starts afresh
        state = _read_state_owner(run_dir)

        def spawn():
            channel = self._channel()
            channel.pop(control_key(run_id), None)  # a request meant for an earlier attempt
            fn = self.client.Function.from_name(APP_NAME, FUNCTION_NAME)
            call = fn.with_options(gpu=spec.gpu or "T4", timeout=TIMEOUT_S).spawn(
                run_id, spec.to_dict(), state, resume)
            return call.object_id

        try:
            call_id = bounded(spawn, LAUNCH_TIMEOUT_S, "the launch")
        except Exception as exc:  # noqa: BLE001 - the run fails with the reason
            raise JobError(f"could not start the modal function {APP_NAME}.{FUNCTION_NAME} "
                           f"(is it deployed? `modal deploy modal_jobs.py`): {type(exc).__name__}: {exc}") from None
        return f"{run_id}:{call_id}"

    def poll(self, ref: str) -> Poll:
        run_id, call_id = split_ref(ref)
        errors = self.client.exception
        try:
            value = bounded(lambda: self.client.FunctionCall.from_id(call_id).get(timeout=0),
                            self.call_timeout_s, f"a poll of {call_id}")
        except TimeoutError:  # the builtin: still running
            progress = self._progress(run_id)
            self._mark_checkpoint(run_id, progress)
            return Poll.running(progress)
        except errors.OutputExpiredError:
            return Poll.gone(f"the modal call {call_id} is gone (its results expired)")
        except errors.FunctionTimeoutError as exc:
            return self._failed(run_id, f"the modal call hit its {TIMEOUT_S / 3600:g} h time limit: {exc}")
        except Exception as exc:  # noqa: BLE001
            if self._unavailable(exc):
                raise BackendUnavailable(f"modal: {type(exc).__name__}: {exc}") from None
            return self._failed(run_id, f"the modal function raised {type(exc).__name__}: {exc}")
        return self._ended(run_id, value)

    def request(self, ref: str, action: str) -> None:
        run_id, _ = split_ref(ref)

        def send():
            self._channel()[control_key(run_id)] = action

        try:
            bounded(send, self.call_timeout_s, f"sending {action}")
        except Exception as exc:  # noqa: BLE001 - the store reports it to the user
            raise JobError(f"modal unreachable: {type(exc).__name__}: {exc}") from None

    def kill(self, ref: str) -> None:
        _, call_id = split_ref(ref)
        bounded(lambda: self.client.FunctionCall.from_id(call_id).cancel(), self.call_timeout_s, "a cancel")

    # ---- helpers --------------------------------------------------------------------------------

    def _progress(self, run_id: str) -> dict | None:
        """The run's latest progress from the Dict; None when it cannot be read quickly."""
        try:
            raw = bounded(lambda: self._channel().get(run_id), self.call_timeout_s, "reading progress")
        except Exception:  # noqa: BLE001 - progress is best effort; liveness came from the call
            return None
        return {k: v for k, v in raw.items() if k not in FINAL_FIELDS} if isinstance(raw, dict) else None

    def _mark_checkpoint(self, run_id: str, progress: dict | None) -> None:
        """A run whose checkpoint is in the run store gets a local marker: resume is offered (also
        after a failure) and the next launch resumes; a retry removes it and starts afresh."""
        if progress and progress.get("checkpoint"):
            path = runs_dir() / run_id
            if path.is_dir():
                atomic_write_json(path / CHECKPOINT, {"remote": self.name, "checkpoint": progress["checkpoint"]})

    def _failed(self, run_id: str, error: str) -> Poll:
        progress = self._progress(run_id)
        self._mark_checkpoint(run_id, progress)
        return Poll.ended("failed", error=error, progress=progress)

    def _ended(self, run_id: str, value) -> Poll:
        if not isinstance(value, dict) or value.get("outcome") not in ("completed", "paused", "stopped", "failed"):
            return Poll.ended("failed", error=f"the modal function returned {type(value).__name__}, not an outcome")
        progress = value.get("progress") if isinstance(value.get("progress"), dict) else None
        progress = {k: v for k, v in progress.items() if k not in FINAL_FIELDS} if progress else None
        outcome = value["outcome"]
        self._mark_checkpoint(run_id, progress if outcome in ("paused", "failed") else None)
        if outcome == "completed":
            self._fetch_model(run_id)
        return Poll.ended(outcome, error=value.get("error"), result=value.get("result"), progress=progress)

    def _fetch_model(self, run_id: str) -> None:
        """The finished model into the run directory (results are shown from there)."""
        path = runs_dir() / run_id
        if self.run_store is None or not path.is_dir():
            return
        try:
            bounded(lambda: self.run_store.get_model_dir(run_id, path / MODEL), MODEL_TIMEOUT_S, "fetching the model")
        except Exception as exc:  # noqa: BLE001 - asked again at the next poll; overdue fails the run
            raise BackendUnavailable(f"the run finished but its model could not be fetched: {exc}") from None
        (path / CHECKPOINT).unlink(missing_ok=True)


def _read_state_owner(run_dir: Path) -> str:
    from reflect_core.base.storage import read_json
    from reflect_core.jobs.runfiles import STATE

    return str((read_json(Path(run_dir) / STATE) or {}).get("owner") or "")


def modal_configured(config: dict) -> bool:
    return bool(config.get("MODAL_TOKEN_ID") and config.get("MODAL_TOKEN_SECRET"))
