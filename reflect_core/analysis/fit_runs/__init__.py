"""Fits of measured curves that run in the background, as ``from reflect_core.analysis import fit_runs``.

- ``request``: what a fit is asked to do (``FitRequest``) and its bounds (MCMC steps, datasets, running
  fits, wall time).
- ``store``: the per-user run directories, submit, stop, delete, reads, and dead-runner detection.
- ``runner``: the runner process (``python -m reflect_core.analysis.fit_runs.runner RUN_DIR``).
- ``saved``: a completed fit kept as a "fit" history record.
"""

from reflect_core.analysis.fit_runs.request import (  # noqa: F401
    ACTIVE_FITS,
    MAX_CURVES,
    MCMC_STEPS,
    SEARCHES,
    FitRequest,
    FitRequestError,
    active_fit_limit,
    mcmc_step_limit,
    time_limit_s,
)
from reflect_core.analysis.fit_runs.saved import KIND, SavedFit, load_saved, save_fit  # noqa: F401
from reflect_core.analysis.fit_runs.store import (  # noqa: F401
    FIT_JSON,
    FitRun,
    FitRunNotFound,
    curves_of,
    delete,
    fit_dir,
    fits_root,
    get,
    list_fits,
    refresh,
    request_of,
    result_json,
    stop,
    submit,
    user_folder,
)
