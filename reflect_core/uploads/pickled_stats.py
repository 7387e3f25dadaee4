"""pyreflect's pickled .npy stats, converted for the command line (``import-pyreflect``) in a
separate, short-lived process, so that no pickle is ever loaded by the process that asks.

Guards against: a pickle that crashes its reader (a segfault kills only the child), takes
memory (the child's address space is limited, 512 MB by default) or time (CPU seconds and a
wall-clock timeout), runs code (the child's unpickler knows stand-ins for numpy's globals only,
and the child can neither write files nor start processes), and answers that are not the eight
numbers of pyreflect's stats (checked again here, by ``check_pyreflect_stats``). Each of these
is one ``UploadError`` line; the child's own code is ``formats/pyreflect_pickle.py``, run as a
script and never imported. The server's uploads never come here: they refuse .npy stats.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile

from reflect_core.uploads.common import error
from reflect_core.uploads.pyreflect import MAX_STATS_BYTES, check_pyreflect_stats

HELPER = "reflect_core.formats.pyreflect_pickle"
MEMORY_BYTES = 512 * 1024 * 1024
CPU_SECONDS = 10
TIMEOUT_S = 30.0
MAX_ANSWER = 100_000  # bytes of JSON from the child: eight numbers need a few hundred


def _helper_path() -> str:
    spec = importlib.util.find_spec(HELPER)  # located, not imported
    if spec is None or not spec.origin:
        raise RuntimeError(f"{HELPER} is missing from this installation")
    return spec.origin


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stats_from_pickled_npy(filename: str, data: bytes, *, memory_bytes: int | None = None,
                           cpu_seconds: int | None = None, timeout_s: float | None = None) -> dict:
    """pyreflect's ``{"nr": {"x", "y"}, "sld": {"x", "y"}}`` stats as plain floats, read from its
    pickled .npy in a child process with ``memory_bytes`` of address space, ``cpu_seconds`` of CPU
    and ``timeout_s`` of wall time (by default ``MEMORY_BYTES``, ``CPU_SECONDS``, ``TIMEOUT_S``);
    any failure there is an UploadError naming ``filename``."""
    memory_bytes, cpu_seconds = memory_bytes or MEMORY_BYTES, cpu_seconds or CPU_SECONDS
    timeout_s = timeout_s or TIMEOUT_S
    if len(data) > MAX_STATS_BYTES:
        raise error(filename, f"{len(data):,} bytes is over the {MAX_STATS_BYTES:,}-byte limit for stats")
    command = [sys.executable, "-I", "-S", _helper_path(), str(memory_bytes), str(cpu_seconds)]
    try:
        with tempfile.TemporaryDirectory(prefix="pyreflect-stats-") as empty:
            done = subprocess.run(command, input=data, capture_output=True, timeout=timeout_s, cwd=empty,
                                  env={"LC_ALL": "C.UTF-8"}, close_fds=True, check=False)
    except subprocess.TimeoutExpired:
        raise error(filename, f"reading its pickle took over {timeout_s:g} s in the isolated reader; "
                              f"refused") from None
    if done.returncode < 0:
        raise error(filename, f"its pickle crashed the isolated reader ({_signal_name(-done.returncode)}); "
                              f"refused (nothing else was affected)")
    try:
        answer = json.loads(done.stdout[:MAX_ANSWER]) if len(done.stdout) <= MAX_ANSWER else None
    except ValueError:
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict) or not ({"stats"} == answer.keys()
                                                                    or {"error"} == answer.keys()):
        raise error(filename, f"the isolated reader of its pickle failed (exit status {done.returncode}); "
                              f"refused")
    if "error" in answer:
        raise error(filename, str(answer["error"])[:300])
    return check_pyreflect_stats(filename, answer["stats"])
