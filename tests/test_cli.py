"""python -m reflect_core simulate / profile, as a user runs them."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from reflect_core.cli import main
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.physics.simulate import PYREFLECT_QMAX, PYREFLECT_QMIN, CurveSettings, film_reflectivity


@pytest.fixture
def film_file(tmp_path):
    path = tmp_path / "film.json"
    path.write_text(DEFAULT_FILM.to_json())
    return path


def read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=float)


def test_simulate_writes_q_r_csv(film_file, tmp_path):
    out = tmp_path / "curve.csv"
    assert main(["simulate", str(film_file), "--nq", "50", "--dq", "0.03", "--out", str(out)]) == 0
    header, data = read_csv(out)
    assert header == ["Q", "R"] and data.shape == (50, 2)
    q = np.geomspace(PYREFLECT_QMIN, PYREFLECT_QMAX, 50)
    np.testing.assert_allclose(data[:, 0], q, rtol=1e-9)
    np.testing.assert_allclose(data[:, 1], film_reflectivity(DEFAULT_FILM, q, CurveSettings(dq=0.03)), rtol=1e-8)


def test_simulate_linear_spacing_background_scale(film_file, tmp_path):
    out = tmp_path / "c.csv"
    main(["simulate", str(film_file), "--qmin", "0.01", "--qmax", "0.1", "--nq", "10", "--spacing", "linear",
          "--bkg", "1e-6", "--scale", "0.9", "--dq", "0", "--out", str(out)])
    _, data = read_csv(out)
    np.testing.assert_allclose(np.diff(data[:, 0]), 0.01, rtol=1e-6)
    plain = film_reflectivity(DEFAULT_FILM, data[:, 0], CurveSettings(dq=0))
    np.testing.assert_allclose(data[:, 1], 0.9 * plain + 1e-6, rtol=1e-8)


def test_q_file_four_columns_uses_its_dq(film_file, tmp_path):
    qfile = tmp_path / "data.txt"
    q = np.geomspace(0.01, 0.15, 30)
    dq = 0.05 * q
    np.savetxt(qfile, np.column_stack([q, np.ones_like(q), np.ones_like(q), dq]), header="Q R dR dQ")
    out_file, out_const = tmp_path / "a.csv", tmp_path / "b.csv"
    main(["simulate", str(film_file), "--q-file", str(qfile), "--out", str(out_file)])
    main(["simulate", str(film_file), "--q-file", str(qfile), "--dq", "0.05", "--out", str(out_const)])
    a, b = read_csv(out_file)[1], read_csv(out_const)[1]
    np.testing.assert_allclose(a, b, rtol=1e-10)  # per-point FWHM 5 % of Q == dq/Q 0.05


def test_q_file_single_column_comma_separated(film_file, tmp_path):
    qfile = tmp_path / "q.csv"
    qfile.write_text("# my Q values\n0.01,\n0.02\n0.05\n")
    out = tmp_path / "c.csv"
    assert main(["simulate", str(film_file), "--q-file", str(qfile), "--out", str(out)]) == 0
    assert read_csv(out)[1].shape == (3, 2)


def test_real_measured_file(film_file, tmp_path, shared_data_path):
    out = tmp_path / "c.csv"
    assert main(["simulate", str(film_file), "--q-file", str(shared_data_path), "--out", str(out)]) == 0
    _, data = read_csv(out)
    assert data.shape[0] > 400 and np.all(np.isfinite(data))


def test_pyreflect_export_and_profile(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"params": {"layers": json.loads(DEFAULT_FILM.to_json())["layers"]}, "result": {}}))
    out = tmp_path / "p.csv"
    assert main(["profile", str(export), "--npoints", "200", "--out", str(out)]) == 0
    header, data = read_csv(out)
    assert header == ["z", "sld"] and data.shape == (200, 2)
    assert abs(data[0, 1] - 2.07) < 1e-3


@pytest.mark.parametrize(
    "content, args, message",
    [
        ("{", [], "not valid JSON"),
        ('{"layers": [{"sld": 1}, {"sld": 1, "thickness": -2}, {"sld": 0}]}', [], "thickness"),
        (None, ["--qmin", "0.2", "--qmax", "0.1"], "Q min"),
        (None, ["--nq", "1"], "at least 2"),
        (None, ["--dq", "-1"], "dq"),
    ],
)
def test_errors_are_one_line_and_exit_2(tmp_path, film_file, content, args, message):
    path = film_file
    if content is not None:
        path = tmp_path / "bad.json"
        path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "reflect_core", "simulate", str(path), *args, "--out", str(tmp_path / "o.csv")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_missing_and_bad_q_files(tmp_path, film_file, capsys):
    bad = tmp_path / "q.txt"
    for text, message in [("0.01 1\n-0.02 1\n", "Q ≤ 0"), ("0.01 nan\n", "non-finite"), ("0.01 1\n0.02\n", "columns"),
                          ("abc\n", "no data"), ("# only\n", "no data")]:
        bad.write_text(text)
        assert main(["simulate", str(film_file), "--q-file", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
        assert message in capsys.readouterr().err, message
    assert main(["simulate", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.csv")]) == 2


def test_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "reflect_core", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "simulate" in proc.stdout and "profile" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "reflect_core", "simulate", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    assert "--q-file" in proc.stdout and "FWHM" in proc.stdout


def _write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def _failing_commands(tmp_path, film_file):
    """(command line, what the one-line message must say): one failing input per command."""
    blocked = tmp_path / "a_file"
    blocked.write_text("a file, so nothing can be written below it")
    curve = tmp_path / "curve.txt"
    curve.write_text("0.01 0.5\n0.02 0.01\n0.03 0.001\n")
    nr = tmp_path / "nr.npy"
    np.save(nr, np.ones((2, 2, 10)))
    return [
        (["simulate", str(film_file), "--out", str(blocked / "o.csv")], "a_file"),  # unwritable output
        (["profile", str(film_file), "--out", str(blocked / "p.csv")], "a_file"),
        (["generate", _write_json(tmp_path / "g.json", {"n": -5}), "--out", str(tmp_path / "g")], "dataset.n"),
        (["train", _write_json(tmp_path / "t.json", {"dataset": {}, "modle": {}}), "--out", str(tmp_path / "t")],
         "unknown fields"),
        (["predict", str(tmp_path / "no_such_run" / "model"), "--nr", str(nr), "--out", str(tmp_path / "p.npy")],
         "not a model directory"),  # a run that does not exist
        (["analyse", str(tmp_path / "no_such_run"), str(curve), "--out", str(tmp_path / "a.csv")],
         "not a model directory"),
        (["import-pyreflect", str(tmp_path / "missing.pth"), str(tmp_path / "missing.json")], "cannot read"),
    ]


def test_every_command_fails_with_one_line_and_exit_2(tmp_path, film_file, capsys):
    for argv, message in _failing_commands(tmp_path, film_file):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)


def test_hash_password_refuses_a_short_password(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["hash-password", "--stdin"]) == 2
    assert capsys.readouterr().err == "error: use a password of at least 8 characters\n"


def test_a_damaged_model_file_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{ not json")
    (model / "model.pt").write_bytes(b"")
    nr = tmp_path / "nr.npy"
    np.save(nr, np.ones((1, 2, 10)))
    assert main(["predict", str(model), "--nr", str(nr), "--out", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.json is not valid JSON" in err
