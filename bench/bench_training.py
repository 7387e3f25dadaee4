"""Time to a useful model: from pressing Train to a network that halves the baseline error.

Run from the repository root:  .venv/bin/python bench/bench_training.py [--recipe quick|standard|gpu]

"Useful" means a validation SLD RMSE at most half that of the mean-profile
baseline (the mean training profile predicted for every curve). The job is the
app's default one (the Train page's defaults on the default prior), run through
``pipeline.run_job`` as the worker runs it: data generation, preprocessing,
training with early stopping, test evaluation and saving are all timed. A
reporter stamps the wall time of each epoch; the validation RMSE per epoch
(10⁻⁶ Å⁻²) comes from the saved model's history. Target on this machine: a
useful model within 5 minutes. Results go to bench/results/training.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

t_import = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402
from results_file import write_results  # noqa: E402

from reflect_core.data.generate import SLD_FILE  # noqa: E402
from reflect_core.ml.model_store import META, WEIGHTS  # noqa: E402
from reflect_core.ml.pipeline import run_job  # noqa: E402
from reflect_core.ml.recipes import recipe  # noqa: E402
from reflect_core.ml.spec import TrainSpec  # noqa: E402
from reflect_core.ml.training import split_indices  # noqa: E402

IMPORT_S = time.perf_counter() - t_import
TARGET_MIN = 5.0
# The Train page's defaults (app_pages/train.py) on the default prior; every other
# setting is the code default, which the page's widgets also start at.
DEFAULT_SPEC = {"kind": "train", "dataset": {"n": 5000}}


class StampingReporter:
    """Records the wall time (s since Train) of each phase change and each epoch."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.phases: dict[str, float] = {}
        self.epochs: list[dict] = []
        self.logs: list[str] = []

    def _now(self) -> float:
        return time.perf_counter() - self.t0

    def phase(self, name: str, done: int = 0, total: int = 0) -> None:
        if name not in self.phases:
            self.phases[name] = self._now()
            print(f"[{self._now():7.1f} s] {name}", flush=True)

    def log(self, message: str) -> None:
        self.logs.append(message)
        print(f"[{self._now():7.1f} s] {message}", flush=True)

    def epoch(self, epoch: int, total: int, train_loss: float, val_loss: float) -> None:
        self.epochs.append({"epoch": epoch, "wall_s": self._now(), "train_loss": train_loss, "val_loss": val_loss})
        print(f"[{self._now():7.1f} s] epoch {epoch}/{total}: train {train_loss:.4g}, val {val_loss:.4g}", flush=True)


def val_baseline_rmse(run_dir: Path, spec) -> float:
    """RMSE (10⁻⁶ Å⁻²) on the validation split of the mean training profile."""
    sld = np.load(run_dir / "data" / SLD_FILE, mmap_mode="r")[:, 1]
    train, val, _ = split_indices(len(sld), spec.training)
    mean = np.asarray(sld[train], dtype=np.float64).mean(axis=0)
    return float(np.sqrt(np.mean((np.asarray(sld[val], dtype=np.float64) - mean) ** 2)))


