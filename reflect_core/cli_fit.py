"""``python -m reflect_core fit``: a physics fit of measured curves (DESIGN.md, Command line).

    fit CONFIG.json DATA [DATA ...] --out DIR [--from-model MODEL_DIR] [--global | --local]
        [--mcmc STEPS] [--seed N]

CONFIG is a fit configuration (the film, which parameters vary within which bounds, ties,
mixes, scale, background, contrasts; ``analysis.fit.FitConfig``). Each DATA file is read as an
upload is (text columns Q, R, dR[, dQ FWHM] or ORSO .ort, whose every data set is one curve),
so units and R are checked the same way; the curves are the config's datasets, in order.
``--from-model`` starts from a trained network's profile of the first curve instead of the
config's film, keeping the config's scale, background, contrasts and dq.

Writes DIR/fit.json, DIR/curve_K.csv (Q, R, dR, R_fit; K from 0, one per curve) and
DIR/profile.csv (z, sld, plus the MCMC band's columns with ``--mcmc``); prints a summary
JSON on stdout, progress and notes on stderr. Errors: one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reflect_core.base.errors import InvalidInput
from reflect_core.base.job_protocol import PrintReporter
from reflect_core.base.storage import read_input_file
from reflect_core.formats.curves import MAX_CURVE_BYTES

MAX_CONFIG_BYTES = 5_000_000  # a config of 100 free parameters and 1,000 layers is ~200 kB
KEPT_FROM_CONFIG = ("scale", "background", "contrasts", "dq")  # --from-model keeps these of the config


def read_config(path: str) -> dict:
    try:
        raw = json.loads(read_input_file(path, MAX_CONFIG_BYTES).decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a text file (it is not UTF-8)") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: a fit configuration is a JSON object with 'film' and 'bounds'")
    return raw


def read_curves(paths: list[str]) -> list[tuple]:
    """(curve, label) for every data set of every file, in order; each has the dR a fit needs."""
    from reflect_core.uploads.curves import validate_curves

    found = []
    for path in paths:
        accepted = validate_curves(Path(path).name, read_input_file(path, MAX_CURVE_BYTES), MAX_CURVE_BYTES)
        for curve, label in accepted.content:
            if curve.dr is None:
                raise InvalidInput(f"{path}: has no dR column; a fit weighs each point by its uncertainty, so it "
                                   "needs columns Q, R, dR (and optionally dQ)")
            found.append((curve, label))
    return found


def _unique(labels: list[str]) -> list[str]:
    """Labels made distinct (two files of one name in different folders): "name", "name (2)", …"""
    seen, out = {}, []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _with_names(raw: dict, labels: list[str]) -> dict:
    """The config with each contrast named after its curve where the config names none."""
    labels = _unique(labels)
    contrasts = raw.get("contrasts")
    if contrasts is None:
        return {**raw, "contrasts": [{"name": label} for label in labels]}
    if isinstance(contrasts, list) and len(contrasts) == len(labels):
        named = [{"name": label, **c} if isinstance(c, dict) and "name" not in c else c
                 for c, label in zip(contrasts, labels)]
        return {**raw, "contrasts": named}
    return raw  # a wrong count or form: FitConfig.parse says what is wrong


def start_from_network(raw: dict, model_dir: str, curve) -> dict:
    """The network's start (film and bounds) with the config's scale, background, contrasts and dq."""
    from reflect_core.analysis.start import start_from_model

    start, analysis = start_from_model(model_dir, curve)
    for note in getattr(analysis, "notes", []) or []:
        print(f"note: {note}", file=sys.stderr)
    return {**start, **{key: raw[key] for key in KEPT_FROM_CONFIG if key in raw}}


def summary(result, out: Path) -> dict:
    """What the command prints: the fit's quality, the search, every free parameter ± 1σ and, after
    MCMC, each parameter's posterior percentiles (fit.json holds the SLD band too)."""
    mcmc = result.mcmc and {key: result.mcmc.get(key) for key in ("steps", "walkers", "burn", "thin", "samples",
                                                                  "parameters")}
    return {
        "chi2_reduced": result.chi2_reduced, "chi2": result.chi2, "n_points": result.n_points,
        "n_free": result.n_free, "search": result.search, "found_by": result.found_by,
        "contrasts": result.contrasts,
        "parameters": [{"name": p["name"], "value": p["value"], "stderr": p["stderr"]} for p in result.parameters],
        "mcmc": mcmc or None, "notes": result.notes, "seconds": result.seconds, "out": str(out),
    }


