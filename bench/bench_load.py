"""Ten users at once: rerun latency, errors, isolation and memory of `streamlit run app.py` in shared mode.

Run from the repository root:  .venv/bin/python bench/bench_load.py [--sessions 10] [--seconds 60] [--think 1]

A temporary data directory and login file (N users, bcrypt hashes, a random cookie key) are made;
each user's history gets a film record named with a token of their own, and one training job (owned
by the first user, local backend, endless: stopped at the end) runs during the whole test. The server
listens on 127.0.0.1 only. After one unmeasured warm-up visit (numba kernels, imports), N sessions
speak Streamlit's websocket protocol (bench/st_client.py) at once: each logs in through the login form,
then edits a layer thickness in the explorer, pausing `--think` seconds (×0.5–1.5, random) between
actions like a person would, and opens the History page every `--history-every` actions and goes back.
Latency is request sent → script_finished received (the server's work and the transfer, not the
browser's drawing). Errors: exceptions on a page, timeouts, disconnects, a failed login or a page not
signed in as its user, an edit the server did not take, the user's own token missing on History.
Isolation: every message a session receives is searched for every other user's token. The server's
resident memory (and the worker's) is read before, during (peak) and after. Server, worker and files
are removed at exit, even on failure. `--set runner.postScriptGC=false` and the like try server settings.
Results in bench/results/load.json. Targets (2-core machine): p95 ≤ 300 ms for an edit, 0 errors, 0 leaks.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from bench_cloud import status_mb  # noqa: E402
from results_file import write_results  # noqa: E402
from st_client import ProtocolError, Run, Session, serve  # noqa: E402

EDIT_TARGET_MS = 300
EXPLORER, HISTORY = "Film explorer", "History"
JOB = {"kind": "train", "dataset": {"n": 1000, "seed": 1},
       "training": {"epochs": 100_000, "patience": 0, "checkpoint_every": 0}}  # endless: stopped at the end


def make_users(n: int) -> dict[str, dict]:
    return {f"user{i:02d}": {"password": secrets.token_urlsafe(12), "token": f"tok{secrets.token_hex(6)}"}
            for i in range(1, n + 1)}


def write_login_file(path: Path, users: dict) -> None:
    from reflect_core.accounts.auth_config import hash_password

    path.write_text(yaml.safe_dump({
        "credentials": {"usernames": {name: {"name": name, "email": f"{name}@lab.org",
                                             "password": hash_password(u["password"])}
                                      for name, u in users.items()}},
        "cookie": {"name": "reflect_load", "key": secrets.token_urlsafe(48), "expiry_days": 1}}))


def seed_history(users: dict) -> None:
    """One film record per user, named with the user's token (REFLECT_DATA_DIR is set already)."""
    from reflect_core.accounts.access import User
    from reflect_core.physics.presets import DEFAULT_FILM
    from reflect_core.store import history

    for name, u in users.items():
        history.add(User(name), "film", f"film {u['token']}", {"film": DEFAULT_FILM.to_dict()})


def start_job(owner: str, token: str) -> str:
    from reflect_core.accounts.access import User
    from reflect_core.ml.spec import TrainSpec
    from reflect_core.store import records

    run_id, _ = records.submit_training(User(owner), TrainSpec.parse(JOB), name=f"training {token}")
    return run_id


def job_info(run_id: str):
    from reflect_core import jobs

    return jobs.get(run_id)


def end_job(run_id: str, owner: str) -> None:
    """Stop the worker (it stops at its next batch), then kill it if it is still there after 10 s."""
    from reflect_core import jobs
    from reflect_core.accounts.access import User

    pid = job_info(run_id).pid
    try:
        jobs.stop(run_id, User(owner))
    except Exception as exc:  # noqa: BLE001 - it may have ended or failed already; the kill below still runs
        print(f"  stopping the job: {exc}")
    deadline = time.monotonic() + 10
    while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
        jobs.tick()  # reaps the worker, our child
    if pid and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def rss_mb(pid: int) -> float:
    return status_mb(pid, "VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tally:
    """Latencies per action, errors by kind (with a few examples), and isolation checks."""

    def __init__(self, users: dict):
        self.users, self.seconds = users, defaultdict(list)
        self.errors, self.examples = Counter(), defaultdict(list)
        self.checked_messages = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples[kind]) < 3:
            self.examples[kind].append(detail[:300])

    def run(self, name: str, action: str, session: Session, run: Run) -> bool:
        """Count the run and check it; False when the page is not signed in as ``name``."""
        self.seconds[action].append(run.seconds)
        self.checked_messages += run.messages
        if run.status != "ok":
            self.error("compile error", f"{name} {action}")
        for exc in session.exceptions():
            self.error("exception", f"{name} {action}: {exc.text}")
        for other, u in self.users.items():
            if other != name and run.contains(u["token"]):
                self.error("leak", f"{name} saw {other}'s token on {action}")
        # The sidebar of every page, once logged in (a fragment's run redraws only the fragment).
        if not run.fragment and not run.contains(f"Signed in as **{name}**"):
            self.error("wrong identity", f"{name} on {action}: " + "; ".join(session.texts())[:200])
            return False
        return True


