"""The hostile-input suite: every file of a generated corpus (tests/hostile_corpus.py, over 200
files across every upload and import route) goes through its route in its own child process.

Asserted for each file: the process survives (no crash, no kill), nothing in it ran (the
canary file stays absent), a refusal is a ``ReflectError`` whose message names the file and
shows no server path, a legitimate control is accepted and its page renders, and checking
and keeping it took at most 10 s and 512 MB above the process's start (the budget one visitor
may take from a shared server). A summary table is printed (``pytest -s``) and written to
``tests/artifacts/hostile_summary.txt``.
"""

from pathlib import Path

import hostile_corpus as corpus
import hostile_runner as runner
import pytest
from conftest import ROOT

MAX_SECONDS = 10.0
MAX_MB = 512.0


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    canary = base / "EXECUTED"
    results = []
    for i, case in enumerate(corpus.cases(str(canary))):
        outcome = runner.run(case, base / f"data{i}")
        results.append((outcome, canary.exists()))
        canary.unlink(missing_ok=True)
    _write_summary([o for o, _ in results], base)
    yield results, base


def _write_summary(results, base: Path) -> None:
    counts = {s: sum(o.status == s for o in results) for s in ("accepted", "refused", "error", "crashed", "killed")}
    slowest = max(results, key=lambda o: o.seconds)
    largest = max(results, key=lambda o: o.peak_mb)
    lines = [f"{len(results)} files: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
             f"slowest: {slowest.case.route}/{slowest.case.name} {slowest.seconds:.2f} s",
             f"largest memory: {largest.case.route}/{largest.case.name} {largest.peak_mb:.0f} MB"]
    lines += [f"{o.status:8s} {o.seconds:6.2f} s {o.peak_mb:7.1f} MB  {o.case.route}/{o.case.name}: "
              f"{(o.message or o.render_error or '')[:160]}" for o in results]
    text = "\n".join(lines).replace(str(base), "<tmp>")
    out = ROOT / "tests" / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "hostile_summary.txt").write_text(text + "\n")
    print("\n" + "\n".join(lines[:3]))


def test_the_corpus_covers_every_route_with_over_200_files():
    cases = corpus.cases("/nonexistent/canary")
    assert len(cases) >= 200
    assert {c.route for c in cases} == set(corpus.ROUTES)
    assert all(any(not c.accept for c in cases if c.route == r) for r in corpus.ROUTES)


def test_no_file_crashes_the_process_or_runs_code(outcomes):
    outcomes, _ = outcomes
    bad = [f"{o.case.route}/{o.case.name}: {o.status} {o.message}" for o, _ in outcomes
           if o.status in ("crashed", "killed", "error")]
    ran = [f"{o.case.route}/{o.case.name}" for o, executed in outcomes if executed]
    assert not bad, "\n".join(bad)
    assert not ran, f"code ran for: {ran}"


def test_hostile_files_are_refused_with_their_name_and_no_server_path(outcomes):
    outcomes, base = outcomes  # the data directories of the runs live under base
    wrong = []
    for o, _ in outcomes:
        if o.case.accept:
            continue
        if o.status != "refused":
            wrong.append(f"{o.case.route}/{o.case.name} ({o.case.why}): {o.status}")
        elif o.case.name.strip() not in o.message:
            wrong.append(f"{o.case.route}/{o.case.name}: the message does not name the file: {o.message}")
        elif str(base) in o.message or str(ROOT) in o.message:
            wrong.append(f"{o.case.route}/{o.case.name}: the message shows a server path: {o.message}")
    assert not wrong, "\n".join(wrong)


def test_legitimate_files_are_accepted_and_render_on_their_page(outcomes):
    outcomes, _ = outcomes
    wrong = [f"{o.case.route}/{o.case.name} ({o.case.why}): {o.status} {o.message} {o.render_error or ''}"
             for o, _ in outcomes if o.case.accept and (o.status != "accepted" or o.render_error)]
    assert not wrong, "\n".join(wrong)


def test_every_file_is_handled_within_10_s_and_512_mb(outcomes):
    outcomes, _ = outcomes
    over = [f"{o.case.route}/{o.case.name}: {o.seconds:.1f} s, {o.peak_mb:.0f} MB" for o, _ in outcomes
            if o.status in ("accepted", "refused") and (o.seconds > MAX_SECONDS or o.peak_mb > MAX_MB)]
    assert not over, "\n".join(over)
