"""A fake Modal client boundary (``Function``, ``FunctionCall``, ``Dict``, ``exception``) and a fake
Hub run store, shared by the backend tests and the browser test's server (``modal_fake_server.py``).
Each spawned call runs the real remote body (``jobs.remote_run.run_remote``) in a thread."""

import shutil
import threading
import time

import modal.exception

from reflect_core.jobs.backends.modal import APP_NAME, FUNCTION_NAME
from reflect_core.jobs.remote_run import run_remote


class FakeDict(dict):
    """A modal.Dict: ``get``/``pop``/item assignment. ``delay`` slows each publication (so that a
    test can pause mid-run); a cancelled call gets InputCancellation at its next control read."""

    def __init__(self):
        super().__init__()
        self.delay = 0.0
        self.cancelled = set()

    def __setitem__(self, key, value):
        if not key.endswith(":control") and self.delay:
            time.sleep(self.delay)
        super().__setitem__(key, value)

    def get(self, key, default=None):
        run_id = key.rsplit(":", 1)[0] if key.endswith(":control") else None
        if run_id in self.cancelled:
            self.cancelled.discard(run_id)
            raise modal.exception.InputCancellation("cancelled")
        return super().get(key, default)


class FakeRunStore:
    def __init__(self, root):
        self.root, self.files, self.flushes = root, {}, 0

    def put(self, run_id, name, data):
        self.files[(run_id, name)] = bytes(data)

    def get(self, run_id, name):
        return self.files.get((run_id, name))

    def flush(self):
        self.flushes += 1

    def put_model_dir(self, run_id, model_dir, card):
        shutil.copytree(model_dir, self.root / run_id / "model", dirs_exist_ok=True)

    def get_model_dir(self, run_id, dest):
        shutil.copytree(self.root / run_id / "model", dest, dirs_exist_ok=True)
        return dest

    def delete_run(self, run_id):
        self.files = {k: v for k, v in self.files.items() if k[0] != run_id}


# One fake call computes at a time: numba's OpenMP kernels and torch's thread pool running in two
# Python threads of one process aborted a test run once; a real Modal call has its own container.
ONE_CALL_AT_A_TIME = threading.Lock()


class FakeCall:
    def __init__(self, modal_fake, call_id, args):
        self.object_id, self.args, self.fake = call_id, args, modal_fake
        self.value = self.error = None
        self.expired = False
        self.raises = None  # what get() raises instead (a failed or unreachable call)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            with ONE_CALL_AT_A_TIME:
                self.value = run_remote(*self.args, channel=self.fake.dict, run_store=self.fake.store,
                                        heartbeat_s=0.2)
        except BaseException as exc:  # noqa: BLE001 - what Modal would raise from get()
            self.error = exc

    def get(self, timeout=None):
        assert timeout == 0
        if self.raises is not None:
            raise self.raises
        if self.expired:
            raise modal.exception.OutputExpiredError("expired")
        if self.thread.is_alive():
            raise TimeoutError()
        if self.error is not None:
            raise self.error
        return self.value

    def cancel(self):
        self.fake.dict.cancelled.add(self.args[0])
        self.fake.cancels.append(self.object_id)


class FakeModal:
    """The client boundary: ``Function``, ``FunctionCall``, ``Dict`` and ``exception``."""

    exception = modal.exception

    def __init__(self, store):
        self.dict, self.store = FakeDict(), store
        self.calls, self.spawns, self.cancels = {}, [], []
        outer = self

        class Function:
            @staticmethod
            def from_name(app, fn):
                assert (app, fn) == (APP_NAME, FUNCTION_NAME)
                return Function()

            def with_options(self, **options):
                self.options = options
                return self

            def spawn(self, *args):
                call = FakeCall(outer, f"fc-{len(outer.calls) + 1}", args)
                outer.calls[call.object_id] = call
                outer.spawns.append((self.options, args))
                return call

        class FunctionCall:
            @staticmethod
            def from_id(call_id):
                return outer.calls[call_id]

        class Dict:
            @staticmethod
            def from_name(name, create_if_missing=False):
                return outer.dict

        self.Function, self.FunctionCall, self.Dict = Function, FunctionCall, Dict