def layer_table(session: Session):
    return session.find("dataframe", contains="")  # the explorer's only table: the layer editor


def table_edit(session: Session, edits: dict, row: int, value: float) -> str:
    """The data editor's value after typing ``value`` into a layer's thickness: the browser sends all
    the table's edits so far (``edits``, per table id: the explorer re-creates it after a refused value)."""
    cells = edits.setdefault(layer_table(session).id, {})
    cells[str(row)] = {"thickness": value}
    return json.dumps({"edited_rows": cells, "added_rows": [], "deleted_rows": []})


async def user_session(url: str, name: str, tally: Tally, deadline: float, args, rng: random.Random,
                       max_actions: int | None = None) -> None:
    user = tally.users[name]
    session = await Session.open(url, timeout=args.timeout)
    try:
        await session.rerun()  # the login page
        run = await session.submit({session.find("text_input", label="Username"): name,
                                    session.find("text_input", label="Password"): user["password"]},
                                   session.find("button", label="Login"))
        if not tally.run(name, "login", session, run):  # a failed login: nothing else to do
            return
        actions, edits = 0, {}
        while time.monotonic() < deadline and actions != max_actions:
            await asyncio.sleep(args.think * rng.uniform(0.5, 1.5))
            actions += 1
            if actions % args.history_every == 0:
                run = await session.switch_page(HISTORY)
                tally.run(name, "history", session, run)
                if not run.contains(user["token"]):
                    tally.error("own record missing", f"{name} on History")
                tally.run(name, "explorer", session, await session.switch_page(EXPLORER))
                continue
            value = float(round(rng.uniform(10.0, 300.0), 1))
            run = await session.set(layer_table(session), table_edit(session, edits, 3, value))
            tally.run(name, "edit", session, run)
            if not run.contains_bytes(struct.pack("<d", value)):  # the redrawn table holds it (Arrow float64)
                tally.error("edit not taken", f"{name}: sent {value}, the table does not show it")
    except (ProtocolError, OSError) as exc:
        tally.error("timeout or disconnect", f"{name}: {exc}")
    except (LookupError, StopIteration) as exc:
        tally.error("page not as expected", f"{name}: {type(exc).__name__}: {exc}")
    finally:
        await session.close()


async def sample_memory(pids: dict[str, int], peaks: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for role, pid in pids.items():
            try:
                peaks[role] = max(peaks.get(role, 0.0), rss_mb(pid))
            except (OSError, RuntimeError):
                pass  # the worker may have ended
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def drive(url: str, users: dict, pids: dict[str, int], args) -> dict:
    tally = Tally(users)
    memory = {"server_idle_mb": rss_mb(pids["server"])}
    warm = Tally(users)  # one unmeasured visit first (an edit, History): imports, numba kernels, caches
    t0 = time.perf_counter()
    await user_session(url, next(iter(users)), warm, time.monotonic() + 600,
                       argparse.Namespace(**{**vars(args), "think": 0.0, "history_every": 2}), random.Random(0),
                       max_actions=2)
    warmup_s = time.perf_counter() - t0
    memory.update({f"{role}_before_mb": rss_mb(pid) for role, pid in pids.items()})
    cpu0 = {role: cpu_s(pid) for role, pid in pids.items()}
    peaks: dict[str, float] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pids, peaks, stop))
    deadline = time.monotonic() + args.seconds
    t1, client0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(user_session(url, name, tally, deadline, args, random.Random(i))
                           for i, name in enumerate(users)))
    elapsed = time.perf_counter() - t1
    stop.set()
    await sampler
    memory.update({f"{role}_peak_mb": peak for role, peak in peaks.items()})
    memory.update({f"{role}_after_mb": rss_mb(pid) for role, pid in pids.items() if Path(f"/proc/{pid}").exists()})
    return {"tally": tally, "warmup": warm, "warmup_s": warmup_s, "elapsed_s": elapsed, "memory": memory,
            "cpu_s": {"client": time.process_time() - client0,
                      **{role: cpu_s(pid) - cpu0[role] for role, pid in pids.items() if Path(f"/proc/{pid}").exists()}}}


def latency_table(seconds: dict[str, list[float]]) -> dict:
    return {action: {"n": len(v), "p50_ms": 1000 * float(np.percentile(v, 50)),
                     "p95_ms": 1000 * float(np.percentile(v, 95)), "max_ms": 1000 * max(v)}
            for action, v in seconds.items() if v}


