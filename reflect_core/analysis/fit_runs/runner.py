"""``python -m reflect_core.analysis.fit_runs.runner RUN_DIR``: run one background fit.

Started by ``fit_runs.submit`` (through the local backend, so pages poll and reap it like a
training worker). It claims its run by its pid, only in a run directory of its owner's folder
(``fits/<owner>/<run_id>``), reads nothing outside that directory, and then behaves as a
training worker (``jobs.worker.attend``): progress and log to its files, a heartbeat every
second, stop from ``control.json`` or SIGTERM, the outcome into ``state.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from reflect_core import jobs
from reflect_core.accounts.access import validate_username
from reflect_core.analysis.fit import run_fit
from reflect_core.base.errors import ReflectError
from reflect_core.base.storage import atomic_write_json
from reflect_core.formats.curves import parse_canonical
from reflect_core.jobs.worker import FileControl, FileReporter, attend

from .request import FitRequest
from .store import FIT_JSON, curve_file, fits_root, inside


def claim(run_dir: Path) -> jobs.Claim:
    """The run, claimed for this process, once its directory is a fit of its owner's folder."""
    path = run_dir.resolve()
    owner_dir = path.parent
    if owner_dir.parent != fits_root().resolve():
        raise jobs.JobError(f"{run_dir} is not a fit run directory in {fits_root()} (is REFLECT_DATA_DIR the same?)")
    validate_username(owner_dir.name)
    claimed = jobs.claim(path, home=owner_dir)
    if claimed.owner != owner_dir.name:
        raise jobs.JobError(f"fit {claimed.run_id} lies in {owner_dir.name}'s folder but names {claimed.owner!r} "
                            f"as its owner")
    return claimed


def summary(fit: dict) -> dict:
    """What state.json keeps of a result (the page lists it; the numbers live in fit.json)."""
    return {key: fit.get(key) for key in ("chi2", "chi2_reduced", "n_points", "n_free", "search")} | {
        "mcmc_steps": (fit.get("mcmc") or {}).get("steps")}


class TimeLimit:
    """``job_protocol.Control``: the user's requests, and "stop" once the fit has run ``seconds``."""

    def __init__(self, control: FileControl, seconds: int, reporter: FileReporter):
        self._control, self._seconds, self._reporter = control, seconds, reporter
        self._end, self._said = time.monotonic() + seconds, False

    def requested(self) -> str | None:
        if time.monotonic() < self._end:
            return self._control.requested()
        if not self._said:
            self._said = True
            self._reporter.log(f"stopped: a fit may run {self._seconds / 60:g} min here (its time limit)")
        return "stop"


def fit(claimed: jobs.Claim, reporter: FileReporter, control: FileControl) -> dict:
    """The work of a fit run: the request checked again (its file could have changed), the datasets
    from the run's own folder, ``run_fit``, and ``fit.json``."""
    request = FitRequest.parse(claimed.spec)
    config = request.fit_config()
    curves = [parse_canonical(inside(claimed.run_dir, claimed.run_dir / curve_file(k)).read_bytes(), name)
              for k, name in enumerate(request.curves)]
    reporter.log(f"fitting {len(curves)} dataset(s) ({', '.join(request.curves)}); search {request.search}, "
                 f"MCMC {request.mcmc_steps} steps, seed {request.seed}")
    result = run_fit(config, curves, search=request.search, mcmc_steps=request.mcmc_steps, seed=request.seed,
                     reporter=reporter, control=TimeLimit(control, request.time_limit_s, reporter))
    data = result.to_json()
    atomic_write_json(claimed.run_dir / FIT_JSON, data)
    reporter.log(f"χ²_red {data.get('chi2_reduced')} over {data.get('n_points')} points, "
                 f"{data.get('n_free')} free parameters ({data.get('search')})")
    return summary(data)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m reflect_core.analysis.fit_runs.runner RUN_DIR", file=sys.stderr)
        return 2
    try:
        claimed = claim(Path(sys.argv[1]))
    except ReflectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    attend(claimed, fit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
