"""Train the built-in model that ships with the app (reflect_core/ml/pretrained/default_prior/).

Run from the repository root:  .venv/bin/python scripts/train_pretrained.py

It runs the same code path as the Train page and ``python -m reflect_core train``: the recipe
below is parsed by ``TrainSpec.parse``, the curves come from ``data.generate.generate`` on the
default prior, and ``ml.pipeline.train_on_arrays`` trains, evaluates on the held-out test split
(next to the mean-profile baseline) and saves the model. This script only adds what makes the
folder a built-in model: ``model.json``'s ``source`` (kind "built-in", the SHA-256 of the
weights, how and where it was made) and ``README.md``, the model card.

Deterministic: every seed is fixed (dataset, split, initial weights, shuffles, dropout), it
runs on the CPU with a fixed number of torch threads, and CPU training is bit-identical run to
run (reflect_core.ml.training), so a second run gives the same weights (the same SHA-256) and
the same metrics on the same machine and library versions (verified: two full runs wrote
byte-identical ``model.pt`` files). Another thread count, CPU or torch build changes the last bits
of floating point (a run with 1 thread instead of 2 gives other weights), so it trains a model
of the same quality, not the same bytes.

The recipe was chosen by measurement to train in about five to six minutes on two CPU cores: the
default network on 40,000 curves for 16 epochs takes ~600 s of CPU time (~300–350 s of wall time
on two cores) for a test SLD RMSE of 0.087 (10⁻⁶ Å⁻²), against 0.099 for 20,000 curves × 20 epochs
(184 s) and 0.13 for 5,000 × 25 (~60 s). At the same compute, 30,000 curves × 20 epochs did as well
(0.0874 against 0.0873 on the same 4,000 fresh curves); the validation error still falls at the
last epochs, so a longer run would do better.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

# Threads that wait for work sleep instead of spinning: on a shared machine a spinning thread burns its
# share of the CPU while its partner is descheduled (here, under a load average of 10 on 2 cores, one epoch
# used over 4× its idle CPU time spinning). Set before torch starts OpenMP; it changes no result (a tiny
# run gives the same SHA-256 with and without).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from reflect_core.base.job_protocol import PrintReporter  # noqa: E402
from reflect_core.base.storage import sha256_file  # noqa: E402
from reflect_core.data.generate import NR_FILE, SLD_FILE, generate  # noqa: E402
from reflect_core.formats.arrays import load_training_arrays  # noqa: E402
from reflect_core.ml.builtin import CARD, KIND, PRETRAINED_DIR  # noqa: E402
from reflect_core.ml.meta import META, ModelMeta  # noqa: E402
from reflect_core.ml.model_store import WEIGHTS  # noqa: E402
from reflect_core.ml.pipeline import train_on_arrays  # noqa: E402
from reflect_core.ml.spec import TrainSpec  # noqa: E402
from reflect_core.ml.training import CHECKPOINT  # noqa: E402

NAME = "default_prior"
TITLE = "Default prior · compact CNN"
THREADS = 2
# The default prior (pyreflect's 5-layer film and its 19 bounds), on pyreflect's Q grid (308 points,
# 0.0081–0.1975 Å⁻¹) at its resolution (dQ/Q 2.95 % FWHM), 900-point profiles: the dataset defaults.
RECIPE = {
    "kind": "train",
    "dataset": {"n": 40000, "seed": 0},
    "model": {"arch": "compact_cnn", "layers": 4, "channels": 32, "hidden": 256, "dropout": 0.05},
    "training": {"epochs": 16, "batch_size": 64, "lr": 0.001, "weight_decay": 1e-05, "optimizer": "adamw",
                 "val_fraction": 0.1, "test_fraction": 0.1, "seed": 0, "patience": 0, "checkpoint_every": 5},
}


def recipe(n: int | None = None, epochs: int | None = None, seed: int | None = None) -> dict:
    """RECIPE, with the dataset size, the epochs or both seeds changed (tests use a tiny one)."""
    raw = json.loads(json.dumps(RECIPE))
    if n is not None:
        raw["dataset"]["n"] = n
    if epochs is not None:
        raw["training"]["epochs"] = epochs
    if seed is not None:
        raw["dataset"]["seed"] = raw["training"]["seed"] = seed
    return raw


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def command_line(raw: dict, threads: int) -> str:
    """The command that reproduces a model trained from ``raw``."""
    args = []
    for flag, value, default in (("--n", raw["dataset"]["n"], RECIPE["dataset"]["n"]),
                                 ("--epochs", raw["training"]["epochs"], RECIPE["training"]["epochs"]),
                                 ("--seed", raw["training"]["seed"], RECIPE["training"]["seed"]),
                                 ("--threads", threads, THREADS)):
        if value != default:
            args.append(f"{flag} {value}")
    return " ".join([".venv/bin/python scripts/train_pretrained.py", *args])


def train(raw: dict, out_dir: Path, threads: int = THREADS, reporter=None) -> dict:
    """Train from recipe ``raw`` and write the built-in model folder ``out_dir`` (replaced whole).
    Returns what happened: times, the weights' SHA-256 and the test metrics."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(raw, Path(out_dir), threads, reporter or PrintReporter())
    finally:
        torch.set_num_threads(threads_before)


