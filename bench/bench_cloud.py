"""Does the app fit a Community Cloud box? Memory and cold-start time of `streamlit run app.py`.

Run from the repository root:  .venv/bin/python bench/bench_cloud.py [--sessions N] [--repeats K]

Each repeat starts a fresh server on an empty data directory, opens the first page in headless
Chromium (Debian's /usr/bin/chromium) and times it until both charts are drawn (this includes
compiling the numerical kernels when their cache is cold), visits every page in that session,
then opens N more sessions on the first page. The server's resident memory (VmRSS of its process,
from /proc) is read after each step. Medians over repeats; results in bench/results/cloud.json.
Community Cloud gives 0.7–2.7 GB for all visitors; the target is ≤ 600 MB after one visitor has
opened every page. The machine is shared: the times, not the memory, move with its load.
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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_repeat(browser, sessions: int, clear_kernel_cache: bool) -> dict:
    if clear_kernel_cache:  # numba's on-disk cache: a fresh container has none
        for cached in REPO.glob("reflect_core/**/__pycache__/*.nb[ic]"):
            cached.unlink()
    port, data = free_port(), tempfile.mkdtemp(prefix="bench_cloud_")
    env = dict(os.environ, REFLECT_DATA_DIR=data)
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("the server did not start within 120 s")
        out = {"server_ready_s": time.perf_counter() - t0, "rss_idle_mb": rss_mb(server.pid)}
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        t1 = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function(CHARTS, timeout=120_000)
        out["first_page_s"] = time.perf_counter() - t1
        out["rss_first_page_mb"] = rss_mb(server.pid)
        for name, marker in PAGES:
            page.get_by_role("link", name=name).click()
            if marker:
                page.get_by_text(marker).first.wait_for(timeout=60_000)
            else:
                page.wait_for_function(CHARTS, timeout=60_000)
            page.wait_for_timeout(1500)
            out[f"rss_after_{name.split()[0].lower()}_mb"] = rss_mb(server.pid)
        out["rss_every_page_mb"] = rss_mb(server.pid)
        before = out["rss_every_page_mb"]
        for _ in range(sessions):
            other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            other.goto(url, wait_until="domcontentloaded")
            other.wait_for_function(CHARTS, timeout=120_000)
            other.wait_for_timeout(1000)
        out["rss_more_sessions_mb"] = rss_mb(server.pid)
        out["per_extra_session_mb"] = (out["rss_more_sessions_mb"] - before) / max(sessions, 1)
        return out
    finally:
        server.terminate()
        server.wait(timeout=20)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4, help="extra sessions opened after the first")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        for k in range(args.repeats):
            runs.append(one_repeat(browser, args.sessions, clear_kernel_cache=k == 0))
            print(f"  repeat {k + 1}: " + ", ".join(f"{key} {value:.1f}" for key, value in runs[-1].items()),
                  flush=True)
        browser.close()
    cold, warm = runs[0], runs[1:] or runs
    summary = {"cold_kernel_cache": cold,
               "warm_kernel_cache_median": {key: float(np.median([r[key] for r in warm])) for key in warm[0]},
               "sessions": args.sessions, "cpus": os.cpu_count()}
    w = summary["warm_kernel_cache_median"]
    print(f"cold start (no kernel cache): server {cold['server_ready_s']:.1f} s, "
          f"first page {cold['first_page_s']:.1f} s")
    print(f"warm kernel cache (median): server {w['server_ready_s']:.1f} s, first page {w['first_page_s']:.1f} s")
    print(f"memory: idle {w['rss_idle_mb']:.0f} MB, first page {w['rss_first_page_mb']:.0f} MB, every page "
          f"{w['rss_every_page_mb']:.0f} MB (target ≤ 600), each extra session {w['per_extra_session_mb']:.0f} MB")
    write_results("cloud", summary)
    return summary


if __name__ == "__main__":
    main()
