"""Speed and quality of the physics fit (reflect_core.analysis.fit.run_fit), against plain refnx.

Run from the repository root:  .venv/bin/python bench/bench_fit.py [--repeats K] [--curves N] [--skip PART ...]

1. least squares: a 6-layer film (the default prior's film: SiOx + 5 layers; 18 layer values +
   scale + background free) fitted to a 400-point synthetic curve with a dQ column, from a start
   2-5 % off: run_fit (search "local") against refnx's CurveFitter("least_squares") on the same
   refnx model built by hand. Target ≤ 5 s. Medians of K interleaved repeats (shared machine).
2. MCMC: 20,000 posterior samples (steps × walkers log-posterior evaluations) of that fit. Target ≤ 2 min.
3. network start against default start: N held-out curves from the default training prior
   (noisy, with a dQ column); each fitted from the network's start (analysis.start.start_from_model)
   and from the prior's own film and bounds, with search "local" and "auto". Median fit time and
   median final χ²/N of each. The network is the shipped one (reflect_core/ml/pretrained) when present, else one trained
   here on the default prior (its size and time are reported).
4. the shipped real-data configurations (examples/fits/) with the global search: time and χ²/N.
Results go to bench/results/fit.json.
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

import numpy as np  # noqa: E402
from results_file import write_results  # noqa: E402

from reflect_core.analysis.fit import FitConfig, run_fit  # noqa: E402
from reflect_core.formats.curves import Curve, read_curve  # noqa: E402
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM  # noqa: E402
from reflect_core.physics.simulate import CurveSettings, film_reflectivity  # noqa: E402

LS_TARGET_S, MCMC_TARGET_S, MCMC_SAMPLES = 5.0, 120.0, 20_000
N_Q, DQ_FRACTION, REL_ERROR, BACKGROUND = 400, 0.03, 0.05, 1e-7
TRAIN_CURVES, TRAIN_EPOCHS = 4000, 8  # a quick network when none is shipped (minutes on 2 shared cores)
NETWORK_DIR = REPO / "bench" / "results" / "fit_network"
SHARED = REPO.parent / "shared" / "data" / "REFL_212592_reduced.txt"
REFNX_TESTS = Path(__import__("refnx").__file__).parent / "analysis" / "tests"
REAL = {  # name: (config in examples/fits, data files)
    "REFL_212592": ("refl_212592.json", [SHARED]),
    "refnx c_PLP0011859": ("refnx_plp0011859.json", [REFNX_TESTS / "c_PLP0011859_q.txt"]),
    "refnx e361": ("refnx_e361.json", [REFNX_TESTS / "e361r.txt"]),
    "refnx e361+e365+e366": ("refnx_e361_e365_e366.json", [REFNX_TESTS / f"e36{k}r.txt" for k in (1, 5, 6)]),
}


def noisy_curve(stack: np.ndarray, q: np.ndarray, rng) -> Curve:
    """R of a film stack (substrate first) smeared with dQ = 3 % of Q, dR = 5 % R + 1e-9, R drawn with it."""
    from reflect_core.physics.film import Film, Layer

    film = Film(tuple(Layer(f"l{i}", *row) for i, row in enumerate(stack)))
    dq = DQ_FRACTION * q
    r = film_reflectivity(film, q, CurveSettings(dq=DQ_FRACTION, background=BACKGROUND), dq_abs=dq)
    dr = REL_ERROR * r + 1e-9
    return Curve(q, r + dr * rng.standard_normal(q.size), dr, dq)


def six_layer_problem(seed: int = 0):
    """(config dict, curve): the default film, every inner layer's sld/thickness/roughness free
    within ±30 % (± 1 for SLD), the start 2–5 % off the truth."""
    rng = np.random.default_rng(seed)
    truth = DEFAULT_FILM.as_array()
    q = np.geomspace(0.008, 0.2, N_Q)
    curve = noisy_curve(truth, q, rng)
    film = DEFAULT_FILM.to_dict()
    bounds = []
    for i in range(1, len(truth) - 1):
        layer = film["layers"][i]
        for par, (lo, hi) in {"sld": (layer["sld"] - 1, layer["sld"] + 1),
                              "thickness": (0.7 * layer["thickness"], 1.3 * layer["thickness"]),
                              "roughness": (0.0, 1.3 * layer["roughness"] + 5)}.items():
            layer[par] = float(np.clip(layer[par] * (1 + rng.choice([-1, 1]) * rng.uniform(0.02, 0.05)), lo, hi))
            bounds.append({"i": i, "par": par, "bounds": [lo, hi]})
    config = {"film": film, "bounds": bounds, "scale": {"value": 1.0, "bounds": [0.8, 1.2]},
              "background": {"value": 5e-7, "bounds": [0, 1e-5]}}
    return config, curve


def refnx_plain(config: dict, curve: Curve):
    """The same model in refnx, built by hand (beam from the ambient: slab of layer k takes its roughness)."""
    from refnx.analysis import CurveFitter, Objective
    from refnx.dataset import ReflectDataset
    from refnx.reflect import SLD, ReflectModel, Slab, Structure

    layers = config["film"]["layers"]
    varying = {(b["i"], b["par"]): b["bounds"] for b in config["bounds"]}
    slabs = []
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        sld = SLD(layer["sld"])
        slab = Slab(layer["thickness"], sld, layer["roughness"] if i < len(layers) - 1 else 0)
        for par, p in (("sld", sld.real), ("thickness", slab.thick), ("roughness", slab.rough)):
            if (i, par) in varying:
                p.setp(vary=True, bounds=tuple(varying[(i, par)]))
        slabs.append(slab)
    model = ReflectModel(Structure(slabs), scale=config["scale"]["value"], bkg=config["background"]["value"],
                         dq_type="pointwise")
    model.scale.setp(vary=True, bounds=tuple(config["scale"]["bounds"]))
    model.bkg.setp(vary=True, bounds=tuple(config["background"]["bounds"]))
    objective = Objective(model, ReflectDataset((curve.q, curve.r, curve.dr, curve.dq)))
    return objective, CurveFitter(objective)


def bench_least_squares(repeats: int) -> dict:
    config, curve = six_layer_problem()
    parsed = FitConfig.parse(config, 1)
    times = {"ours": [], "refnx": []}
    chi2 = {}
    for _ in range(repeats):  # interleaved, so that load spikes hit both alike
        t = time.perf_counter()
        result = run_fit(parsed, [curve], search="local")
        times["ours"].append(time.perf_counter() - t)
        chi2["ours"] = result.chi2_reduced
        objective, fitter = refnx_plain(config, curve)
        t = time.perf_counter()
        fitter.fit("least_squares")
        times["refnx"].append(time.perf_counter() - t)
        chi2["refnx"] = objective.chisqr() / (curve.q.size - len(objective.varying_parameters()))
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {"n_points": N_Q, "n_free": result.n_free, "median_s": median, "chi2_reduced": chi2,
            "ours_includes": "covariance (2 model calls per free parameter) and the result's curves and profile",
            "ours/refnx": median["ours"] / median["refnx"], "target_s": LS_TARGET_S,
            "ok": median["ours"] <= LS_TARGET_S, "seconds_ours": result.seconds}


def bench_mcmc() -> dict:
    from reflect_core.analysis.fit.budget import walkers_for

    config, curve = six_layer_problem()
    parsed = FitConfig.parse(config, 1)
    n_free = len(parsed.bounds) + 2
    steps = -(-MCMC_SAMPLES // walkers_for(n_free))
    t = time.perf_counter()
    result = run_fit(parsed, [curve], search="local", mcmc_steps=steps, seed=1)
    total = time.perf_counter() - t
    mcmc = result.mcmc
    return {"steps": steps, "walkers": mcmc["walkers"], "samples": steps * mcmc["walkers"],
            "kept": mcmc["samples"], "burn": mcmc["burn"], "thin": mcmc["thin"],
            "mcmc_s": result.seconds.get("mcmc"), "total_s": total, "target_s": MCMC_TARGET_S,
            "ok": result.seconds.get("mcmc", total) <= MCMC_TARGET_S}


def network() -> tuple[Path, dict]:
    """A model directory on the default prior: the shipped one, else one trained here once and kept
    in bench/results/fit_network (git-ignored) for later runs."""
    from reflect_core.ml.builtin import builtin_models

    shipped = [m for m in builtin_models() if m.name == "default_prior" and m.error is None]
    if shipped:
        return shipped[0].model_dir, {"source": str(shipped[0].model_dir.relative_to(REPO))}
    from reflect_core.base.job_protocol import PrintReporter
    from reflect_core.data.generate import generate
    from reflect_core.ml.pipeline import train_on_arrays
    from reflect_core.ml.spec import TrainSpec

    about = {"source": "trained by this bench (bench/results/fit_network)", "curves": TRAIN_CURVES,
             "epochs": TRAIN_EPOCHS}
    if (NETWORK_DIR / "model" / "model.json").exists():
        return NETWORK_DIR / "model", {**about, **json.loads((NETWORK_DIR / "about.json").read_text())}
    spec = TrainSpec.parse({"dataset": {"n": TRAIN_CURVES, "seed": 11}, "training": {"epochs": TRAIN_EPOCHS}})
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(spec.dataset, Path(tmp), PrintReporter())
        train_on_arrays(np.load(data / "nr_train.npy"), np.load(data / "sld_train.npy"), spec, NETWORK_DIR / "model",
                        PrintReporter())
    about["train_s"] = time.perf_counter() - t
    (NETWORK_DIR / "about.json").write_text(json.dumps(about))
    return NETWORK_DIR / "model", about


def bench_network_start(n_curves: int) -> dict:
    from reflect_core.analysis.start import start_from_model
    from reflect_core.data.prior import prior_from_dict
    from reflect_core.ml.meta import ModelMeta

    model_dir, about = network()
    meta = ModelMeta.read(model_dir)
    q = np.asarray(meta.q, dtype=float)
    prior = prior_from_dict({"film": DEFAULT_FILM.to_dict(), "bounds": [dict(b) for b in DEFAULT_BOUNDS]})
    stacks = prior.sample(n_curves, seed=987654, sampler="uniform")  # held out: not the training seed
    rng = np.random.default_rng(5)
    varying = [dict(b) for b in DEFAULT_BOUNDS if b["bounds"][1] > b["bounds"][0]]  # the prior fixes some
    default = {"film": DEFAULT_FILM.to_dict(), "bounds": varying,
               "scale": {"value": 1.0, "bounds": [0.7, 1.3]}, "background": {"value": 1e-7, "bounds": [0, 1e-5]}}
    rows = {f"{start} start, {search}": [] for start in ("network", "default") for search in ("local", "auto")}
    for k, stack in enumerate(stacks):
        curve = noisy_curve(stack, q, rng)
        t = time.perf_counter()
        ml_config, _ = start_from_model(model_dir, curve)
        start_s = time.perf_counter() - t
        for start, raw in (("network", ml_config), ("default", default)):
            for search in ("local", "auto"):
                t = time.perf_counter()
                result = run_fit(FitConfig.parse(raw, 1), [curve], search=search, seed=k)
                seconds = time.perf_counter() - t + (start_s if start == "network" else 0.0)
                rows[f"{start} start, {search}"].append((seconds, result.chi2_reduced, result.search))
        print(f"  curve {k + 1}/{n_curves}: " + ", ".join(f"{name} χ²/N {v[-1][1]:.3g} in {v[-1][0]:.1f} s"
                                                         for name, v in rows.items()), flush=True)
    summary = {name: {"median_s": float(np.median([r[0] for r in v])), "median_chi2_reduced":
                      float(np.median([r[1] for r in v])), "global_searches": sum(r[2] != "least squares" for r in v)}
               for name, v in rows.items()}
    return {"network": about, "curves": n_curves, "n_q": int(q.size), "noise": f"dR = {REL_ERROR:.0%} R",
            "summary": summary, "per_curve": {name: [[r[0], r[1]] for r in v] for name, v in rows.items()}}


def bench_real_data() -> dict:
    out = {}
    for name, (config_name, paths) in REAL.items():
        if not all(Path(p).exists() for p in paths):
            out[name] = {"skipped": "data not present"}
            continue
        curves = [read_curve(p) for p in paths]
        config = FitConfig.parse(json.loads((REPO / "examples" / "fits" / config_name).read_text()), len(curves))
        row = {}
        for search in ("local", "global"):
            t = time.perf_counter()
            result = run_fit(config, curves, search=search, seed=0)
            row[search] = {"s": time.perf_counter() - t, "chi2_reduced": result.chi2_reduced,
                           "found_by": result.found_by}
        out[name] = {"n_points": result.n_points, "n_free": result.n_free, **row}
    return out


def print_summary(res: dict) -> None:
    if "least_squares" in res:
        ls = res["least_squares"]
        print(f"1. least squares, 6-layer film, {ls['n_points']} points with dQ, {ls['n_free']} free: ours "
              f"{ls['median_s']['ours']:.2f} s (χ²/N {ls['chi2_reduced']['ours']:.4f}), refnx CurveFitter "
              f"{ls['median_s']['refnx']:.2f} s (χ²/N {ls['chi2_reduced']['refnx']:.4f}); ours/refnx "
              f"{ls['ours/refnx']:.2f}; target ≤ {ls['target_s']:g} s: {'OK' if ls['ok'] else 'MISSED'}")
    if "mcmc" in res:
        m = res["mcmc"]
        print(f"2. MCMC {m['samples']:,} samples ({m['steps']} steps × {m['walkers']} walkers, kept {m['kept']}): "
              f"{m['mcmc_s']:.1f} s sampling, {m['total_s']:.1f} s in all; target ≤ {m['target_s']:g} s: "
              f"{'OK' if m['ok'] else 'MISSED'}")
    if "network_start" in res:
        n = res["network_start"]
        print(f"3. {n['curves']} held-out prior curves, network: {n['network']['source']}")
        for name, row in n["summary"].items():
            print(f"   {name:<24} median {row['median_s']:6.1f} s, median χ²/N {row['median_chi2_reduced']:9.3f}, "
                  f"global searches {row['global_searches']}")
    if "real_data" in res:
        print("4. real data (examples/fits):")
        for name, row in res["real_data"].items():
            if "skipped" in row:
                print(f"   {name}: skipped ({row['skipped']})")
                continue
            print(f"   {name:<22} N {row['n_points']}, p {row['n_free']}: local {row['local']['s']:.1f} s χ²/N "
                  f"{row['local']['chi2_reduced']:.4f}; global {row['global']['s']:.1f} s χ²/N "
                  f"{row['global']['chi2_reduced']:.4f} (best found by {row['global']['found_by']})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--curves", type=int, default=10, help="held-out curves for the network-start comparison")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ls", "mcmc", "network", "real"])
    args = parser.parse_args(argv)
    res = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "node": platform.node()}}
    parts = [("ls", "least_squares", lambda: bench_least_squares(args.repeats)), ("mcmc", "mcmc", bench_mcmc),
             ("network", "network_start", lambda: bench_network_start(args.curves)),
             ("real", "real_data", bench_real_data)]
    print(f"== fit benchmark: {res['machine']['cpus']} cores (shared), medians ==", flush=True)
    for key, name, run in parts:
        if key not in args.skip:
            res[name] = run()
            print_summary({name: res[name]})
            sys.stdout.flush()
    write_results("fit", res)
    return res


if __name__ == "__main__":
    main()
