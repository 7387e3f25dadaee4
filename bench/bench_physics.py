"""Speed (and agreement) of our reflectivity engine against refnx and pyreflect.

Run from the repository root:  .venv/bin/python bench/bench_physics.py [--films N] [--repeats K]

Films are drawn from the default training prior (DEFAULT_FILM, each of the 19
DEFAULT_BOUNDS parameters uniform in its bounds) on pyreflect's 308-point Q grid.
The machine is shared and noisy, so only medians are reported, and engines are
interleaved inside each repeat so that load spikes hit all of them alike.
Results go to bench/results/physics.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from refnx.reflect import reflectivity as refnx_reflectivity  # noqa: E402
from refnx.reflect._creflect import abeles_vectorised  # noqa: E402
from results_file import write_results  # noqa: E402

from reflect_core.physics.film import LAYER_FIELDS  # noqa: E402
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM  # noqa: E402
from reflect_core.physics.profile import sld_profile  # noqa: E402
from reflect_core.physics.reflectivity import reflectivity  # noqa: E402
from reflect_core.physics.refnx_bridge import to_refnx_slabs  # noqa: E402
from reflect_core.physics.simulate import PYREFLECT_DQ, CurveSettings, film_profile, film_reflectivity  # noqa: E402

Q = np.logspace(np.log10(0.0081), np.log10(0.1975), 308)  # pyreflect's grid
DQ_PERCENT = 100 * PYREFLECT_DQ  # refnx takes dQ/Q FWHM in percent
INTERACTIVE_TARGET_MS = 5.0
INTERACTIVE_RUNS = 50
REFNX_THREADS = -1  # refnx: -1 = all cores


def try_import_pyreflect():
    """pyreflect's one-film function, or None (it is an optional extra)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyreflect.input.reflectivity_data_generator import calculate_reflectivity
        return calculate_reflectivity
    except Exception as exc:  # ImportError, or a broken dependency chain
        print(f"pyreflect not importable ({type(exc).__name__}: {exc}); skipping it")
        return None


def draw_films(n: int, seed: int) -> np.ndarray:
    """(n, L, 4) stacks: the default film with every bounded parameter uniform."""
    rng = np.random.default_rng(seed)
    stacks = np.tile(DEFAULT_FILM.beam_array(), (n, 1, 1))
    for bound in DEFAULT_BOUNDS:
        lo, hi = bound["bounds"]
        stacks[:, bound["i"], LAYER_FIELDS.index(bound["par"])] = rng.uniform(lo, hi, n)
    return stacks


def pyreflect_description(stack: np.ndarray) -> dict:
    """pyreflect's model_description for one stack (both are substrate first)."""
    layers = [
        {"name": f"l{k}", "sld": s, "isld": i, "thickness": d, "roughness": r}
        for k, (s, i, d, r) in enumerate(stack.tolist())
    ]
    return {"layers": layers, "scale": 1.0, "background": 0.0}


def median_ms(engines: dict, repeats: int) -> dict:
    """Median wall time (ms) of each engine; engines alternate within each repeat."""
    times = {name: [] for name in engines}
    for _ in range(repeats):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - t0))
    return {name: float(np.median(t)) for name, t in times.items()}


