"""Small kernel calls run on the calling thread, with the same results and the thread count restored."""

import numba
import numpy as np
import pytest

from reflect_core.physics import kernel, threads, warmup
from reflect_core.physics.threads import SERIAL_BELOW, serial_if_small


def test_a_small_call_runs_on_one_thread_and_restores_the_count():
    before = numba.get_num_threads()
    with serial_if_small(SERIAL_BELOW - 1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with serial_if_small(SERIAL_BELOW):
        assert numba.get_num_threads() == before  # a large call keeps every thread


def test_the_count_is_restored_when_the_kernel_raises():
    before = numba.get_num_threads()
    with pytest.raises(RuntimeError), serial_if_small(1):
        raise RuntimeError("kernel failed")
    assert numba.get_num_threads() == before


def test_serial_and_parallel_reflectivity_agree_bit_for_bit(monkeypatch):
    rng = np.random.default_rng(1)
    stacks = np.zeros((3, 5, 4))
    stacks[:, :, 0] = rng.uniform(-0.5, 6.5, (3, 5))
    stacks[:, 1:-1, 2] = rng.uniform(10, 200, (3, 3))
    stacks[:, :-1, 3] = rng.uniform(0, 10, (3, 4))
    q = np.linspace(0.005, 0.3, 400)
    assert warmup.wait_for_warmup(600) and warmup.use_compiled()  # the numba kernel, not its numpy twin
    monkeypatch.setattr(threads, "SERIAL_BELOW", 10**9)
    serial = kernel.parratt(q, stacks)
    monkeypatch.setattr(threads, "SERIAL_BELOW", 0)
    parallel = kernel.parratt(q, stacks)
    assert np.array_equal(serial, parallel)  # the same arithmetic per (film, Q) pair, only the thread differs