def print_curve(curve: list[dict], half: float, baseline: float) -> None:
    """RMSE against minutes, with the half-baseline line, as text."""
    top = max(max(c["val_rmse"] for c in curve), baseline)
    width = 50
    col = lambda v: int(round(width * v / top))  # noqa: E731
    print(f"   {'min':>6} {'ep':>3} {'val RMSE':>9}  0{' ' * (width - 1)}{top:.3f}")
    for c in curve:
        bar = ["#"] * col(c["val_rmse"]) + [" "] * (width - col(c["val_rmse"]))
        bar[min(col(half), width - 1)] = "|"
        print(f"   {c['wall_s'] / 60:6.2f} {c['epoch']:>3} {c['val_rmse']:9.4f}  {''.join(bar)}")
    print(f"   ('|' = half the baseline, {half:.4f}; baseline {baseline:.4f})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=str, default=None, help="a JSON spec instead of the app defaults")
    parser.add_argument("--recipe", choices=("quick", "standard", "gpu"), default=None,
                        help="a named recipe (examples/recipes/NAME.json) instead of the app defaults")
    parser.add_argument("--keep", type=str, default=None, help="keep the run directory here")
    args = parser.parse_args(argv)
    raw_spec = json.loads(args.spec) if args.spec else recipe(args.recipe) if args.recipe else DEFAULT_SPEC
    spec = TrainSpec.parse(raw_spec)
    shown = spec.to_dict()
    shown["dataset"] = {k: v for k, v in shown["dataset"].items() if k != "prior"}
    print(f"spec: {json.dumps(raw_spec)} -> validated (prior: default 8-layer film, 19 bounds):")
    for part in ("dataset", "model", "training"):
        print(f"   {part}: {json.dumps(shown[part])}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} cores; "
          f"import of torch + pipeline {IMPORT_S:.1f} s (not counted)", flush=True)

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        run_dir = Path(args.keep) if args.keep else Path(tmp) / "run"
        t0 = time.perf_counter()
        reporter = StampingReporter(t0)
        summary = run_job(spec, run_dir, reporter)
        total_s = time.perf_counter() - t0
        meta = json.loads((run_dir / "model" / META).read_text())
        weights_bytes = (run_dir / "model" / WEIGHTS).stat().st_size
        baseline = val_baseline_rmse(run_dir, spec)

    history = meta["history"]
    curve = [{**e, "val_rmse": history["val_rmse"][k], "train_time_s": history["time"][k]}
             for k, e in enumerate(reporter.epochs)]
    half = baseline / 2
    crossed = next((c for c in curve if c["val_rmse"] <= half), None)
    metrics = meta["metrics"]  # model.json is the one record of a run's metrics
    params = meta["parameters"]
    res = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "node": platform.node(),
                    "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "spec_raw": raw_spec, "spec": shown, "import_s": IMPORT_S,
        "phases_s": reporter.phases, "summary": summary, "total_wall_s": total_s,
        "val_baseline_rmse": baseline, "half_baseline": half, "curve": curve,
        "useful_at": ({"epoch": crossed["epoch"], "wall_s": crossed["wall_s"], "minutes": crossed["wall_s"] / 60}
                      if crossed else None),
        "target_min": TARGET_MIN,
        "target_ok": bool(crossed and crossed["wall_s"] / 60 <= TARGET_MIN),
        "model_parameters": params, "model_mb_fp32": params * 4 / 1e6, "weights_file_mb": weights_bytes / 1e6,
    }

    print(f"\n== time to a useful model: default prior, {spec.dataset.n:,} curves, {spec.model.arch}, "
          f"{os.cpu_count()} cores ==")
    print("phases (s since Train): " + ", ".join(f"{k} {v:.1f}" for k, v in reporter.phases.items()))
    print(f"generation {summary['generation_s']:.1f} s; training {summary['training_s']:.1f} s for "
          f"{summary['epochs_run']} epochs (best epoch {meta['best_epoch']}); total {total_s:.1f} s "
          f"({total_s / 60:.2f} min)")
    print(f"learning curve, validation SLD RMSE (1e-6 A^-2) vs minutes since Train; mean-profile baseline on the "
          f"validation split {baseline:.4f}:")
    print_curve(curve, half, baseline)
    if crossed:
        print(f"useful (val RMSE <= half baseline) at {crossed['wall_s'] / 60:.2f} min (epoch {crossed['epoch']}): "
              f"target <= {TARGET_MIN:g} min -> {'OK' if res['target_ok'] else 'MISSED'}")
    else:
        print(f"never reached half the baseline: target <= {TARGET_MIN:g} min -> MISSED")
    m, b = metrics["model"], metrics["baseline"]
    print(f"test ({metrics['n_test']} curves): SLD RMSE model {m['rmse']:.4f} vs baseline {b['rmse']:.4f} "
          f"(ratio {m['rmse'] / b['rmse']:.2f}); MAE {m['mae']:.4f} vs {b['mae']:.4f}; R^2 {m['r2']:.3f}; "
          f"NR from predicted profile, median |dlog10 R| {m['nr_decades_median']:.3f} vs baseline "
          f"{b['nr_decades_median']:.3f} decades")
    band = metrics.get("band")
    if band:  # calibrated on the validation split, measured on the test split (ml.uncertainty)
        res["band_coverage"] = {level: band[f"test_coverage_{level}"] for level in (68, 95)}
        print(f"uncertainty band on the test split: the 68 % band covers {100 * band['test_coverage_68']:.1f} %, "
              f"the 95 % band {100 * band['test_coverage_95']:.1f} % of the true profiles' points")
    print(f"model: {params:,} parameters = {res['model_mb_fp32']:.2f} MB fp32 (weights file "
          f"{res['weights_file_mb']:.2f} MB)")
    print(f"load average (1, 5, 15 min) at start {', '.join(f'{x:.1f}' for x in load_start)}, at end "
          f"{', '.join(f'{x:.1f}' for x in res['machine']['loadavg_end'])} (shared machine)")
    write_results("training", res)
    return res


if __name__ == "__main__":
    main()
