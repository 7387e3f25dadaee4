import numpy as np
import pytest

from reflect_core.formats.curves import CurveError, csv_text, matching_grid, parse_curve, q_grid, read_curve


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


def test_one_line_of_column_names_is_read_past():
    # The curve CSV the explorer and the CLI write (one header line) reads back as a curve.
    q = np.geomspace(0.01, 0.2, 5)
    curve = parse_curve(csv_text(["Q (Å^-1)", "R", "dR"], [q, q**-4 * 1e-8, q**-4 * 1e-9]), "download.csv")
    np.testing.assert_allclose(curve.q, q, rtol=1e-9)
    assert curve.dr is not None and curve.dq is None
    with pytest.raises(CurveError, match="line 2: not numbers"):
        parse_curve("Q R\nQ R\n0.01 1\n")  # only one such line
    with pytest.raises(CurveError, match="line 2: not numbers"):
        parse_curve("0.01 1\nQ R\n")  # and only before the data


def test_matching_grid_of_the_real_file_stays_inside_it(shared_data_path):
    curve = read_curve(shared_data_path)
    grid = matching_grid(curve)
    assert grid["qmin"] == curve.q.min() and grid["qmax"] == curve.q.max()
    assert grid["nq"] == np.unique(curve.q).size  # repeated Q of overlapping segments count once
    assert abs(grid["dq"] - np.median(curve.dq / curve.q)) < 1e-12 and 0.02 < grid["dq"] < 0.04
    q = q_grid(grid["qmin"], grid["qmax"], grid["nq"])
    assert q[0] >= curve.q.min() * (1 - 1e-12) and q[-1] <= curve.q.max() * (1 + 1e-12)
    assert matching_grid(parse_curve("0.01 1\n0.02 0.5\n"))["dq"] is None  # no dQ column


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf0.01 1\n0.02 0.5\n", b"\xef\xbb\xbfQ,R\n0.01,1\n0.02,0.5\n",
                                 "\ufeff0.01 1\n0.02 0.5\n"])
def test_a_utf8_byte_order_mark_is_read_past(raw):
    curve = parse_curve(raw, "bom.csv")
    np.testing.assert_array_equal(curve.q, [0.01, 0.02])
    np.testing.assert_array_equal(curve.r, [1, 0.5])


def test_an_orso_file_is_not_read_as_plain_columns():
    # Its Q may be in 1/nm and its resolution a 1-sigma width: only the ORSO reader knows.
    with pytest.raises(CurveError, match="run.ort: an ORSO file"):
        parse_curve("# # ORSO reflectivity data file | 1.2 standard | YAML encoding\n# Qz (1/nm) R\n0.1 1\n0.2 0.5\n",
                    "run.ort")
