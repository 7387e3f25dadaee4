"""Background training jobs (DESIGN.md, Jobs), used as ``from reflect_core import jobs``.

- ``runfiles``: the files of a run, the store's lock, settings and errors.
- ``store``: the state machine, queries, user actions and the worker's side.
- ``scheduler``: ``tick``, the only code that ends runs on liveness, and the queue.
- ``backends``: what runs workers (``local`` processes; remote ones registered by name).
- ``worker``: the local worker process.
"""

from reflect_core.jobs import backends  # noqa: F401
from reflect_core.jobs.runfiles import (  # noqa: F401
    CHECKPOINT,
    CONTROL,
    LOG,
    PROGRESS,
    SPEC,
    STATE,
    STATES,
    WORKER_OUT,
    JobError,
    RunNotFound,
    heartbeat_timeout_s,
    max_concurrent_jobs,
    run_dir,
    runs_dir,
)
from reflect_core.jobs.scheduler import tick  # noqa: F401
from reflect_core.jobs.store import (  # noqa: F401
    ALLOWED_FROM,
    Claim,
    Progress,
    RunInfo,
    active_count,
    cancel,
    claim,
    delete,
    finish,
    get,
    is_current,
    list_runs,
    new_run_id,
    pause,
    resume,
    retry,
    runs_for,
    stop,
    submit,
)
