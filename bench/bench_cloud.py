"""Does the app fit a Community Cloud box? Memory and cold-start time of `streamlit run app.py`.

Run from the repository root:  .venv/bin/python bench/bench_cloud.py [--sessions N] [--repeats K]
[--root DIR] [--app FILE]  (--root: another checkout to measure, e.g. `git archive HEAD` unpacked)

Each repeat starts two fresh servers on empty data directories: the first with an empty numba
kernel cache (a fresh Cloud container: its disk is lost on reboot), the second with the cache
the first one wrote. In each, headless Chromium (Debian's /usr/bin/chromium) opens the first
page and it is timed until both charts are drawn, every page is visited in that session, then
N more sessions open the first page and stay open. The server's resident memory (VmRSS of its
process, from /proc) is read after each step, and its peak (VmHWM) at the end; the memory of
its child processes (estimates, workers) is reported apart. The server's CPU seconds until the
first page is drawn (its own, and its finished children's, e.g. a kernel-compiling child) are
recorded too: on a loaded machine they move far less than the wall time. Per extra session: the slope of a
least-squares line through RSS after 0..N extra sessions. Medians over repeats; results in
bench/results/cloud.json. Community Cloud gives 0.7–2.7 GB for all visitors; the target is
≤ 600 MB after one visitor has opened every page. The machine is shared: the times, not the
memory, move with its load (the load average is recorded).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import numpy as np  # noqa: E402
from results_file import write_results  # noqa: E402

PAGES = [("Train", "Estimated training time"), ("Models and data", "Measured curves"),
         ("Analyse", "Analyse measured data"), ("History", "History"), ("Film explorer", None)]
CHARTS = "() => document.querySelectorAll('.js-plotly-plot').length >= 2"


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def children_mb(pid: int) -> float:
    """Resident memory of the server's descendants (estimate and worker processes) now."""
    total, todo = 0.0, [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                total += status_mb(kid, "VmRSS")
            except (OSError, RuntimeError):
                continue
            todo.append(kid)
    return total


def cpu_s(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process itself, of its children that have ended), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, t0: float) -> None:
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            time.sleep(0.2)
        if time.perf_counter() - t0 > 120:
            raise RuntimeError("the server did not start within 120 s")


def one_run(browser, root: Path, app: str, sessions: int, kernel_cache: str) -> dict:
    port, data = free_port(), tempfile.mkdtemp(prefix="bench_cloud_")
    # The kernel cache in a directory of this run's own: other work on the machine neither sees nor clears it.
    env = dict(os.environ, REFLECT_DATA_DIR=data, NUMBA_CACHE_DIR=kernel_cache)
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(root / app), "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    contexts = []

    def new_page():
        contexts.append(browser.new_context(viewport={"width": 1400, "height": 1000}))
        return contexts[-1].new_page()

    try:
        wait_healthy(url, t0)
        out = {"server_ready_s": time.perf_counter() - t0, "rss_idle_mb": status_mb(server.pid, "VmRSS")}
        page = new_page()
        t1, (cpu0, _) = time.perf_counter(), cpu_s(server.pid)
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function(CHARTS, timeout=120_000)
        out["first_page_s"] = time.perf_counter() - t1
        own, children = cpu_s(server.pid)
        out["first_page_server_cpu_s"], out["first_page_children_cpu_s"] = own - cpu0, children
        out["rss_first_page_mb"] = status_mb(server.pid, "VmRSS")
        for name, marker in PAGES:
            page.get_by_role("link", name=name, exact=True).click()
            if marker:
                page.get_by_text(marker).first.wait_for(timeout=120_000)
            else:
                page.wait_for_function(CHARTS, timeout=60_000)
            page.wait_for_timeout(1500)
            out[f"rss_after_{name.split()[0].lower()}_mb"] = status_mb(server.pid, "VmRSS")
        out["rss_every_page_mb"] = status_mb(server.pid, "VmRSS")
        out["children_every_page_mb"] = children_mb(server.pid)
        rss = [out["rss_every_page_mb"]]
        for _ in range(sessions):
            other = new_page()
            other.goto(url, wait_until="domcontentloaded")
            other.wait_for_function(CHARTS, timeout=120_000)
            other.wait_for_timeout(1000)
            rss.append(status_mb(server.pid, "VmRSS"))
        out["rss_more_sessions_mb"] = rss[-1]
        out["per_extra_session_mb"] = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) if sessions else 0.0
        out["rss_peak_mb"] = status_mb(server.pid, "VmHWM")
        return out
    finally:
        for context in contexts:
            context.close()
        server.terminate()
        server.wait(timeout=20)


def median(runs: list[dict]) -> dict:
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4, help="extra sessions opened after the first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to run (default: this one)")
    parser.add_argument("--app", default="app.py", help="the entry script, relative to --root")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    cold, warm, load = [], [], [os.getloadavg()[0]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        for k in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="bench_cloud_numba_") as cache:
                for kind, runs in (("cold", cold), ("warm", warm)):
                    runs.append(one_run(browser, args.root.resolve(), args.app, args.sessions, cache))
                    load.append(os.getloadavg()[0])
                    print(f"  repeat {k + 1} {kind} kernel cache: "
                          + ", ".join(f"{key} {value:.1f}" for key, value in runs[-1].items()), flush=True)
        browser.close()
    summary = {"cold_kernel_cache_median": median(cold), "warm_kernel_cache_median": median(warm),
               "cold_runs": cold, "warm_runs": warm, "sessions": args.sessions, "cpus": os.cpu_count(),
               "load_average_1min": load, "root": str(args.root), "app": args.app}
    c, w = summary["cold_kernel_cache_median"], summary["warm_kernel_cache_median"]
    print(f"first page (median of {args.repeats}): {c['first_page_s']:.1f} s with an empty kernel cache, "
          f"{w['first_page_s']:.1f} s with it; server ready in {c['server_ready_s']:.1f} s; load average "
          f"{min(load):.1f}–{max(load):.1f} on {os.cpu_count()} CPUs")
    print(f"server CPU until the first page (median): {c['first_page_server_cpu_s']:.1f} s (+ "
          f"{c['first_page_children_cpu_s']:.1f} s in ended children) cold, {w['first_page_server_cpu_s']:.1f} s "
          f"(+ {w['first_page_children_cpu_s']:.1f} s) warm")
    both = median(cold + warm)
    print(f"memory (median of {len(cold + warm)} servers): idle {both['rss_idle_mb']:.0f} MB, first page "
          f"{both['rss_first_page_mb']:.0f} MB, every page {both['rss_every_page_mb']:.0f} MB (target ≤ 600), peak "
          f"{both['rss_peak_mb']:.0f} MB, each extra session {both['per_extra_session_mb']:.1f} MB")
    write_results("cloud", summary)
    return summary


if __name__ == "__main__":
    main()