def _train(raw: dict, out_dir: Path, threads: int, reporter) -> dict:
    spec = TrainSpec.parse(raw)  # the Train page's and the command line's validation
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="train_pretrained_") as tmp:
        work = Path(tmp)
        t0, cpu0, load0 = time.monotonic(), time.process_time(), os.getloadavg()[0]
        folder = generate(spec.dataset, work / "data", reporter)
        generation_s = time.monotonic() - t0
        nr, sld = load_training_arrays(folder / NR_FILE, folder / SLD_FILE)
        summary = train_on_arrays(nr, sld, spec, work / "model", reporter, checkpoint=work / CHECKPOINT,
                                  device="cpu")
        total_s, cpu_s = time.monotonic() - t0, time.process_time() - cpu0
        model_dir = work / "model"
        digest = sha256_file(model_dir / WEIGHTS)
        meta = ModelMeta.read(model_dir)
        run = {"generation_s": round(generation_s, 1), "training_s": summary["training_s"],
               "total_s": round(total_s, 1), "cpu_s": round(cpu_s, 1), "epochs_run": summary["epochs_run"],
               "load_average": f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
               "date": datetime.date.today().isoformat(), "machine": machine(), "threads": threads,
               "command": command_line(raw, threads)}
        meta = replace(meta, data_folder=None, source={
            "kind": KIND, "name": out_dir.name, "title": TITLE, "weights_sha256": digest,
            "script": "scripts/train_pretrained.py", **run})
        meta.write(model_dir)
        (model_dir / CARD).write_text(model_card(meta), encoding="utf-8")
        staged = out_dir.with_name(f".{out_dir.name}.new")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        for name in (META, WEIGHTS, CARD):
            shutil.copyfile(model_dir / name, staged / name)
    shutil.rmtree(out_dir, ignore_errors=True)
    staged.replace(out_dir)
    return {**run, "weights_sha256": digest, "parameters": meta.parameters, "best_epoch": meta.best_epoch,
            "weights_bytes": (out_dir / WEIGHTS).stat().st_size, "metrics": meta.metrics}


def _row(label: str, scores: dict) -> str:
    return (f"| {label} | {scores['rmse']:.4f} | {scores['mae']:.4f} | {scores['r2']:.3f} | "
            f"{scores['nr_decades_median']:.3f} |")


def _band_section(metrics: dict) -> str:
    """The card's paragraph on the uncertainty band drawn on every prediction (none: an empty line)."""
    band = metrics.get("band")
    if not band:
        return ""
    widths = {level: np.asarray(band[f"halfwidth_{level}"]) for level in (68, 95)}
    return f"""
## Uncertainty band

Every predicted profile carries a band (split conformal, per depth, calibrated on the
{band['n_calibration']:,} validation curves; `scripts/calibrate_band.py`). On the test curves the 68 % band
covers {100 * band['test_coverage_68']:.1f} % of the true profiles' points and the 95 % band
{100 * band['test_coverage_95']:.1f} %. Half-widths: 68 % median {np.median(widths[68]):.3f}, largest
{widths[68].max():.3f}; 95 % median {np.median(widths[95]):.3f}, largest {widths[95].max():.3f} (10⁻⁶ Å⁻²).
It holds for curves like the training ones only: outside the prior (the Predict tab says when) it does not.
"""


