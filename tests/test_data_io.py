import numpy as np
import pytest

from reflect_core.data_io import CurveError, parse_curve, q_grid, read_curve


def test_reads_liquids_reflectometer_file(shared_data_path):
    curve = read_curve(shared_data_path)
    assert curve.dq is not None and curve.q.size > 400
    assert np.sum(curve.r < 0) == 2  # kept as measured; plotting on a log axis drops them
    assert np.unique(curve.q).size < curve.q.size  # overlapping angle segments repeat Q
    assert np.all(np.diff(curve.sorted().q) >= 0)


@pytest.mark.parametrize("raw, message", [
    (b"\x89PNG\r\n\x1a\n\x00", "not a text file"),
    ("1 2 3 4 5\n", "5 columns"),
    ("0.01 1 0.1 -0.001\n", "dQ"),
    ("0.01 inf\n", "non-finite"),
    ("", "no data"),
])
def test_bad_curves_rejected(raw, message):
    with pytest.raises(CurveError, match=message):
        parse_curve(raw, "upload.txt")


def test_size_limit_checked_before_parsing():
    with pytest.raises(CurveError, match="limit"):
        parse_curve(b"0" * 20_000_001)


def test_q_grid_shapes():
    assert np.allclose(q_grid(0.0081, 0.1975, 308)[[0, -1]], [0.0081, 0.1975])
    assert np.allclose(np.diff(q_grid(0.01, 0.1, 10, "linear")), 0.01)
    for args in [(0.1, 0.01, 10), (0.0, 0.1, 10), (0.01, 0.1, 1)]:
        with pytest.raises(ValueError):
            q_grid(*args)
