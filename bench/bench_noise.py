"""Training with a measurement's noise: does it help on noisy curves, and what does it cost on clean ones?

Run from the repository root:  .venv/bin/python bench/bench_noise.py [--n 5000] [--epochs 25]
                                    [--curve ../shared/data/REFL_212592_reduced.txt]

Two networks with the same prior (the default film), architecture, schedule and seeds, on the measured
curve's Q grid and resolution as "Match a measured curve" sets them: one trained on noise-free curves,
one with the counting noise and background ranges the same button takes from the file (N₀ and the
high-Q floor over the 10th–90th percentile of its points). Both are then tested on the same 1,000
films, never seen in training, made three ways: noise-free, with the file's noise ranges, and with
those plus a ±5 % scale error (a misnormalised curve, which neither network saw). The score is the
SLD RMSE (10⁻⁶ Å⁻²) against the true profiles, and its ratio to the mean-profile baseline. Results in
bench/results/noise.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from results_file import write_results  # noqa: E402

from reflect_core.base.job_protocol import PrintReporter  # noqa: E402
from reflect_core.data.generate import NR_FILE, SLD_FILE, dataset_from_dict, generate  # noqa: E402
from reflect_core.formats.arrays import load_training_arrays  # noqa: E402
from reflect_core.formats.curves import matching_grid, noise_level  # noqa: E402
from reflect_core.ml.pipeline import run_job  # noqa: E402
from reflect_core.ml.predict import predict  # noqa: E402
from reflect_core.ml.spec import TrainSpec  # noqa: E402
from reflect_core.uploads.curves import measured_curve  # noqa: E402

DEFAULT_CURVE = REPO.parent / "shared" / "data" / "REFL_212592_reduced.txt"
TEST_SEED, TEST_N = 987_654, 1000


def file_settings(path: Path) -> tuple[dict, dict]:
    """The Q grid and the noise ranges 'Match a measured curve' takes from a file."""
    curve, _ = measured_curve(path.name, path.read_bytes(), path.suffix.lower())
    grid, level = matching_grid(curve), noise_level(curve)
    q = {"qmin": grid["qmin"], "qmax": grid["qmax"], "nq": grid["nq"], "dq": grid["dq"]}
    noise = {"counts_at_unity": list(level["counts_spread"]), "background": list(level["background_spread"])}
    return q, noise


def test_set(q: dict, noise: dict | None, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(NR (N, 2, L), SLD (N, 2, M)) of TEST_N films from a seed no training set uses."""
    config = dataset_from_dict({"n": TEST_N, "seed": TEST_SEED, **q, "noise": noise})
    return load_training_arrays(*(generate(config, folder) / name for name in (NR_FILE, SLD_FILE)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training curves")
    parser.add_argument("--epochs", type=int, default=25)  # the Train page's default
    parser.add_argument("--curve", type=Path, default=DEFAULT_CURVE, help="the measured curve whose noise to use")
    args = parser.parse_args(argv)
    q, noise = file_settings(args.curve)
    print(f"{args.curve.name}: Q {q['qmin']:.4g}–{q['qmax']:.4g} Å⁻¹, {q['nq']} points, dQ/Q {q['dq']}; "
          f"N₀ {noise['counts_at_unity'][0]:.3g}–{noise['counts_at_unity'][1]:.3g}, "
          f"background {noise['background'][0]:.3g}–{noise['background'][1]:.3g}", flush=True)
    tests = {"noise-free": None, "file's noise": noise, "file's noise, scale ±5 %": {**noise, "scale": [0.95, 1.05]}}
    with tempfile.TemporaryDirectory(prefix="bench_noise_") as tmp:
        tmp = Path(tmp)
        models, train_s = {}, {}
        for name, train_noise in (("trained noise-free", None), ("trained with the file's noise", noise)):
            spec = TrainSpec.parse({"kind": "train", "dataset": {"n": args.n, **q, "noise": train_noise},
                                    "training": {"epochs": args.epochs}})
            t0 = time.perf_counter()
            run_job(spec, tmp / name, PrintReporter())
            train_s[name] = time.perf_counter() - t0
            models[name] = tmp / name / "model"
        sets = {label: test_set(q, test_noise, tmp / f"test {k}")
                for k, (label, test_noise) in enumerate(tests.items())}
        truth = sets["noise-free"][1][:, 1].astype(float)
        assert all(np.array_equal(s[1], sets["noise-free"][1]) for s in sets.values())  # the same films
        baseline = float(np.sqrt(np.mean((truth - truth.mean(axis=0)) ** 2)))
        rmse = {model: {label: float(np.sqrt(np.mean((predict(folder, nr)[:, 1] - truth) ** 2)))
                        for label, (nr, _) in sets.items()} for model, folder in models.items()}
    width = max(map(len, tests))
    print(f"\nSLD RMSE (10⁻⁶ Å⁻²) on {TEST_N} held-out films; mean-profile baseline {baseline:.3f}")
    print(f"{'tested on':<{width}}  " + "  ".join(f"{m:>30}" for m in rmse))
    for label in tests:
        print(f"{label:<{width}}  " + "  ".join(f"{rmse[m][label]:>9.4f} ({100 * rmse[m][label] / baseline:4.1f} %"
                                                f" of baseline)" for m in rmse))
    results = {"curve": args.curve.name, "q": q, "noise": noise, "n": args.n, "epochs": args.epochs,
               "test_n": TEST_N, "baseline_rmse": baseline, "rmse": rmse, "train_s": train_s,
               "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    write_results("noise", results)
    return results


if __name__ == "__main__":
    main()
