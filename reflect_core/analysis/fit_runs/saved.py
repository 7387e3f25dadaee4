"""A completed fit kept in the history: a "fit" record whose folder
``history/fits/<user>/<id>/results/`` holds a copy of the run's ``spec.json``, ``fit.json`` and
datasets, so the record outlives the run (runs are pruned) and exports as a bundle like an analysis."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from reflect_core.accounts.access import User, validate_username
from reflect_core.base.errors import InvalidInput, NotFound
from reflect_core.base.storage import data_dir, read_json
from reflect_core.formats.curves import Curve, parse_canonical
from reflect_core.jobs.runfiles import SPEC
from reflect_core.store import history
from reflect_core.store.bundles import FOLDER_PARTS

from .request import FitRequest
from .store import DATA, FIT_JSON, FitRun, curve_file, inside, result_json

KIND = "fit"
RESULTS = FOLDER_PARTS[2]  # "results": the bundle part that holds them


@dataclass(frozen=True)
class SavedFit:
    request: FitRequest
    fit: dict  # fit.json
    curves: list[Curve]


def _folder(owner: str) -> Path:
    return data_dir() / "history" / "fits" / validate_username(owner)


def record_summary(fit: dict, request: FitRequest) -> dict:
    return {"state": "completed", "chi2_reduced": fit.get("chi2_reduced"), "n_points": fit.get("n_points"),
            "n_free": fit.get("n_free"), "search": fit.get("search"), "datasets": len(request.curves),
            "mcmc_steps": (fit.get("mcmc") or {}).get("steps")}


def save_fit(user: User, run: FitRun, name: str) -> dict:
    """A "fit" history record of a completed fit (owned by the run's owner); the record."""
    if run.state != "completed":
        raise InvalidInput(f"fit {run.run_id} is {run.state}: only a completed fit can be saved")
    fit = result_json(run)
    request = FitRequest.parse(read_json(run.run_dir / SPEC), check_config=False)
    root = _folder(run.owner)
    target = root / secrets.token_hex(6) / RESULTS
    target.mkdir(parents=True)
    try:
        shutil.copy2(inside(run.run_dir, run.run_dir / SPEC), target / SPEC)
        shutil.copy2(inside(run.run_dir, run.run_dir / FIT_JSON), target / FIT_JSON)
        shutil.copytree(inside(run.run_dir, run.run_dir / DATA), target / DATA)
        return history.add(user, KIND, name, request.to_dict(), record_summary(fit, request),
                           files=str(target.parent.relative_to(data_dir())), run_id=run.run_id)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


def _results(record: dict) -> Path:
    """The record's results folder, inside its owner's folder of saved fits or of imported bundles."""
    from reflect_core.store.importer import IMPORTS  # here: the importer loads torch, a runner needs none

    owner = validate_username(str(record.get("owner")))
    path = data_dir() / record["files"] / RESULTS
    for folder in (_folder(owner), data_dir() / IMPORTS / owner):
        try:
            return inside(folder, path)
        except InvalidInput:
            continue
    raise InvalidInput(f"the files of fit record {record.get('name')!r} are not inside its owner's folder")


def load_saved(record: dict) -> SavedFit:
    """The fit a "fit" record keeps (saved here, or imported from a bundle); ``NotFound`` when its
    files are gone, ``InvalidInput`` when they lie outside its owner's folders or cannot be read."""
    if record.get("kind") != KIND or not record.get("files"):
        raise InvalidInput(f"record {record.get('name')!r} is not a saved fit (it has no result files)")
    results = _results(record)
    if not (results / FIT_JSON).is_file():
        raise NotFound(f"the files of fit record {record['name']!r} are missing")
    request = FitRequest.parse(read_json(results / SPEC), check_config=False)
    fit = read_json(inside(results, results / FIT_JSON))
    if not isinstance(fit, dict):
        raise InvalidInput(f"fit record {record['name']!r}: {FIT_JSON} is not a JSON object")
    curves = [parse_canonical(inside(results, results / curve_file(k)).read_bytes(), name)
              for k, name in enumerate(request.curves)]
    return SavedFit(request, fit, curves)
