"""python -m reflect_core fit, as a user runs it: a small synthetic curve end to end (local, global,
MCMC, a network's start) and every way the inputs can be wrong (one line on stderr, exit 2)."""

import json

import numpy as np
import pytest

from reflect_core.cli import main
from reflect_core.formats.curves import csv_text
from reflect_core.physics.film import film_from_dict
from reflect_core.physics.simulate import CurveSettings, film_reflectivity

TRUE = {"name": "polymer on Si", "layers": [
    {"name": "Si", "sld": 2.07, "isld": 0, "thickness": 0, "roughness": 3},
    {"name": "SiO2", "sld": 3.47, "isld": 0, "thickness": 15, "roughness": 4},
    {"name": "polymer", "sld": 1.5, "isld": 0, "thickness": 120, "roughness": 5},
    {"name": "air", "sld": 0.0, "isld": 0, "thickness": 0, "roughness": 0}]}
N_POINTS, DQ_FRACTION, REL_ERROR = 80, 0.03, 0.05


def synthetic(seed=1):
    """Q, R, dR, dQ of the true film: dR 5 % of R (+1e-7), R drawn with that 1σ; dQ FWHM 3 % of Q."""
    q = np.geomspace(0.008, 0.2, N_POINTS)
    dq = DQ_FRACTION * q
    r_true = film_reflectivity(film_from_dict(TRUE), q, CurveSettings(dq=DQ_FRACTION, background=1e-7), dq_abs=dq)
    dr = REL_ERROR * r_true + 1e-7
    r = r_true + dr * np.random.default_rng(seed).standard_normal(q.size)
    return q, r, dr, dq


def fit_config(thickness=110.0, sld=1.2, **extra):
    layers = [dict(layer) for layer in TRUE["layers"]]
    layers[2].update(thickness=thickness, sld=sld)
    return {"film": {**TRUE, "layers": layers},
            "bounds": [{"i": 2, "par": "thickness", "bounds": [60, 200]}, {"i": 2, "par": "sld", "bounds": [0, 3]},
                       {"i": 2, "par": "roughness", "bounds": [1, 15]}],
            "scale": {"value": 1.0, "bounds": [0.8, 1.2]}, "background": {"value": 1e-7}, **extra}


@pytest.fixture
def files(tmp_path):
    q, r, dr, dq = synthetic()
    curve = tmp_path / "sample.txt"
    curve.write_text(csv_text(["Q", "R", "dR", "dQ"], [q, r, dr, dq]))
    config = tmp_path / "fit.json"
    config.write_text(json.dumps(fit_config()))
    return config, curve, tmp_path / "out"


def read_csv(path):
    return path.read_text().splitlines()[0], np.loadtxt(path, delimiter=",", skiprows=1)