def write_results(result, out: Path) -> list[Path]:
    from reflect_core.viz.fit_bundle import FIT_JSON, PROFILE_CSV, curve_csv, curve_csv_name, profile_csv

    fit = result.to_json()
    band = (fit.get("mcmc") or {}).get("sld_band")
    files = {FIT_JSON: json.dumps(fit, indent=1, allow_nan=False),
             PROFILE_CSV: profile_csv(result.profile[0], result.profile[1], band)}
    files.update({curve_csv_name(k): curve_csv(curve) for k, curve in enumerate(result.curves)})
    try:
        for name, text in files.items():
            (out / name).write_text(text)
    except OSError as exc:
        raise InvalidInput(f"cannot write to {out}: {exc.strerror or exc}") from None
    return [out / name for name in files]


def cmd_fit(args) -> None:
    from reflect_core.analysis.fit import FitConfig, run_fit

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out}: exists and is not a folder")
    raw = read_config(args.config)
    found = read_curves(args.data)
    curves, labels = [c for c, _ in found], [label for _, label in found]
    if args.from_model:
        raw = start_from_network(raw, args.from_model, curves[0])
    try:
        config = FitConfig.parse(_with_names(raw, labels), len(curves))
    except InvalidInput as exc:
        raise InvalidInput(f"{args.config}: {exc}") from None
    search = "global" if args.global_search else "local" if args.local_search else "auto"
    try:
        out.mkdir(parents=True, exist_ok=True)  # before the fit: an unusable folder fails at once
    except OSError as exc:
        raise InvalidInput(f"cannot create {out}: {exc.strerror or exc}") from None
    result = run_fit(config, curves, search=search, mcmc_steps=args.mcmc, seed=args.seed, reporter=PrintReporter())
    write_results(result, out)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps(summary(result, out), indent=1, allow_nan=False))


def add_fit_parser(sub) -> None:
    fit = sub.add_parser(
        "fit", help="fit a film to measured curves (least squares, global search, MCMC) → fit.json, "
                    "curve_K.csv, profile.csv")
    fit.add_argument("config", help="fit configuration JSON: film, bounds [{i, par, bounds}], ties, mixes, scale, "
                                    "background, contrasts, dq (see README)")
    fit.add_argument("data", nargs="+", help="measured curves in the configuration's dataset order: text columns "
                                             "Q, R, dR[, dQ FWHM] in 1/Å, or ORSO .ort (each data set one curve)")
    fit.add_argument("--out", required=True, help="output folder (created): fit.json, curve_K.csv, profile.csv")
    fit.add_argument("--from-model", metavar="MODEL_DIR",
                     help="start from this trained model's profile of the first curve instead of the config's film "
                          "(the config's scale, background, contrasts and dq are kept)")
    search = fit.add_mutually_exclusive_group()
    search.add_argument("--global", dest="global_search", action="store_true",
                        help="differential evolution within the bounds, then least squares (default: global only "
                             "when the start is far from the data)")
    search.add_argument("--local", dest="local_search", action="store_true",
                        help="least squares from the start only")
    fit.add_argument("--mcmc", type=int, default=0, metavar="STEPS",
                     help="then sample the posterior for this many MCMC steps (default 0: none)")
    fit.add_argument("--seed", type=int, default=0, help="random seed of the global search and MCMC (default 0)")
    fit.set_defaults(run=cmd_fit)
