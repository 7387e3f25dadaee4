"""Training-set generation: our generator against pyreflect's and refnx's smeared path.

Run from the repository root:  .venv/bin/python bench/bench_generate.py [--n 20000]

All engines use the default training prior (DEFAULT_FILM with the 19
DEFAULT_BOUNDS, pyreflect's 5-layer prior), pyreflect's 308-point Q grid and
dQ/Q = 2.94855 % FWHM.

a. Ours: ``generate`` writes N curves and their 900-point profiles to .npy; run
   once in a subprocess after a small warm-up (numba cache load), which also
   gives the peak RSS above the warm baseline (ru_maxrss).
b. pyreflect's ``ReflectivityDataGenerator`` (refl1d per curve, a fresh
   generator per call because it accumulates curves across calls) and
c. refnx's smeared ``reflectivity`` per film (films from our Prior.sample),
   each on a subset, interleaved with ours on the same subset size; medians.
d. Pair consistency: how far each curve is from the curve its own label profile
   produces (microslabs on the label's z grid), for ours (default and exact
   mode) and pyreflect's pairs; plus the cost of exact generation.

The machine is shared and noisy: repeated timings are medians of interleaved
repeats. Results go to bench/results/generate.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from bench_physics import DQ_PERCENT, median_ms, pyreflect_description  # noqa: E402
from refnx.reflect import reflectivity as refnx_reflectivity  # noqa: E402
from results_file import write_results  # noqa: E402

from reflect_core.data.generate import dataset_from_dict, default_dataset_dict, generate, pair_consistency  # noqa: E402
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM  # noqa: E402
from reflect_core.physics.profile import microslab_stacks, sld_profile  # noqa: E402
from reflect_core.physics.reflectivity import reflectivity  # noqa: E402
from reflect_core.physics.refnx_bridge import to_refnx_slabs  # noqa: E402
from reflect_core.physics.simulate import PYREFLECT_DQ  # noqa: E402

TARGET_VS_PYREFLECT = 10.0
TARGET_VS_REFNX = 3.0
WARMUP_CURVES = 50


def config_dict(n: int, seed: int, **extra) -> dict:
    return {**default_dataset_dict(), "n": n, "seed": seed, **extra}


def generate_into_temp(raw: dict) -> None:
    """One generation from scratch (a fresh directory, so nothing is resumed)."""
    with tempfile.TemporaryDirectory(prefix="bench_gen_") as tmp:
        generate(dataset_from_dict(raw), Path(tmp) / "data")


# -- a. ours, in a subprocess (wall time and peak RSS) -------------------------------------------------------
# The child imports only the generator, so that its RSS is the generator's (this script's
# imports of refnx, pyreflect and friends would otherwise set a high-water mark that hides it).
OURS_CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from reflect_core.data.generate import dataset_from_dict, default_dataset_dict, generate

def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

def rss_mb():  # current resident set (the high-water mark may lie above it)
    return status_mb("VmRSS")

def peak_mb():
    # VmHWM, this process's own high-water mark: ru_maxrss would do on its own, but
    # Linux carries the parent's peak at fork through exec into it (so it reads this
    # script's ~600 MB).
    return status_mb("VmHWM")

with tempfile.TemporaryDirectory(prefix="bench_gen_") as tmp:
    import_mb = rss_mb()
    generate(dataset_from_dict({{**default_dataset_dict(), "n": {warm}, "seed": {seed}}}), Path(tmp) / "warm")
    base_mb, base_peak_mb = rss_mb(), peak_mb()
    t0 = time.perf_counter()
    out = generate(dataset_from_dict({{**default_dataset_dict(), "n": {n}, "seed": {seed}}}), Path(tmp) / "data")
    wall = time.perf_counter() - t0
    peak = peak_mb()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    written = sum(f.stat().st_size for f in out.iterdir())
print(json.dumps({{"n": {n}, "wall_s": wall, "rss_after_import_mb": import_mb, "baseline_rss_mb": base_mb,
                  "baseline_peak_mb": base_peak_mb, "peak_rss_mb": peak, "ru_maxrss_mb": maxrss,
                  "bytes_written": written}}))
"""


def bench_ours(n: int, seed: int) -> dict:
    """One timed generation in a fresh process, after a small warm-up there (numba cache load)."""
    code = OURS_CHILD.format(repo=str(REPO), n=n, seed=seed, warm=WARMUP_CURVES)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["ms_per_curve"] = 1e3 * res["wall_s"] / n
    res["peak_above_baseline_mb"] = res["peak_rss_mb"] - res["baseline_rss_mb"]
    return res


