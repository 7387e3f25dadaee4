"""Runs one corpus file through its route as the pages do (check, keep, then render the page
that shows it) in a child process forked from a clean fork server, and measures what it cost.

The child resets its peak-RSS counter (``/proc/self/clear_refs``, 5) right after the fork, so
``peak_mb`` is the memory this one file made the process take on top of what it already had.
The parent kills a child that runs past ``WALL_LIMIT_S`` or grows past ``RSS_KILL_MB``, and
counts a child that dies without answering (a segfault, a kill) as a crash.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import hostile_corpus as corpus

WALL_LIMIT_S = 60.0
RSS_KILL_MB = 3000.0
# A shared deployment's profile: the one an attacker meets. Its upload limit is the door's width.


@dataclass(frozen=True)
class Outcome:
    case: corpus.Case
    status: str  # "accepted", "refused", "error" (an unhandled exception), "crashed", "killed"
    message: str
    seconds: float  # checking and keeping the file
    peak_mb: float  # peak RSS over the child's start, for checking and keeping
    render_error: str | None  # accepted files: what their page showed instead of rendering, if anything


def _rss_kb(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def keep(case: corpus.Case, user) -> None:
    """Check and keep the file exactly as its page does; ``ReflectError`` when refused."""
    from reflect_core.accounts.limits import SHARED, LimitError, check_film
    from reflect_core.store import importer, user_curves, user_files
    from reflect_core.uploads import validate_upload
    from reflect_core.uploads.curves import validate_curves

    max_bytes = SHARED.upload_bytes

    if case.route in ("nr", "sld"):
        partner_role = "sld" if case.route == "nr" else "nr"
        partner = corpus.npy(corpus.profiles() if case.route == "nr" else corpus.curves())
        accepted = validate_upload(case.name, case.data, case.route, max_bytes)
        other = validate_upload("partner.npy", partner, partner_role, max_bytes)
        pair = {case.route: (case.name, case.data, accepted.content.shape),
                partner_role: ("partner.npy", partner, other.content.shape)}
        user_files.save_array_pair(user, pair["nr"], pair["sld"], limits=SHARED)
    elif case.route == "curve":  # the Models page and the Analyse page: one data set or several (ORSO)
        found = validate_curves(case.name, case.data, max_bytes).content
        user_curves.save_curves(user, case.name, case.data, found, limits=SHARED)
    elif case.route == "model":
        validate_upload(case.name, case.data, "model", max_bytes)
        user_files.add_model_zip(user, case.name, case.data, max_bytes, limits=SHARED)
    elif case.route == "film":  # the explorer: the file's checks, then the profile's layer limit
        film = validate_upload(case.name, case.data, "film", max_bytes).content
        try:
            check_film(film, SHARED)
        except LimitError as exc:
            raise LimitError([f"{case.name}: {exc}"], SHARED) from None
    elif case.route in ("pyreflect_weights", "pyreflect_stats"):
        validate_upload(case.name, case.data, case.route, max_bytes)
    elif case.route == "bundle":
        importer.import_bundle(user, case.name, case.data, max_bytes)
    elif case.route == "json":
        importer.import_json(user, case.name, case.data)


PAGES = {"nr": "app_pages/train.py", "sld": "app_pages/train.py", "curve": "app_pages/models.py",
         "model": "app_pages/models.py", "bundle": "app_pages/history.py", "json": "app_pages/history.py"}


def render(case: corpus.Case, data: bytes) -> str | None:
    """The page that shows an accepted file, run by AppTest; None when it rendered cleanly."""
    from streamlit.testing.v1 import AppTest

    if case.route == "film":  # the explorer draws an uploaded film: its curve and profile
        from reflect_core.physics.simulate import CurveSettings, film_profile, film_reflectivity
        from reflect_core.uploads import validate_upload

        film = validate_upload(case.name, data, "film", len(data)).content
        film_reflectivity(film, corpus.Q, CurveSettings())
        film_profile(film)
        return None
    if case.route not in PAGES:
        return None
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(PAGES[case.route]).run()
    if case.route == "nr":  # the uploaded set is a data source of the Train page
        app.radio(key="train_source").set_value("upload").run()
    if case.route in ("bundle", "json"):  # open every record: each must render on its own
        records = app.multiselect(key="history_selected").options
        app.multiselect(key="history_selected").set_value(list(records)[:1]).run()
    problems = [e.value for e in app.exception] + [e.value for e in app.error]
    return "; ".join(str(p) for p in problems) or None


def _child(case: corpus.Case, data_dir: str, answer) -> None:
    os.environ["REFLECT_DATA_DIR"] = data_dir
    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.base.errors import ReflectError

    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS counts from here
    except OSError:
        pass
    start_kb = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    try:
        keep(case, LOCAL_USER)
        status, message = "accepted", ""
    except ReflectError as exc:
        status, message = "refused", str(exc)
    except BaseException as exc:  # noqa: BLE001 - anything else is a finding
        status, message = "error", "".join(traceback.format_exception_only(exc)).strip()[:2000]
    seconds = time.perf_counter() - t0
    peak_mb = (_rss_kb("VmHWM") - start_kb) / 1024
    render_error = None
    if status == "accepted":
        try:
            render_error = render(case, case.data)
        except BaseException as exc:  # noqa: BLE001
            render_error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
    answer.send((status, message, seconds, peak_mb, render_error))


def _context():
    """Children come from a fork server started before anything ran in this process: a plain fork of
    the test process fails once an earlier test has run numba's parallel kernels ("fork() called from
    a process already using GNU OpenMP"); the server preloads the app's modules, so a child starts
    as fast as a fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hostile_runner", "reflect_core.uploads", "streamlit.testing.v1"])
    return context


def run(case: corpus.Case, data_dir: Path) -> Outcome:
    context = _context()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(case, str(data_dir), send))
    child.start()
    send.close()
    deadline, killed = time.monotonic() + WALL_LIMIT_S, None
    base_kb = None
    while child.is_alive() and not receive.poll(0.02):
        try:
            rss = _rss_kb("VmRSS", str(child.pid))
        except (OSError, ValueError):
            continue
        base_kb = rss if base_kb is None else base_kb
        if time.monotonic() > deadline or rss - base_kb > RSS_KILL_MB * 1024:
            killed = "over time" if time.monotonic() > deadline else f"over {RSS_KILL_MB:.0f} MB"
            child.kill()
    answer = receive.recv() if not killed and receive.poll(WALL_LIMIT_S) else None
    child.join(10)
    if answer is None:
        status = "killed" if killed else "crashed"
        return Outcome(case, status, killed or f"exit code {child.exitcode}", WALL_LIMIT_S, 0.0, None)
    return Outcome(case, *answer)
