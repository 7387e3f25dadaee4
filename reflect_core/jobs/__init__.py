"""Background training jobs (DESIGN.md, Jobs), used as ``from reflect_core import jobs``.

- ``runfiles``: the files of a run, the store's lock, settings and errors.
- ``store``: the state machine, user actions (checked against limits under the lock) and the worker's side.
- ``queries``: what pages read (runs, progress, allowed actions; damaged runs listed as such).
- ``scheduler``: ``tick``, the only code that ends runs on liveness, and the queue.
- ``backends``: what runs workers (``local`` processes; remote ones registered by name).
- ``worker``: the local worker process.
"""

from reflect_core.jobs import backends  # noqa: F401
from reflect_core.jobs.queries import (  # noqa: F401
    Progress,
    RunInfo,
    active_count,
    get,
    list_runs,
    runs_for,
)
from reflect_core.jobs.runfiles import (  # noqa: F401
    ALLOWED_FROM,
    CHECKPOINT,
    CONTROL,
    DAMAGED,
    LOG,
    PROGRESS,
    SPEC,
    STATE,
    STATES,
    WORKER_OUT,
    DamagedRun,
    JobError,
    RunNotFound,
    heartbeat_timeout_s,
    max_concurrent_jobs,
    run_dir,
    runs_dir,
)
from reflect_core.jobs.scheduler import tick  # noqa: F401
from reflect_core.jobs.store import (  # noqa: F401
    Claim,
    cancel,
    claim,
    delete,
    finish,
    is_current,
    new_run_id,
    pause,
    rename,
    resume,
    retry,
    stop,
    submit,
)