# -- b. pyreflect ---------------------------------------------------------------------------------------------
def import_pyreflect_generator():
    """pyreflect's generator class, or None (pyreflect is an optional extra)."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            from pyreflect.input.reflectivity_data_generator import ReflectivityDataGenerator
        return ReflectivityDataGenerator
    except Exception as exc:  # ImportError, or a broken dependency chain
        print(f"pyreflect not importable ({type(exc).__name__}: {exc}); skipping it")
        return None


def pyreflect_prior() -> tuple[list, list, int]:
    """(layer_desc, layer_bound, num_layers) in pyreflect's format: layers substrate first,
    air last, roughness = the layer's top interface (our convention too); the bounds are
    already in its {"i", "par", "bounds"} form. num_layers counts the film layers between
    siox and air (its web backend requires len(layers) - 3)."""
    desc = pyreflect_description(DEFAULT_FILM.as_array())["layers"]
    for entry, layer in zip(desc, DEFAULT_FILM.layers):
        entry["name"] = layer.name
    return desc, [dict(b) for b in DEFAULT_BOUNDS], len(desc) - 3


def pyreflect_generate(generator_class, n: int):
    """(NR (n,2,308), SLD (n,2,900)) from a fresh generator; its prints and tqdm bar hidden.

    A fresh generator per call: it appends to internal lists and never clears them,
    and it writes the sampled values into layer_desc in place (so deep copies)."""
    desc, bounds, num_layers = pyreflect_prior()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        gen = generator_class(num_layers, copy.deepcopy(desc), copy.deepcopy(bounds))
        return gen.generate(n)


# -- b + c. subset timings, interleaved ----------------------------------------------------------------------
def bench_subset(n_sub: int, seed: int, repeats: int, generator_class) -> dict:
    config = dataset_from_dict(config_dict(n_sub, seed))
    q, z = config.q, config.z
    stacks = config.prior.sample(n_sub, seed, config.sampler)  # film order = beam frame (beam from the ambient)
    w = to_refnx_slabs(stacks)  # conversion is not timed

    def refnx_curves():
        return np.array([refnx_reflectivity(q, wb, dq=DQ_PERCENT) for wb in w])

    def refnx_with_profiles():  # parity with ours: the 900-point labels too (our erf profile, batched)
        refnx_curves()
        sld_profile(stacks, z)

    engines = {
        "ours": lambda: generate_into_temp(config_dict(n_sub, seed)),
        "refnx": refnx_curves,
        "refnx+our_profiles": refnx_with_profiles,
    }
    if generator_class is not None:
        engines["pyreflect"] = lambda: pyreflect_generate(generator_class, n_sub)
    # warm-up: numba/refl1d JIT and caches
    generate_into_temp(config_dict(WARMUP_CURVES, seed))
    refnx_reflectivity(q, w[0], dq=DQ_PERCENT)
    if generator_class is not None:
        pyreflect_generate(generator_class, 2)
    ms = median_ms(engines, repeats)
    per_curve = {name: t / n_sub for name, t in ms.items()}
    # Agreement of refnx's smeared curves with ours (different quadratures; informative only).
    ours_r = reflectivity(stacks, q, PYREFLECT_DQ)
    refnx_r = refnx_curves()
    rel = np.abs(refnx_r / ours_r - 1)
    return {"curves": n_sub, "repeats": repeats, "ms_total": ms, "ms_per_curve": per_curve,
            "refnx_vs_ours_rel_diff": {"median": float(np.median(rel)), "max": float(rel.max())}}


# -- d. pair consistency -------------------------------------------------------------------------------------
def rel_stats(rel: np.ndarray) -> dict:
    return {"median": float(np.median(rel)), "p95": float(np.percentile(rel, 95)), "mean": float(np.mean(rel)),
            "max": float(np.max(rel))}


def pyreflect_pair_consistency(generator_class, n: int) -> dict:
    """|R_curve / R(label) - 1| for pyreflect's own pairs, R(label) from our microslab path
    on each curve's own z grid (same Q grid, dQ/Q 2.94855 %, beam from the ambient = high z)."""
    nr, sld = pyreflect_generate(generator_class, n)
    # Every curve has 900 points, so its 901-row microslab stack batches with the others
    # although the z grids differ.
    stacks = np.concatenate([microslab_stacks(sld[i, 0].astype(float), sld[i, 1].astype(float))
                             for i in range(n)])
    q = nr[0, 0].astype(float)
    from_label = reflectivity(stacks, q, PYREFLECT_DQ)
    rel = np.abs(nr[:, 1].astype(float) / from_label - 1)
    z_span = sld[:, 0, -1] - sld[:, 0, 0]
    return {"curves": n, **rel_stats(rel), "z_span_A": [float(z_span.min()), float(z_span.max())],
            "dz_median_A": float(np.median(np.diff(sld[:, 0], axis=1))),
            "label_ends_sld": {"substrate_median": float(np.median(sld[:, 1, 0])),
                               "ambient_median": float(np.median(sld[:, 1, -1])),
                               "ambient_max": float(np.max(sld[:, 1, -1]))}}