def max_rel_diff(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def bench_unsmeared(stacks, repeats) -> dict:
    w = to_refnx_slabs(stacks)  # conversion is not timed: it is not refnx's work
    ours = reflectivity(stacks, Q, 0.0)
    ref = abeles_vectorised(Q, w, threads=REFNX_THREADS)
    err = max_rel_diff(ours, ref)
    assert err < 1e-9, f"unsmeared mismatch with refnx: max rel diff {err:.3g}"
    ms = median_ms(
        {
            "ours": lambda: reflectivity(stacks, Q, 0.0),
            "refnx": lambda: abeles_vectorised(Q, w, threads=REFNX_THREADS),
        },
        repeats,
    )
    return {"films": len(stacks), "ms": ms, "refnx/ours": ms["refnx"] / ms["ours"], "max_rel_diff": err}


def bench_smeared(stacks, n_subset, repeats, calc_pyreflect) -> dict:
    """Ours batched over all films; refnx and pyreflect looped over a subset (one film per call)."""
    sub = stacks[:n_subset]
    w = to_refnx_slabs(sub)
    descs = [pyreflect_description(s) for s in sub]

    def loop_refnx():
        return np.array([refnx_reflectivity(Q, wb, dq=DQ_PERCENT, threads=REFNX_THREADS) for wb in w])

    def loop_pyreflect():
        # pyreflect's call also computes refl1d's 900-point profile: it cannot be turned off.
        return np.array([calc_pyreflect(Q, d, q_resolution=PYREFLECT_DQ)[0] for d in descs])

    def ours_with_profiles():  # like for like with pyreflect, which returns a profile too
        reflectivity(stacks, Q, PYREFLECT_DQ)
        sld_profile(stacks)

    engines = {
        "ours": lambda: reflectivity(stacks, Q, PYREFLECT_DQ),
        "ours+profile": ours_with_profiles,
        "refnx": loop_refnx,
    }
    counts = {"ours": len(stacks), "ours+profile": len(stacks), "refnx": len(sub)}
    if calc_pyreflect is not None:
        engines["pyreflect"] = loop_pyreflect
        counts["pyreflect"] = len(sub)
    ms = median_ms(engines, repeats)
    per_film = {name: ms[name] / counts[name] for name in ms}
    # Each engine smears differently (quadrature, kernel width): agreement is informative only.
    ours_sub = reflectivity(sub, Q, PYREFLECT_DQ)
    agreement = {"refnx": max_rel_diff(ours_sub, loop_refnx())}
    if calc_pyreflect is not None:
        agreement["pyreflect"] = max_rel_diff(ours_sub, loop_pyreflect())
    ratios = {f"{name}/ours": per_film[name] / per_film["ours"] for name in ("refnx", "pyreflect") if name in per_film}
    if "pyreflect" in per_film:
        ratios["pyreflect/(ours+profile)"] = per_film["pyreflect"] / per_film["ours+profile"]
    return {
        "films": counts,
        "ms_total": ms,
        "ms_per_film": per_film,
        **ratios,
        "max_rel_diff_vs_ours": agreement,
    }


def bench_interactive() -> dict:
    """One edit in the app: the smeared curve of one film plus its 900-point profile."""
    settings = CurveSettings()

    def one_edit():
        film_reflectivity(DEFAULT_FILM, Q, settings)
        film_profile(DEFAULT_FILM)

    ms = median_ms({"edit": one_edit}, INTERACTIVE_RUNS)["edit"]
    return {"runs": INTERACTIVE_RUNS, "ms": ms, "target_ms": INTERACTIVE_TARGET_MS, "ok": ms < INTERACTIVE_TARGET_MS}


def warm_up(stacks, calc_pyreflect) -> float:
    """Call every engine once so numba JIT compiles (and caches load) are not timed."""
    t0 = time.perf_counter()
    few = stacks[:2]
    reflectivity(few, Q, 0.0)
    reflectivity(few, Q, PYREFLECT_DQ)
    abeles_vectorised(Q, to_refnx_slabs(few), threads=REFNX_THREADS)
    refnx_reflectivity(Q, to_refnx_slabs(few)[0], dq=DQ_PERCENT, threads=REFNX_THREADS)
    film_reflectivity(DEFAULT_FILM, Q, CurveSettings())
    film_profile(DEFAULT_FILM)
    if calc_pyreflect is not None:
        calc_pyreflect(Q, pyreflect_description(few[0]))
    return time.perf_counter() - t0


def print_summary(res: dict) -> None:
    u, s, i = res["unsmeared"], res["smeared"], res["interactive"]
    print(f"\n== physics benchmark: {res['machine']['cpus']} cores, numba threads {res['machine']['numba_threads']}, "
          f"{len(Q)} Q points, medians of {res['repeats']} interleaved repeats ==")
    print(f"{'case':<44}{'ours':>12}{'refnx':>12}{'pyreflect':>12}")
    print(f"{'unsmeared, %d films, total ms' % u['films']:<44}"
          f"{u['ms']['ours']:>12.2f}{u['ms']['refnx']:>12.2f}{'-':>12}")
    print(f"{'  ratio (other/ours, >1 = we are faster)':<44}{'1':>12}{u['refnx/ours']:>12.2f}{'-':>12}")
    pf = s["ms_per_film"]
    py = f"{pf['pyreflect']:>12.4f}" if "pyreflect" in pf else f"{'skipped':>12}"
    label = f"smeared 2.95%, ms/film (ours {s['films']['ours']}, others {s['films']['refnx']})"
    print(f"{label:<44}{pf['ours']:>12.4f}{pf['refnx']:>12.4f}{py}")
    pyr = f"{s['pyreflect/ours']:>12.1f}" if "pyreflect/ours" in s else f"{'-':>12}"
    print(f"{'  ratio (other/ours, >1 = we are faster)':<44}{'1':>12}{s['refnx/ours']:>12.1f}{pyr}")
    if "pyreflect/(ours+profile)" in s:  # pyreflect also returns a 900-point profile per call
        print(f"{'  ours + 900-pt profiles, ms/film; pyreflect/that':<44}{pf['ours+profile']:>12.4f}{'':>12}"
              f"{s['pyreflect/(ours+profile)']:>12.1f}")
    print(f"{'interactive edit (R + profile), ms':<44}{i['ms']:>12.2f}   target < {i['target_ms']} ms: "
          f"{'OK' if i['ok'] else 'MISSED'}")
    print(f"accuracy: unsmeared max rel diff vs refnx {u['max_rel_diff']:.2e} (asserted < 1e-9); smeared max rel diff "
          + ", ".join(f"vs {k} {v:.2e}" for k, v in s["max_rel_diff_vs_ours"].items())
          + " (different smearing quadratures; not asserted)")
    print(f"warm-up (JIT compile / cache load, not timed): {res['warmup_s']:.2f} s")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--subset", type=int, default=200, help="films looped one by one for refnx/pyreflect smeared")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # numba default: every core
    warnings.filterwarnings("ignore", message="data argument is deprecated")  # refl1d, via pyreflect
    calc_pyreflect = try_import_pyreflect()
    stacks = draw_films(args.films, args.seed)
    n_subset = min(args.subset, args.films)

    res = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(), "refnx_threads": REFNX_THREADS,
                    "python": platform.python_version(), "node": platform.node()},
        "films": args.films, "repeats": args.repeats, "seed": args.seed, "n_q": len(Q),
        "smeared_dq_fwhm_percent": DQ_PERCENT,
        "warmup_s": warm_up(stacks, calc_pyreflect),
    }
    res["unsmeared"] = bench_unsmeared(stacks, args.repeats)
    res["smeared"] = bench_smeared(stacks, n_subset, args.repeats, calc_pyreflect)
    res["interactive"] = bench_interactive()
    res["pyreflect_available"] = calc_pyreflect is not None

    print_summary(res)
    write_results("physics", res)
    return res


if __name__ == "__main__":
    main()
