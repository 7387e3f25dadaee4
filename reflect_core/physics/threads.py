"""Small kernel calls run on the calling thread.

numba's parallel kernels hand their work to a thread pool. For a small call (one film in the
explorer: a few hundred Q points) the hand-off costs more than the work, and on a busy server it
waits for a free core: the explorer's two kernel calls took ~10 ms per edit under load instead of
~0.3 ms. ``numba.set_num_threads`` is per calling thread, so other sessions are not affected.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba

SERIAL_BELOW = 5_000  # work items (film × point pairs): ≤ 0.7 ms on one core, measured


@contextmanager
def serial_if_small(work_items: int):
    if work_items >= SERIAL_BELOW:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