def model_card(meta: ModelMeta) -> str:
    """The README.md of a built-in model, every number taken from its ``model.json``."""
    source, m, d, t = meta.source, meta.metrics, meta.dataset, meta.training
    prior = meta.prior or {}
    layers = prior.get("film", {}).get("layers", [])
    q, z = meta.q, meta.z
    n_test = m["n_test"]
    n_val = round(d["n"] * t.val_fraction)
    sampler = d["sampler"].replace("_", " ")
    versions = ", ".join(f"{k} {v}" for k, v in meta.versions.items())
    bounds = "\n".join(f"| {b['i']} ({layers[b['i']]['name']}) | {b['par']} | {b['bounds'][0]:g} | {b['bounds'][1]:g} |"
                       for b in prior.get("bounds", []))
    film = "\n".join(f"| {i} | {layer['name']} | {layer['sld']:g} | {layer['thickness']:g} | {layer['roughness']:g} |"
                     for i, layer in enumerate(layers))
    return f"""# {source['title']}

A pretrained network that maps a neutron reflectivity curve R(Q) to an SLD depth profile, shipped
with the app so that a curve can be analysed at once, with no training. Built-in: read-only, offered
to every user, never deleted. Made by `{source['script']}`; every number below is from its
`model.json` (`metrics`, `source`).

**Trained on the default prior only.** Its curves are synthetic: pyreflect's 5-layer film on silicon
(below), each bounded parameter drawn within its bounds, no noise and no background, R normalised to 1
at total reflection. For a measured curve of another kind of film, with parameters outside these
bounds, or with a background or normalisation error, the profile it gives is a guess from outside
what it has seen: judge it by how well the curve recomputed from it matches the data (the χ² the
Predict tab shows), and train a model on your own prior for such samples.

## Network

- Architecture: `{meta.model.arch}`: {meta.model.layers} blocks of (Conv1d k=5, GELU, MaxPool 2), first
  width {meta.model.channels} channels (doubling, at most 4×), dense {meta.model.hidden}, dropout
  {meta.model.dropout}, output {z.size} SLD values.
- Parameters: {meta.parameters:,} (float32 weights, `model.pt`, SHA-256 `{source['weights_sha256']}`).
- Input: log10 R (floored at {meta.normalization.r_floor:g}) on its own Q grid, min-max normalised with the
  training split's statistics (`model.json` → `normalization`); curves on another grid are
  interpolated in log R onto it (Predict tab, `analyse`, `predict --resample`).

## Data

- Q grid: {q.size} log-spaced points, {q.min():.7g}–{q.max():.7g} Å⁻¹ (pyreflect's); resolution dQ/Q =
  {100 * meta.dq:.4g} % FWHM (Gaussian); beam from the {meta.beam_from}.
- Profile: {z.size} points, z = {z.min():.1f}–{z.max():.1f} Å (z = 0 at the substrate's top interface).
- Training data: {d['n']:,} curves (seed {d['seed']}, {sampler} sampling), split {d['n'] - n_val - n_test:,} train /
  {n_val:,} validation / {n_test:,} test (split seed {t.seed}); the test curves never touch training,
  normalisation or model selection.
- Training: {t.optimizer} (lr {t.lr:g}, weight decay {t.weight_decay:g}), batch {t.batch_size}, {t.epochs}
  epochs (best validation epoch {meta.best_epoch} kept), seed {t.seed}, on the CPU with {source['threads']}
  torch threads.

Default film (substrate first; SLD in 10⁻⁶ Å⁻², thickness and roughness in Å):

| # | layer | SLD | thickness | roughness |
| --- | --- | --- | --- | --- |
{film}

Bounds (the prior):

| layer | parameter | low | high |
| --- | --- | --- | --- |
{bounds}

## Test metrics ({n_test:,} held-out curves)

SLD in 10⁻⁶ Å⁻² on the common z grid. Baseline: the mean training profile predicted for every curve.
NR: the median over {m['nr_recomputed_curves']} curves of the mean |Δ log10 R| between the curve recomputed
from the profile and the input curve.

| | SLD RMSE | SLD MAE | R² | NR median decades |
| --- | --- | --- | --- | --- |
{_row("model", m["model"])}
{_row("baseline (mean profile)", m["baseline"])}
{_band_section(m)}
## Use

In the app: Models → Predict, with a measured curve that covers {q.min():.4g}–{q.max():.4g} Å⁻¹ (to
within two resolution widths at either end; any Q grid, interpolated in log R onto the model's). From
the command line, with this folder as the model directory:

```
python -m reflect_core analyse reflect_core/ml/pretrained/{source['name']} CURVE.txt --out profile.csv
python -m reflect_core predict reflect_core/ml/pretrained/{source['name']} --nr curves.npy --out sld.npy
```

## Reproduce

```
{source['command']}
```

Trained {source['date']} on {source['machine']}: data generation {source['generation_s']} s, training
{source['training_s']} s, {source['total_s']} s in all (wall time; {source['cpu_s']} s of CPU time; the
machine's 1-minute load average {source['load_average']}). Versions: {versions}.
The run is deterministic (fixed seeds, CPU, fixed thread count): running the command again on the same
machine and versions gives the same weights (the SHA-256 above) and the same metrics.
"""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PRETRAINED_DIR / NAME), help="model folder to write (replaced)")
    parser.add_argument("--n", type=int, default=None, help=f"curves (default {RECIPE['dataset']['n']})")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {RECIPE['training']['epochs']})")
    parser.add_argument("--seed", type=int, default=None, help="dataset and training seed (default 0)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch CPU threads (default {THREADS})")
    args = parser.parse_args(argv)
    result = train(recipe(args.n, args.epochs, args.seed), Path(args.out), args.threads)
    m = result["metrics"]
    print(json.dumps({k: v for k, v in result.items() if k != "metrics"}, indent=1))
    print(f"test SLD RMSE {m['model']['rmse']:.4f} (baseline {m['baseline']['rmse']:.4f}); "
          f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
