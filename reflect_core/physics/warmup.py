"""The numba kernels compiled without making anyone wait.

Compiling the four kernels (``kernel._parratt``, ``resolution._window_weights`` and
``_smear_near_edges``, ``profile._erf_profile``) takes ~10 s of CPU (more on a loaded or
fractional-core box); loading them from numba's on-disk cache takes ~0.5 s. ``start_warmup``
(app.py calls it when the server first runs the script) returns at once; a background thread
has a child process compile the kernels into the cache when it lacks them, then loads them
from there. In a child, compiling neither holds the server's GIL while a page renders nor
leaves LLVM's working memory (~60 MB) in the server; if the child fails, the thread compiles
here. Until the kernels are loaded, this process computes with their numpy twins, tested equal
to them: fast enough for the explorer's one film (milliseconds), not for batches. A process
that never starts a warm-up (workers, the command line, tests) compiles or loads on first use.

The cache is numba's own (``cache=True``): in ``NUMBA_CACHE_DIR`` when set, else in
``__pycache__`` beside the sources when writable (a Community Cloud checkout under /mount/src
is), else ~/.cache/numba. Entries are keyed by the source file's mtime, numba's version and
the CPU, so they cannot ship with the repository: the server's warm-up writes them, and the
worker processes that train and fit load them instead of compiling again.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the child's working directory: reflect_core need not be installed
COMPILE_TIMEOUT_S = 600.0
CHILD = "from reflect_core.physics.warmup import compile_kernels; compile_kernels()"  # no warm-up there: compiles

_lock = threading.Lock()
_started = False
_done = threading.Event()  # set once the compiled kernels are loaded, or the warm-up failed
_failed = False
_in_warmup = threading.local()  # the warm-up thread itself always calls the compiled kernels


def start_warmup() -> None:
    """Compile (or load from the cache) every kernel in a background thread; returns at once.
    Idempotent: only the first call in a process starts anything."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_warm, name="numba-warmup", daemon=True).start()


def use_compiled() -> bool:
    """Whether kernels run compiled now: yes unless a warm-up is under way (or failed) in this
    process, in which case the numpy twins give the same numbers without waiting."""
    return (not _started or getattr(_in_warmup, "active", False)
            or (_done.is_set() and not _failed))


def wait_for_warmup(timeout: float | None = None) -> bool:
    """Block until a warm-up started in this process has ended (at once when none was); True when
    the compiled kernels are in use. For timings that must be of the compiled kernels."""
    return not _started or (_done.wait(timeout) and not _failed)


def _kernels():
    from reflect_core.physics import kernel, profile, resolution

    return (kernel._parratt, resolution._window_weights, resolution._smear_near_edges, profile._erf_profile)


def _warm() -> None:
    global _failed
    _in_warmup.active = True
    try:
        if not kernels_compiled():
            _compile_apart()
        compile_kernels()  # loads what the child cached; compiles here if it could not
    except Exception:  # noqa: BLE001 - the page keeps the numpy twins; the reason goes to the server's log
        _failed = True
        logging.getLogger(__name__).exception("compiling the numba kernels failed; using their numpy twins")
    finally:
        _done.set()


def _compile_apart() -> None:
    log = logging.getLogger(__name__)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                              text=True, timeout=COMPILE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("compiling the kernels in a child process failed (%s); compiling them here", exc)
        return
    if done.returncode != 0:
        log.warning("compiling the kernels in a child process failed (%s); compiling them here",
                    (done.stderr.strip().splitlines() or ["no message"])[-1])


def compile_kernels() -> None:
    """Compile or load every kernel now, in this thread: each runs once, through the public
    functions, so the compiled signatures are the ones the pages use (a film with absorption
    and a critical edge inside a smeared Q grid)."""
    import numpy as np

    from reflect_core.physics.film import Film, Layer
    from reflect_core.physics.profile import film_microslabs, sld_profile
    from reflect_core.physics.reflectivity import reflectivity

    film = Film(layers=(Layer("Si", 2.07, 0.0, 0.0, 3.0), Layer("Ni", 9.4, 0.01, 50.0, 5.0),
                        Layer("air", 0.0)))
    stacks = film.beam_array()[None]
    reflectivity(stacks, np.geomspace(0.004, 0.3, 97), 0.03)  # an odd grid: its plan is built here, not cached
    sld_profile(stacks)
    film_microslabs(stacks)


def kernels_compiled() -> bool:
    """True when this process runs the compiled kernels, or numba's cache holds all of them
    for this source, numba and CPU (a new process then loads them in well under a second)."""
    if _done.is_set() and not _failed:
        return True
    try:
        return all(_cached(dispatcher) for dispatcher in _kernels())
    except Exception:  # noqa: BLE001 - numba's cache internals changed: say "not known to be cached"
        return False


def _cached(dispatcher) -> bool:
    if dispatcher.signatures:  # compiled or loaded in this process
        return True
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "_cache_file"):  # caching off (NUMBA_DISABLE_JIT, cache=False)
        return False
    magic = dispatcher.targetctx.codegen().magic_tuple()  # this CPU and its features
    # numba's index: {(signature, magic, code hashes): data file}, empty when stale (mtime, version).
    return any(key[1] == magic for key in cache._cache_file._load_index())


def kernel_cache_dir() -> Path | None:
    """Where numba keeps the compiled kernels (None when caching is off)."""
    cache = getattr(_kernels()[0], "_cache", None)
    path = getattr(cache, "cache_path", None)
    return Path(path) if path else None