def test_fit_writes_its_files_and_prints_the_summary(files, capsys):
    config, curve, out = files
    assert main(["fit", str(config), str(curve), "--out", str(out), "--local"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "least squares" in captured.err  # progress goes to stderr, the summary alone to stdout
    # With the true model and dR the true 1σ, χ²_red has mean 1 and sd √(2/(N−p)) = 0.16 (N 80, p 4).
    assert 0.5 < summary["chi2_reduced"] < 1.6
    assert summary["n_points"] == N_POINTS and summary["n_free"] == 4 and summary["search"] == "least squares"
    found = {p["name"]: p for p in summary["parameters"]}
    thickness = found["layer 2 (polymer) thickness"]
    assert abs(thickness["value"] - 120) < 4 * thickness["stderr"]  # within 4σ of the truth
    assert summary["contrasts"][0]["name"] == "sample"  # named after its file

    fit = json.loads((out / "fit.json").read_text())
    assert fit["chi2_reduced"] == pytest.approx(summary["chi2_reduced"], rel=1e-12)
    assert fit["film"]["layers"][2]["thickness"] == pytest.approx(thickness["value"], rel=1e-12)
    assert fit["background"] == 1e-7 and fit["mcmc"] is summary["mcmc"] is None  # fixed background kept
    header, table = read_csv(out / "curve_0.csv")
    assert header == "Q,R,dR,R_fit" and table.shape == (N_POINTS, 4)
    q, r, dr, _ = synthetic()
    np.testing.assert_allclose(table[:, :3], np.column_stack([q, r, dr]), rtol=1e-9)
    chi2 = np.sum(((table[:, 1] - table[:, 3]) / table[:, 2]) ** 2) / (N_POINTS - 4)
    assert chi2 == pytest.approx(summary["chi2_reduced"], rel=1e-6)  # R_fit is the curve that was fitted
    header, profile = read_csv(out / "profile.csv")
    assert header == "z,sld" and profile[0, 1] == pytest.approx(2.07, abs=0.01) and profile[-1, 1] == pytest.approx(
        0.0, abs=0.01)


def test_global_search_from_a_start_far_off(files, tmp_path, capsys):
    config, curve, out = files
    config.write_text(json.dumps(fit_config(thickness=70.0, sld=2.8)))
    assert main(["fit", str(config), str(curve), "--out", str(out), "--global", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["search"] == "differential evolution + least squares"
    assert summary["chi2_reduced"] < 1.6  # found the true minimum (see the test above)


def test_two_curves_are_two_contrasts(files, tmp_path, capsys):
    config, curve, out = files
    second = tmp_path / "second.dat"
    second.write_text(curve.read_text())
    raw = fit_config(contrasts=[{"name": "first"}, {"background": {"value": 2e-7}}])
    config.write_text(json.dumps(raw))
    assert main(["fit", str(config), str(curve), str(second), "--out", str(out), "--local"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in summary["contrasts"]] == ["first", "second"]  # unnamed: its file's name
    assert summary["contrasts"][1]["background"] == 2e-7 and summary["n_points"] == 2 * N_POINTS
    assert (out / "curve_1.csv").exists()


def orso_two_data_sets(path):
    """The synthetic curve twice in one ORSO file, as orsopy writes it: Qz in 1/nm, dQ as 1σ."""
    from orsopy.fileio import orso as orso_io

    q, r, dr, dq = synthetic()
    datasets = []
    for k in range(2):
        header = orso_io.Orso.empty()
        header.data_set = f"run {k + 1}"
        header.columns = [orso_io.Column("Qz", "1/nm"), orso_io.Column("R"), orso_io.ErrorColumn("R"),
                          orso_io.ErrorColumn("Qz", error_type="resolution", value_is="sigma")]
        sigma = dq / (2 * np.sqrt(2 * np.log(2)))
        datasets.append(orso_io.OrsoDataset(header, np.column_stack([10 * q, r, dr, 10 * sigma])))
    orso_io.save_orso(datasets, str(path))


def test_an_orso_file_gives_one_curve_per_data_set(files, tmp_path, capsys):
    config, _, out = files
    orso_two_data_sets(tmp_path / "runs.ort")
    assert main(["fit", str(config), str(tmp_path / "runs.ort"), "--out", str(out), "--local"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["contrasts"]) == 2 and summary["n_points"] == 2 * N_POINTS
    # Read in Å⁻¹ with FWHM resolutions, the true film explains both (the first test's bounds on χ²).
    assert 0.5 < summary["chi2_reduced"] < 1.6
    np.testing.assert_allclose(np.loadtxt(out / "curve_1.csv", delimiter=",", skiprows=1)[:, 0], synthetic()[0],
                               rtol=1e-9)


def test_mcmc_adds_the_band_to_the_profile(files, capsys):
    pytest.importorskip("reflect_core.analysis.fit.mcmc")
    config, curve, out = files
    assert main(["fit", str(config), str(curve), "--out", str(out), "--local", "--mcmc", "30"]) == 0
    summary = json.loads(capsys.readouterr().out)
    fit = json.loads((out / "fit.json").read_text())
    assert fit["mcmc"]["steps"] == summary["mcmc"]["steps"] == 30
    assert {p["name"] for p in summary["mcmc"]["parameters"]} == {p["name"] for p in summary["parameters"]}
    header, _ = read_csv(out / "profile.csv")
    assert header.startswith("z,sld,sld_median")


def test_start_from_a_network(files, tmp_path, capsys):
    from test_generate import SIMPLE

    from reflect_core.base.job_protocol import PrintReporter
    from reflect_core.data.generate import generate
    from reflect_core.ml.pipeline import train_on_arrays
    from reflect_core.ml.spec import TrainSpec

    config, curve, out = files
    spec = TrainSpec.parse({"dataset": {**SIMPLE, "n": 200, "seed": 4, "qmax": 0.2},
                            "model": {"layers": 1, "channels": 4, "hidden": 16},
                            "training": {"epochs": 1, "batch_size": 32}})
    data = generate(spec.dataset, tmp_path / "data")
    train_on_arrays(np.load(data / "nr_train.npy"), np.load(data / "sld_train.npy"), spec, tmp_path / "model",
                    PrintReporter())
    # The config's film is replaced by the network's; its fixed background (3e-7) is kept.
    config.write_text(json.dumps(fit_config(background={"value": 3e-7})))
    assert main(["fit", str(config), str(curve), "--out", str(out), "--local",
                 "--from-model", str(tmp_path / "model")]) == 0
    fit = json.loads((out / "fit.json").read_text())
    capsys.readouterr()
    from reflect_core.ml.meta import ModelMeta

    prior_film = ModelMeta.read(tmp_path / "model").prior["film"]  # the network's start, read in its prior's terms
    assert [layer["name"] for layer in fit["film"]["layers"]] == [layer["name"] for layer in prior_film["layers"]]
    assert fit["background"] == 3e-7  # fixed in the config, and kept
    [scale] = [p for p in fit["parameters"] if p["par"] == "scale"]
    assert scale["bounds"] == [0.8, 1.2]  # the config's, not the network start's


def _write(path, text):
    path.write_text(text)
    return str(path)


def failing(tmp_path, config, curve):
    """(arguments after 'fit', what the one-line message must say)."""
    two_columns = _write(tmp_path / "no_dr.txt", "0.01 0.5\n0.02 0.01\n0.03 0.001\n0.04 0.0005\n")
    bad_par = fit_config()
    bad_par["bounds"][0]["par"] = "thick"
    out = str(tmp_path / "out")
    return [
        ([str(config), str(tmp_path / "missing.txt"), "--out", out], "missing.txt"),
        ([str(tmp_path / "missing.json"), str(curve), "--out", out], "cannot read"),
        ([_write(tmp_path / "bad.json", json.dumps(bad_par)), str(curve), "--out", out], "bounds[0]"),
        ([_write(tmp_path / "broken.json", "{not json"), str(curve), "--out", out], "not valid JSON"),
        ([_write(tmp_path / "list.json", "[1, 2]"), str(curve), "--out", out], "JSON object"),
        ([str(config), two_columns, "--out", out], "no dR column"),
        ([_write(tmp_path / "c.json", json.dumps(fit_config(contrasts=[{}, {}]))), str(curve), "--out", out],
         "contrasts"),
        ([_write(tmp_path / "fixed.json", json.dumps({**fit_config(), "bounds": [], "scale": {"value": 1}})),
          str(curve), "--out", out], "nothing varies"),
        ([str(config), str(curve), "--out", str(curve)], "not a folder"),
        ([str(config), str(curve), "--out", str(curve / "below_a_file")], "cannot create"),
        ([str(config), str(curve), "--out", out, "--mcmc", "-5"], "mcmc"),
        ([str(config), str(curve), "--out", out, "--from-model", str(tmp_path / "no_model")], "no_model"),
    ]


def test_every_error_is_one_line_and_exit_2(files, tmp_path, capsys):
    config, curve, _ = files
    for argv, message in failing(tmp_path, config, curve):
        assert main(["fit", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)
