"""What a background fit is asked to do (``spec.json`` of a fit run), checked once at the boundary.

    {"kind": "fit",
     "config": {fit configuration, the contract's form: film, bounds, ties, mixes, scale, background, contrasts},
     "curves": ["name of dataset 0", ...],          # display names; the data are the run's data/curve_K.csv
     "search": "auto" | "local" | "global",
     "mcmc_steps": 0 ..., "seed": 0 ...,
     "start": {"kind": "explorer" | "record" | "text" | "model" | "film", "label": "..."}}   # provenance only

The bounds below are this module's own (the fit engine has none): a physical one and resource ones.
MCMC: the sampler's cost is steps × walkers × (points of every curve); 2,000 steps already give
stable 95 % intervals for the handful of parameters a slab fit has, and 20,000 is past what a CPU
finishes in a sitting, so the shared profile stops at the first and the local one at the second.
Datasets: one per contrast; 8 contrasts is more than any measurement series shares one film across.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflect_core.accounts.limits import Limits
from reflect_core.analysis.fit import FitConfig
from reflect_core.analysis.fit.budget import check_fit_size
from reflect_core.base.errors import InvalidInput

SEARCHES = ("auto", "local", "global")
START_KINDS = ("explorer", "record", "text", "model", "film")
MAX_CURVES = 8
MCMC_STEPS = {"local": 20_000, "shared": 2_000}  # by Limits.profile
ACTIVE_FITS = {"local": 2, "shared": 1}  # fits a user may have running at once, by Limits.profile
# A fit's wall time, by Limits.profile: the longest local MCMC of a large model takes about an hour here; on a
# shared box the cores are everyone's, and 20,000 steps of 400 walkers on 8 long curves would take days.
TIME_LIMITS_S = {"local": 4 * 3600, "shared": 20 * 60}
MAX_SEED = 2**32 - 1
NAME_MAX = 200


class FitRequestError(InvalidInput):
    """A fit request that cannot run; the message names the field."""


def mcmc_step_limit(limits: Limits | None) -> int:
    return MCMC_STEPS.get(limits.profile, MCMC_STEPS["shared"]) if limits is not None else MCMC_STEPS["local"]


def time_limit_s(limits: Limits | None) -> int:
    return TIME_LIMITS_S.get(limits.profile, TIME_LIMITS_S["shared"]) if limits is not None else TIME_LIMITS_S["local"]


def active_fit_limit(limits: Limits | None) -> int:
    return ACTIVE_FITS.get(limits.profile, ACTIVE_FITS["shared"]) if limits is not None else ACTIVE_FITS["local"]


def _integer(raw: dict, field: str, default: int, low: int, high: int) -> int:
    value = raw.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FitRequestError(f"{field} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise FitRequestError(f"{field} is {value:,}; it must be between {low:,} and {high:,}")
    return value


def _names(raw) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise FitRequestError("curves must be a non-empty list of dataset names")
    if len(raw) > MAX_CURVES:
        raise FitRequestError(f"curves: {len(raw)} datasets; at most {MAX_CURVES} (one per contrast) "
                              f"are fitted together")
    for k, name in enumerate(raw):
        if not isinstance(name, str) or not name or len(name) > NAME_MAX:
            raise FitRequestError(f"curves[{k}] must be a name of 1-{NAME_MAX} characters")
    return tuple(raw)


def _start(raw) -> dict:
    if raw is None:
        return {"kind": "film", "label": ""}
    if not isinstance(raw, dict) or raw.get("kind") not in START_KINDS:
        raise FitRequestError(f"start.kind must be one of {', '.join(START_KINDS)}")
    label = raw.get("label", "")
    if not isinstance(label, str) or len(label) > NAME_MAX:
        raise FitRequestError(f"start.label must be text of at most {NAME_MAX} characters")
    return {"kind": raw["kind"], "label": label}


@dataclass(frozen=True)
class FitRequest:
    config: dict
    curves: tuple[str, ...]
    search: str = "auto"
    mcmc_steps: int = 0
    seed: int = 0
    start: dict | None = None
    time_limit_s: int = TIME_LIMITS_S["local"]  # the runner stops the fit after this many seconds

    @classmethod
    def parse(cls, raw, limits: Limits | None = None, check_config: bool = True) -> "FitRequest":
        """The request, checked: fields, the MCMC bound of ``limits``' profile (the local one without),
        and the fit configuration itself (``FitConfig.parse``, whose messages name the field)."""
        if not isinstance(raw, dict):
            raise FitRequestError(f"a fit request is a JSON object, not {type(raw).__name__}")
        if raw.get("kind", "fit") != "fit":
            raise FitRequestError(f"kind must be 'fit', not {raw.get('kind')!r}")
        unknown = sorted(set(raw) - {"kind", "config", "curves", "search", "mcmc_steps", "seed", "start",
                                     "time_limit_s"})
        if unknown:
            raise FitRequestError(f"unknown field(s) in the fit request: {', '.join(unknown)}")
        curves = _names(raw.get("curves"))
        if not isinstance(raw.get("config"), dict):
            raise FitRequestError("config must be a fit configuration (a JSON object with the film and its bounds)")
        search = raw.get("search", "auto")
        if search not in SEARCHES:
            raise FitRequestError(f"search must be one of {', '.join(SEARCHES)}, not {search!r}")
        request = cls(config=raw["config"], curves=curves, search=search,
                      mcmc_steps=_integer(raw, "mcmc_steps", 0, 0, mcmc_step_limit(limits)),
                      seed=_integer(raw, "seed", 0, 0, MAX_SEED), start=_start(raw.get("start")),
                      time_limit_s=_integer(raw, "time_limit_s", time_limit_s(limits), 1, time_limit_s(limits)))
        if check_config:
            check_fit_size(request.fit_config().n_free, request.mcmc_steps)
        return request

    def fit_config(self) -> FitConfig:
        """The parsed ``FitConfig`` (``InvalidInput`` naming the field when it is not valid)."""
        return FitConfig.parse(self.config, len(self.curves))

    def to_dict(self) -> dict:
        return {"kind": "fit", "config": self.config, "curves": list(self.curves), "search": self.search,
                "mcmc_steps": self.mcmc_steps, "seed": self.seed, "start": self.start or _start(None),
                "time_limit_s": self.time_limit_s}