def bench_pairs(n_pairs: int, n_exact: int, seed: int, repeats: int, generator_class) -> dict:
    default_cfg = dataset_from_dict(config_dict(n_pairs, seed))
    exact_cfg = dataset_from_dict(config_dict(n_pairs, seed, exact=True))
    res = {"curves": n_pairs,
           "ours_default": pair_consistency(default_cfg, n=n_pairs),
           "ours_exact": pair_consistency(exact_cfg, n=n_pairs),
           "ours_dz_A": float(np.diff(default_cfg.z)[0])}
    if generator_class is not None:
        res["pyreflect"] = pyreflect_pair_consistency(generator_class, n_pairs)
    generate_into_temp(config_dict(WARMUP_CURVES, seed, exact=True))  # compile/load the exact path
    ms = median_ms({"default": lambda: generate_into_temp(config_dict(n_exact, seed)),
                    "exact": lambda: generate_into_temp(config_dict(n_exact, seed, exact=True))}, repeats)
    res["exact_timing"] = {"curves": n_exact, "repeats": repeats, "ms_total": ms,
                           "ms_per_curve": {k: v / n_exact for k, v in ms.items()},
                           "exact/default": ms["exact"] / ms["default"]}
    return res


# -- report --------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def print_summary(res: dict) -> None:
    o, s, p = res["ours"], res["subset"], res["pairs"]
    pc = s["ms_per_curve"]
    print(f"\n== generation benchmark: {res['machine']['cpus']} cores, "
          f"numba threads {res['machine']['numba_threads']}, "
          f"default prior (8 layers, 19 bounds), {res['n_q']} Q, 900 z, dQ/Q {DQ_PERCENT:.5f} % FWHM ==")
    print(f"a. ours, generate() of {o['n']:,} curves + profiles to .npy (one run, after a {WARMUP_CURVES}-curve "
          f"warm-up):")
    print(f"   wall {o['wall_s']:.2f} s = {o['ms_per_curve']:.4f} ms/curve "
          f"({o['n'] / o['wall_s']:,.0f} curves/s); {o['bytes_written'] / 1e6:,.1f} MB written")
    print(f"   peak RSS {o['peak_rss_mb']:.1f} MB = {o['peak_above_baseline_mb']:.1f} MB above the warm baseline "
          f"({o['baseline_rss_mb']:.1f} MB resident after the warm-up; "
          f"{o['rss_after_import_mb']:.1f} MB after imports)")
    print(f"b/c. subsets of {s['curves']} curves, medians of {s['repeats']} interleaved repeats, ms/curve:")
    print(f"   {'ours generate() (R + profiles + .npy)':<46}{pc['ours']:>10.4f}")
    for name, label in (("pyreflect", "pyreflect ReflectivityDataGenerator"), ("refnx", "refnx reflectivity(dq) loop"),
                        ("refnx+our_profiles", "refnx loop + our sld_profile (parity)")):
        if name in pc:
            print(f"   {label:<46}{pc[name]:>10.4f}   {pc[name] / pc['ours']:6.1f}x ours")
        else:
            print(f"   {label:<46}{'skipped':>10}")
    r = res["ratios"]
    if "pyreflect/ours" in r:
        print(f"   target ours >= {TARGET_VS_PYREFLECT:g}x pyreflect: {r['pyreflect/ours']:.1f}x "
              f"(vs the {o['n']:,}-curve run: {r['pyreflect/ours_big_run']:.1f}x) -> "
              f"{verdict(r['pyreflect/ours'] >= TARGET_VS_PYREFLECT)}")
    print(f"   target ours >= {TARGET_VS_REFNX:g}x refnx: {r['refnx/ours']:.1f}x R only, "
          f"{r['refnx+profiles/ours']:.1f}x with profiles (vs the {o['n']:,}-curve run: "
          f"{r['refnx/ours_big_run']:.1f}x R only) -> {verdict(r['refnx/ours'] >= TARGET_VS_REFNX)}")
    print(f"   refnx vs our smeared curves: median rel diff {s['refnx_vs_ours_rel_diff']['median']:.2e}, "
          f"max {s['refnx_vs_ours_rel_diff']['max']:.2e} (different quadratures; informative)")
    print(f"d. pair consistency |R_curve / R(label profile) - 1| over {p['curves']} curves x {res['n_q']} Q "
          f"(R(label): our microslabs on the label's z grid):")
    rows = [("ours, default (slab model, Nevot-Croce)", p["ours_default"]),
            ("ours, exact (R from the label)", p["ours_exact"])]
    if "pyreflect" in p:
        rows.append(("pyreflect (refl1d slabs, its own z grids)", p["pyreflect"]))
    print(f"   {'':<44}{'median':>10}{'p95':>10}{'max':>10}")
    for label, st in rows:
        print(f"   {label:<44}{100 * st['median']:>9.2f}%{100 * st['p95']:>9.2f}%{100 * st['max']:>9.1f}%")
    if "pyreflect" in p:
        py = p["pyreflect"]
        print(f"   (pyreflect labels: z span {py['z_span_A'][0]:.0f}-{py['z_span_A'][1]:.0f} A, "
              f"dz ~{py['dz_median_A']:.2f} A, "
              f"ambient end SLD median {py['label_ends_sld']['ambient_median']:.4f}, max "
              f"{py['label_ends_sld']['ambient_max']:.4f}; ours: one z grid, dz {p['ours_dz_A']:.2f} A)")
    e = p["exact_timing"]
    print(f"   exact generation: {e['ms_per_curve']['exact']:.3f} ms/curve "
          f"vs default {e['ms_per_curve']['default']:.3f} "
          f"({e['curves']} curves, median of {e['repeats']}) = {e['exact/default']:.1f}x slower")
    print(f"total bench wall time {res['bench_wall_s']:.0f} s; load average (1, 5, 15 min) at start "
          f"{', '.join(f'{x:.1f}' for x in res['machine']['loadavg_start'])}, at end "
          f"{', '.join(f'{x:.1f}' for x in res['machine']['loadavg_end'])} (shared machine)")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="curves in our timed generation")
    parser.add_argument("--subset", type=int, default=1000, help="curves for the pyreflect/refnx comparison")
    parser.add_argument("--pairs", type=int, default=200, help="curves for pair consistency")
    parser.add_argument("--exact-n", type=int, default=500, help="curves to time exact vs default generation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    generator_class = import_pyreflect_generator()
    res = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
                    "python": platform.python_version(), "node": platform.node(),
                    "loadavg_start": os.getloadavg()},
        "n_q": 308, "dq_fwhm_percent": DQ_PERCENT, "seed": args.seed,
        "pyreflect_available": generator_class is not None,
    }
    print(f"a. ours: generating {args.n:,} curves in a subprocess ...", flush=True)
    res["ours"] = bench_ours(args.n, args.seed)
    print(f"b/c. subset timings ({args.subset} curves x {args.repeats}) ...", flush=True)
    res["subset"] = bench_subset(min(args.subset, args.n), args.seed, args.repeats, generator_class)
    print("d. pair consistency and exact-mode cost ...", flush=True)
    res["pairs"] = bench_pairs(args.pairs, args.exact_n, args.seed, args.repeats, generator_class)

    pc = res["subset"]["ms_per_curve"]
    big = res["ours"]["ms_per_curve"]
    res["ratios"] = {"refnx/ours": pc["refnx"] / pc["ours"],
                     "refnx+profiles/ours": pc["refnx+our_profiles"] / pc["ours"],
                     "refnx/ours_big_run": pc["refnx"] / big}
    if "pyreflect" in pc:
        res["ratios"].update({"pyreflect/ours": pc["pyreflect"] / pc["ours"],
                              "pyreflect/ours_big_run": pc["pyreflect"] / big})
    res["targets"] = {"ours_vs_refnx_min": TARGET_VS_REFNX, "refnx_ok": res["ratios"]["refnx/ours"] >= TARGET_VS_REFNX}
    if "pyreflect/ours" in res["ratios"]:
        res["targets"].update(ours_vs_pyreflect_min=TARGET_VS_PYREFLECT,
                              pyreflect_ok=res["ratios"]["pyreflect/ours"] >= TARGET_VS_PYREFLECT)
    res["bench_wall_s"] = time.perf_counter() - t_start
    res["machine"]["loadavg_end"] = os.getloadavg()

    print_summary(res)
    write_results("generate", res)
    return res


if __name__ == "__main__":
    main()