def interrupted(signum, frame):
    """SIGTERM (a timeout, kill) ends the run through the finally blocks, as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the sessions act (logging in included)")
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between a session's actions (s)")
    parser.add_argument("--history-every", type=int, default=5, help="every Nth action opens History")
    parser.add_argument("--no-job", action="store_true", help="no training job (a baseline)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a Streamlit setting for the server, e.g. runner.postScriptGC=false (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one run may take before it is an error")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)
    work = Path(tempfile.mkdtemp(prefix="bench_load_"))
    os.environ["REFLECT_DATA_DIR"] = str(work / "data")
    secrets_file, login = work / "secrets.toml", work / "auth.yaml"
    secrets_file.write_text("")  # never the repository's own .streamlit/secrets.toml
    users = make_users(args.sessions)
    write_login_file(login, users)
    seed_history(users)
    owner = next(iter(users))
    env = {"REFLECT_SECRETS_FILE": str(secrets_file), "AUTH_CONFIG": str(login), "REFLECT_MODE": "shared",
           "REFLECT_SIGNUP": "off", "HF_HUB_OFFLINE": "1"}
    load_start = os.getloadavg()
    run_id = None
    try:
        run_id = None if args.no_job else start_job(owner, users[owner]["token"])
        options = dict(item.split("=", 1) for item in args.set)
        with serve(REPO / "app.py", env=env, log=work / "server.log", options=options) as (url, server):
            pids = {"server": server.pid}
            for _ in range(100 if run_id else 0):  # the worker's pid once it has started (it may still be queued)
                if job_info(run_id).pid:
                    pids["worker"] = job_info(run_id).pid
                    break
                time.sleep(0.1)
            out = asyncio.run(asyncio.wait_for(drive(url, users, pids, args), args.seconds + 300))
        job = job_info(run_id) if run_id else None
    except BaseException:
        log = work / "server.log"
        if log.exists():
            print("server log (tail):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        raise
    finally:
        if run_id:
            end_job(run_id, owner)
        shutil.rmtree(work, ignore_errors=True)
    tally = out["tally"]
    summary = {
        "sessions": args.sessions, "seconds": args.seconds, "think_s": args.think, "history_every": args.history_every,
        "streamlit_settings": args.set, "job_running": not args.no_job,
        "cpus": os.cpu_count(), "loadavg_before": load_start, "loadavg_after": os.getloadavg(),
        "warmup_s": out["warmup_s"], "warmup_errors": dict(out["warmup"].errors), "elapsed_s": out["elapsed_s"],
        "latency": latency_table(tally.seconds), "errors": dict(tally.errors), "error_examples": dict(tally.examples),
        "leaks": tally.errors.get("leak", 0), "messages_checked": tally.checked_messages,
        "memory": out["memory"], "cpu_s_during_test": out["cpu_s"],
        "job": {"state": job.state, "epochs_done": len(job.progress.train_loss)} if job else None,
    }
    edit_p95 = summary["latency"].get("edit", {}).get("p95_ms", float("inf"))
    summary["target_met"] = edit_p95 <= EDIT_TARGET_MS and not tally.errors and not out["warmup"].errors
    runs = sum(len(v) for v in tally.seconds.values())
    summary["actions_per_s"] = runs / out["elapsed_s"]
    # Every session's script runs in the server's one process, under one GIL: this bounds the throughput.
    summary["server_cpu_ms_per_run"] = 1000 * out["cpu_s"]["server"] / max(runs, 1)
    report(summary)
    write_results("load", summary)
    return summary


def report(s: dict) -> None:
    print(f"{s['sessions']} sessions for {s['elapsed_s']:.0f} s (think {s['think_s']:g} s), "
          f"warm-up {s['warmup_s']:.1f} s, load average {s['loadavg_before'][0]:.2f} -> "
          f"{s['loadavg_after'][0]:.2f} on {s['cpus']} CPUs")
    for action, row in s["latency"].items():
        print(f"  {action:9s} n={row['n']:4d}  p50 {row['p50_ms']:6.0f} ms  p95 {row['p95_ms']:6.0f} ms  "
              f"max {row['max_ms']:6.0f} ms")
    print(f"  errors {sum(s['errors'].values())} {s['errors'] or ''}; leaks {s['leaks']} "
          f"({s['messages_checked']} messages checked)")
    for kind, examples in s["error_examples"].items():
        print(f"    {kind}: {examples[0]}")
    m = s["memory"]
    print("  memory (MB): " + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in m.items()))
    print(f"  CPU seconds during the test: {s['cpu_s_during_test']}; job {s['job']}")
    print(f"  {s['actions_per_s']:.1f} runs/s in all, {s['server_cpu_ms_per_run']:.0f} ms of server CPU per run; "
          f"warm-up errors {s['warmup_errors'] or 0}")
    print(f"  target (edit p95 ≤ {EDIT_TARGET_MS} ms, 0 errors, 0 leaks): {'met' if s['target_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
