"""``python -m reflect_core``: every capability as a command (DESIGN.md).

Errors are one clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from reflect_core.accounts.auth_config import hash_password
from reflect_core.base.errors import ReflectError
from reflect_core.base.job_protocol import PrintReporter
from reflect_core.base.storage import read_input_file
from reflect_core.cli_fit import add_fit_parser
from reflect_core.data.generate import NR_FILE, SLD_FILE, dataset_from_dict, generate
from reflect_core.doctor import ESSENTIAL, as_json, as_text, broken, read_settings, run_checks
from reflect_core.formats.arrays import load_npy, load_training_arrays
from reflect_core.formats.curves import csv_text, q_grid, read_curve
from reflect_core.formats.films import load_film
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.predict import predict
from reflect_core.ml.spec import TrainSpec
from reflect_core.physics.film import FilmError
from reflect_core.physics.profile import DEFAULT_PROFILE_POINTS
from reflect_core.physics.simulate import (
    PYREFLECT_DQ,
    PYREFLECT_NQ,
    PYREFLECT_QMAX,
    PYREFLECT_QMIN,
    CurveSettings,
    film_profile,
    film_reflectivity,
)


class CliError(ReflectError):
    """A user error: printed as one line, exit status 2."""


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _film(path: str):
    try:
        return load_film(path)
    except FilmError as exc:
        raise CliError(f"{path}: {exc}") from None


def cmd_simulate(args) -> None:
    film = _film(args.film)
    dq_abs = None
    dq = args.dq
    if args.q_file:
        curve = read_curve(args.q_file)
        q = curve.q
        if curve.dq is not None and args.dq is None:
            dq_abs = curve.dq
    else:
        q = q_grid(args.qmin, args.qmax, args.nq, args.spacing)
    settings = CurveSettings(dq=PYREFLECT_DQ if dq is None else dq, scale=args.scale, background=args.bkg)
    r = film_reflectivity(film, q, settings, dq_abs=dq_abs)
    _write(args.out, csv_text(["Q", "R"], [q, r]))


def cmd_profile(args) -> None:
    film = _film(args.film)
    if args.npoints < 2:
        raise CliError(f"--npoints must be at least 2, got {args.npoints}")
    z, sld, isld = film_profile(film, args.npoints)
    _write(args.out, csv_text(["z", "sld"], [z, sld]))


def _json_file(path: str) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not valid JSON ({exc})") from None


def cmd_generate(args) -> None:
    config = dataset_from_dict(_json_file(args.config))
    out = generate(config, args.out, PrintReporter())
    print(f"wrote {config.n} curves to {out}/{NR_FILE} and {SLD_FILE}")


def cmd_train(args) -> None:
    # torch only here: `doctor` must run (and say so) when torch is missing or broken
    from reflect_core.ml.pipeline import train_on_arrays
    from reflect_core.ml.training import CHECKPOINT

    spec = TrainSpec.parse(_json_file(args.config))
    out = Path(args.out)
    data_dir = Path(args.data) if args.data else generate(spec.dataset, out / "data", PrintReporter())
    nr, sld = load_training_arrays(data_dir / NR_FILE, data_dir / SLD_FILE)
    summary = train_on_arrays(nr, sld, spec, out, PrintReporter(), checkpoint=out / CHECKPOINT)
    meta = ModelMeta.read(out)
    print(json.dumps({**summary, "parameters": meta.parameters, "metrics": meta.metrics}, indent=1))


def cmd_predict(args) -> None:
    nr = load_npy(args.nr, "curves")
    profiles = predict(args.model_dir, nr, resample=args.resample)
    if args.band:  # refused before anything is written when the model has no band
        from reflect_core.ml.meta import ModelMeta
        from reflect_core.ml.uncertainty import LEVELS, BandError, band_of

        meta = ModelMeta.read(args.model_dir)
        try:
            band = band_of(meta.metrics, meta.z.size)
        except BandError as exc:
            raise CliError(f"{args.model_dir}: {exc}") from None
        if band is None:
            raise CliError(f"{args.model_dir} has no uncertainty band (trained before bands were kept, or "
                           "imported): train it again for one")
        rows = [profiles[:, 0]] + [bound for level in LEVELS for bound in band.around(profiles[:, 1], level)]
        _write_npy(args.band, np.stack(rows, axis=1).astype(np.float32))
        print(band.describe(), file=sys.stderr)
    _write_npy(args.out, profiles)


def cmd_analyse(args) -> None:
    """Predict the profile of a measured curve and say how well it explains the data."""
    from reflect_core.analysis.measured import analyse_with_model
    from reflect_core.formats.curves import MAX_CURVE_BYTES
    from reflect_core.uploads import validate_upload

    # The same checks as an upload on the Models page: text or ORSO, units, R that is R.
    raw = read_input_file(args.curve, MAX_CURVE_BYTES)
    curve = validate_upload(Path(args.curve).name, raw, "curve", MAX_CURVE_BYTES)
    result = analyse_with_model(args.model_dir, curve.content)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    band = result.band or {}  # the uncertainty band's columns when the model has one
    _write(args.out, csv_text(["z", "sld", *band], [result.z, result.sld, *band.values()]))
    if args.recomputed:
        _write(args.recomputed, csv_text(["Q", "R"], [result.q, result.r]))
    from reflect_core.analysis.verdicts import fit_verdict

    for verdict in (fit_verdict(result.agreement), result.prior.verdict):
        print(f"{verdict.level}: {verdict.text}", file=sys.stderr)
    print(json.dumps({**result.agreement, "prior_outside_fraction": result.prior.outside_fraction}))


def cmd_import_pyreflect(args) -> None:
    """Server-side import of pyreflect CNN weights (~620 MB: over the browser upload limits)."""
    from reflect_core.accounts.access import User
    from reflect_core.ml.model_store import MAX_WEIGHTS_BYTES
    from reflect_core.store.user_files import add_pyreflect_model
    from reflect_core.uploads import validate_upload
    from reflect_core.uploads.pickled_stats import stats_from_pickled_npy

    stats_name, stats_bytes = Path(args.stats).name, read_input_file(args.stats, 10_000_000)
    if Path(args.stats).suffix.lower() == ".npy":  # pyreflect's pickle: read in a separate, limited process
        stats = stats_from_pickled_npy(stats_name, stats_bytes)
    else:
        stats = validate_upload(stats_name, stats_bytes, "pyreflect_stats", 10_000_000).content
    weights = read_input_file(args.weights, MAX_WEIGHTS_BYTES)
    record = add_pyreflect_model(User(args.user), Path(args.weights).name, weights, stats)
    print(f"imported as '{record['name']}' (record {record['id']}) for user {args.user}")


def cmd_hash_password(args) -> None:
    import getpass

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Password: ")
    if len(password) < 8:
        raise CliError("use a password of at least 8 characters")
    print(hash_password(password))


def cmd_doctor(args) -> int:
    checks = run_checks(*read_settings())
    print(as_json(checks) if args.json else as_text(checks))
    return 1 if broken(checks) else 0


def _write_npy(path: str, array) -> None:
    try:
        np.save(path, array)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reflect_core",
        description="Neutron reflectometry from the command line. Units: Q in 1/Å, "
        "SLD in 1e-6/Å², thickness, roughness and z in Å. Layers substrate first.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="reflectivity of a film → CSV with columns Q,R")
    sim.add_argument("film", help="film JSON (own format or a pyreflect-interface export)")
    sim.add_argument("--qmin", type=float, default=PYREFLECT_QMIN,
                     help="smallest Q, 1/Å (default: pyreflect's, 0.0081014)")
    sim.add_argument("--qmax", type=float, default=PYREFLECT_QMAX,
                     help="largest Q, 1/Å (default: pyreflect's, 0.19757)")
    sim.add_argument("--nq", type=int, default=PYREFLECT_NQ, help="number of Q points (default 308)")
    sim.add_argument("--spacing", choices=("log", "linear"), default="log", help="Q spacing (default log)")
    sim.add_argument(
        "--q-file",
        help="take Q from a text file: 1 column Q; 2-3 columns Q,R[,dR]; 4 columns Q,R,dR,dQ "
        "(dQ = per-point FWHM in 1/Å, used unless --dq is given)",
    )
    sim.add_argument(
        "--dq", type=float, default=None, help=f"resolution FWHM as a fraction of Q (default {PYREFLECT_DQ})"
    )
    sim.add_argument("--bkg", type=float, default=0.0, help="constant background added to R (default 0)")
    sim.add_argument("--scale", type=float, default=1.0, help="scale factor on R (default 1)")
    sim.add_argument("--out", required=True, help="output CSV path")
    sim.set_defaults(run=cmd_simulate)

    prof = sub.add_parser("profile", help="SLD profile of a film → CSV with columns z,sld")
    prof.add_argument("film", help="film JSON")
    prof.add_argument("--npoints", type=int, default=DEFAULT_PROFILE_POINTS, help="number of z points (default 900)")
    prof.add_argument("--out", required=True, help="output CSV path")
    prof.set_defaults(run=cmd_profile)

    gen = sub.add_parser("generate", help="synthetic training set → nr_train.npy, sld_train.npy (pyreflect format)")
    gen.add_argument("config", help="JSON: film, bounds [{i, par, bounds}], n, seed, qmin, qmax, nq, dq, "
                                    "n_profile, noise, exact (see README)")
    gen.add_argument("--out", required=True, help="output directory")
    gen.set_defaults(run=cmd_generate)

    train = sub.add_parser("train", help="train an NR→SLD model → MODEL_DIR (model.pt + model.json)")
    train.add_argument("config", help="job spec JSON: {dataset, model, training} (see README)")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument("--data", help="use arrays from this directory (from `generate`) instead of generating")
    train.set_defaults(run=cmd_train)

    pred = sub.add_parser("predict", help="SLD profiles for NR curves with a saved model")
    pred.add_argument("model_dir", help="a model directory written by `train` or the app")
    pred.add_argument("--nr", required=True, help="curves .npy, shape (N, 2, L) with rows [Q, R]")
    pred.add_argument("--out", required=True, help="output .npy, shape (N, 2, M) with rows [z, SLD]")
    pred.add_argument("--resample", action="store_true", help="interpolate curves on another Q grid onto the model's")
    pred.add_argument("--band", help="also write the uncertainty band: .npy of shape (N, 5, M) with rows "
                                     "[z, lo68, hi68, lo95, hi95] (10⁻⁶ Å⁻²)")
    pred.set_defaults(run=cmd_predict)

    ana = sub.add_parser("analyse", help="profile of a measured curve with a saved model, and how well the NR "
                                          "recomputed from it matches the data (JSON on stdout)")
    ana.add_argument("model_dir", help="a model directory written by `train` or the app")
    ana.add_argument("curve", help="measured curve: Q, R[, dR[, dQ FWHM]] in 1/Å (text, # comments)")
    ana.add_argument("--out", required=True, help="predicted profile CSV, columns z,sld")
    ana.add_argument("--recomputed", help="also write the recomputed curve CSV (columns Q,R) at the data's Q, "
                                          "smeared with its dQ column or else the model's dQ/Q")
    ana.set_defaults(run=cmd_analyse)

    imp = sub.add_parser("import-pyreflect", help="add pyreflect CNN weights + stats to a user's models "
                                                  "(for weight files over the upload limit)")
    imp.add_argument("weights", help="pyreflect CNN state dict (.pth)")
    imp.add_argument("stats", help="its normalisation stats: .npy as pyreflect saves it (read in a separate, "
                                   "resource-limited process), .json or .npz")
    imp.add_argument("--user", default="local", help="owner of the imported model (default: local)")
    imp.set_defaults(run=cmd_import_pyreflect)

    add_fit_parser(sub)

    hasher = sub.add_parser("hash-password", help="print a bcrypt hash for the login YAML file")
    hasher.add_argument("--stdin", action="store_true", help="read the password from standard input")
    hasher.set_defaults(run=cmd_hash_password)
    doctor = sub.add_parser(
        "doctor", help="what this installation has and lacks, and what to do about each",
        description="Checks Python, the torch build, the numerical kernels, pyreflect, the settings "
        "(environment, REFLECT_SECRETS_FILE or .streamlit/secrets.toml), login, Modal, the Hub, the state "
        "mirror, the data directory and its free disk; never contacts the network or prints a token. "
        "Exit status 0 when nothing essential is broken, 1 when an essential check is in error "
        f"({', '.join(ESSENTIAL)}), 2 for bad usage.")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(run=cmd_doctor)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except (ReflectError, ValueError) as exc:  # every user error of the library, and a bad number
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the library did not word itself (unwritable folder, full disk)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return status or 0  # a command may return its own status (doctor: 1 when something essential is broken)
