"""Background training jobs: the run store, the scheduler and the backends that run workers."""

from reflect_core.jobs.runs import (  # noqa: F401
    CHECKPOINT, CONTROL, LOG, PROGRESS, SPEC, STATE, WORKER_OUT, Claim, JobError, Progress, RunInfo, active_count,
    cancel, claim, delete, finish, get, is_current, list_runs, max_concurrent_jobs, pause, resume, retry, run_dir,
    runs_dir, runs_for, stop, submit, tick,
)
