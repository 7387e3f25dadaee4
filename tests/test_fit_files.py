"""The files of a refinement fit, from hand-made fit.json dicts (the contract's form): the ORSO file (read
back by orsopy, by our reader and by refnx's ORSO model reader), the refnx script (executed with refnx and
compared with our reflectivity), the figures and the results bundle."""

import io
import json
import zipfile

import numpy as np
import pytest
from refnx.reflect import reflectivity as refnx_reflectivity

from reflect_core.base.errors import InvalidInput
from reflect_core.formats.orso_out import R_FIT_COLUMN, fit_orso_text
from reflect_core.formats.refnx_export import refnx_layers, refnx_position, refnx_script
from reflect_core.physics.film import Film, Layer
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.refnx_bridge import to_refnx_slabs
from reflect_core.uploads.curves import measured_curves
from reflect_core.viz.fit_bundle import MAX_CURVES, fit_bundle
from reflect_core.viz.fit_figures import correlation_figure, fit_figure, fit_profile_figure, residuals_figure

Q = np.geomspace(0.006, 0.3, 150)
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
ROUND_TRIP = 1e-13  # ORSO's text holds 17 significant digits; σ ↔ FWHM adds a few ulp
SAME_FORMULA = 1e-9  # two double-precision evaluations of the exact Abeles formula (as in test_reflectivity)


def film(beam_from="ambient", ambient=6.36) -> Film:
    """SiO2's roughness is tied to the substrate's (the fit's tie holds)."""
    return Film((Layer("Si", 2.07, roughness=3), Layer("SiO2", 3.47, thickness=12, roughness=3),
                 Layer("PMMA film", 1.4, 0.2, thickness=250, roughness=6), Layer("D2O", ambient)),
                beam_from=beam_from, name="PMMA on Si")


def fit_dict(beam_from="ambient", dq=0.03) -> tuple[dict, list[dict]]:
    """A two-contrast fit as fit.json has it, and its fitted curves (the second without its own dQ)."""
    films = [film(beam_from), film(beam_from, ambient=-0.56)]
    contrasts = [{"name": "D2O", "scale": 1.0, "background": 1e-7, "ambient_sld": 6.36, "n_points": Q.size,
                  "chi2_reduced": 1.1},
                 {"name": "H2O", "scale": 0.95, "background": 2e-7, "ambient_sld": -0.56, "n_points": Q.size,
                  "chi2_reduced": 1.3}]
    fit = {"film": films[0].to_dict(), "films": [f.to_dict() for f in films], "scale": 1.0, "background": 1e-7,
           "contrasts": contrasts,
           "parameters": [
               {"name": "layer 2 (PMMA film) thickness", "i": 2, "par": "thickness", "contrast": None, "value": 250.0,
                "stderr": 1.5, "initial": 240.0, "bounds": [200.0, 300.0]},
               {"name": "layer 2 (PMMA film) roughness", "i": 2, "par": "roughness", "contrast": None, "value": 6.0,
                "stderr": None, "initial": 5.0, "bounds": [1.0, 20.0]},
               {"name": "scale (H2O)", "i": None, "par": "scale", "contrast": 1, "value": 0.95, "stderr": 0.01,
                "initial": 1.0, "bounds": [0.8, 1.2]}],
           "ties": [{"i": 1, "par": "roughness", "same_as": {"i": 0, "par": "roughness"}}],
           "chi2": 330.0, "chi2_reduced": 1.13, "n_points": 2 * Q.size, "n_free": 3, "search": "least squares",
           "correlations": {"names": ["thickness", "roughness", "scale (H2O)"],
                            "matrix": [[1.0, 0.4, -0.1], [0.4, 1.0, 0.2], [-0.1, 0.2, 1.0]]},
           "mcmc": None, "dq": dq}
    curves = []
    for k, (f, c) in enumerate(zip(films, contrasts)):
        dq_abs = dq * Q if k == 0 else None
        r_fit = reflectivity(f, Q, dq, dq_abs=dq_abs, scale=c["scale"], background=c["background"])[0]
        noise = 1 + 0.03 * np.sin(40 * Q)
        curves.append({"q": Q, "r": r_fit * noise, "dr": 0.05 * r_fit, "dq": dq_abs, "r_fit": r_fit, "name": c["name"]})
    return fit, curves


# --- ORSO ---------------------------------------------------------------------------------------------------------


def test_the_orso_file_reads_back_with_orsopy_and_with_our_reader():
    from orsopy.fileio import orso

    fit, curves = fit_dict()
    text = fit_orso_text(fit, curves)
    datasets = orso.load_orso(io.StringIO(text))
    assert [d.info.data_set for d in datasets] == ["D2O", "H2O"]
    names = [getattr(c, "name", None) for c in datasets[0].info.columns]
    assert names == ["Qz", "R", "sR", "sQz", R_FIT_COLUMN] and datasets[0].info.columns[0].unit == "1/angstrom"
    assert datasets[0].info.columns[3].value_is == "sigma" and datasets[0].info.columns[3].error_type == "resolution"
    header = datasets[1].info
    assert header.fit["chi2_reduced"] == 1.13 and header.fit["contrast"]["scale"] == 0.95
    assert header.fit["parameters"][0]["stderr"] == 1.5 and header.fit["parameters"][1]["stderr"] is None
    model = header.data_source.sample.model
    assert model.stack == "D2O | PMMA_film | SiO2 | Si"  # from the beam's side to the backing
    assert model.layers["D2O"].material.sld.real == pytest.approx(-0.56e-6)  # this contrast's ambient
    for dataset, curve in zip(datasets, curves):
        table = np.asarray(dataset.data)
        np.testing.assert_allclose(table[:, 4], curve["r_fit"], rtol=ROUND_TRIP)
        fwhm = curve["dq"] if curve["dq"] is not None else fit["dq"] * Q  # no dQ of its own: the fit's dq/Q
        np.testing.assert_allclose(table[:, 3], fwhm / FWHM_PER_SIGMA, rtol=ROUND_TRIP)
    found = measured_curves("fit.ort", text.encode(), ".ort")
    assert [label for _, label in found] == ["PMMA on Si [D2O]", "PMMA on Si [H2O]"]
    for (back, _), curve in zip(found, curves):
        np.testing.assert_allclose(back.q, curve["q"], rtol=ROUND_TRIP)
        np.testing.assert_allclose(back.r, curve["r"], rtol=ROUND_TRIP)
        np.testing.assert_allclose(back.dr, curve["dr"], rtol=ROUND_TRIP)
        np.testing.assert_allclose(back.dq, curve["dq"] if curve["dq"] is not None else fit["dq"] * Q,
                                   rtol=ROUND_TRIP)


@pytest.mark.parametrize("beam_from", ["ambient", "substrate"])
def test_the_orso_model_is_the_fitted_film_for_refnx(beam_from):
    from orsopy.fileio import orso
    from refnx.reflect import Structure

    fit, curves = fit_dict(beam_from)
    datasets = orso.load_orso(io.StringIO(fit_orso_text(fit, curves)))
    for dataset, f in zip(datasets, [film(beam_from), film(beam_from, -0.56)]):
        structure = Structure.from_orso(dataset.info.data_source.sample.model)
        ref = refnx_reflectivity(Q, structure.slabs()[:, :4], dq=0.0)
        np.testing.assert_allclose(ref, reflectivity(f, Q)[0], rtol=SAME_FORMULA)


def test_orso_output_refuses_curves_it_cannot_write():
    fit, curves = fit_dict()
    with pytest.raises(InvalidInput, match="fitted curve 2: needs q, r and r_fit"):
        fit_orso_text(fit, [curves[0], {**curves[1], "r_fit": Q[:3]}])
    with pytest.raises(InvalidInput, match="at least one"):
        fit_orso_text(fit, [])


# --- refnx --------------------------------------------------------------------------------------------------------


def run_script(text: str) -> dict:
    namespace = {"__name__": "refnx_model"}
    exec(compile(text, "refnx_model.py", "exec"), namespace)  # noqa: S102 - our own generated script
    return namespace


@pytest.mark.parametrize("beam_from", ["ambient", "substrate"])
def test_the_refnx_script_builds_the_fitted_film(beam_from):
    fit, _ = fit_dict(beam_from, dq=0.0)
    script = run_script(refnx_script(fit))
    models = script["build_models"]()
    expected = [film(beam_from), film(beam_from, -0.56)]
    for model, f, contrast in zip(models, expected, fit["contrasts"]):
        ours = reflectivity(f, Q, scale=contrast["scale"], background=contrast["background"])[0]
        np.testing.assert_allclose(model(Q), ours, rtol=SAME_FORMULA)
    # the varied parameters are refnx's free ones, with the fit's bounds; the tie is a constraint
    free = {p.name: p.bounds for model in models for p in model.parameters.varying_parameters()}
    assert {(n, b.lb, b.ub) for n, b in free.items()} == {("PMMA film - thick", 200.0, 300.0),
                                                         ("PMMA film - rough" if beam_from == "ambient"
                                                          else "D2O - rough", 1.0, 20.0),
                                                         ("scale", 0.8, 1.2)}
    slabs = models[0].structure
    row, field = refnx_position(film(beam_from), 0, "roughness")
    tied_row, tied_field = refnx_position(film(beam_from), 1, "roughness")
    source = {"rough": slabs[row].rough}[field]
    source.value = 7.5
    assert {"rough": slabs[tied_row].rough}[tied_field].value == 7.5


def test_the_refnx_script_smears_as_refnx_and_close_to_us():
    fit, curves = fit_dict("substrate", dq=0.03)
    [model, _] = run_script(refnx_script(fit))["build_models"]()
    f, dq = film("substrate"), 0.03 * Q
    # the same engine on the same slabs and per-point FWHM: the fit's own model curve, to rounding
    direct = refnx_reflectivity(Q, to_refnx_slabs(f.beam_array()), dq=dq, bkg=1e-7, quad_order=17)
    np.testing.assert_allclose(model(Q, x_err=dq), direct, rtol=1e-12)
    # refnx's pointwise smearing (17-point Gauss–Legendre) against our oversampled convolution (within
    # 0.5 % p99 / 2 % of brute force, test_resolution): they part most next to the critical edge
    rel = np.abs(model(Q, x_err=dq) / reflectivity(f, Q, dq_abs=dq, background=1e-7)[0] - 1)
    assert np.percentile(rel, 99) <= 0.01 and rel.max() <= 0.03, (np.percentile(rel, 99), rel.max())


def test_the_refnx_script_runs_on_its_ort_file_and_holds_no_user_code(tmp_path, monkeypatch, capsys):
    fit, curves = fit_dict()
    hostile = 'x"""\nraise SystemExit("ran user text")\n#'
    fit["films"][0]["name"] = fit["film"]["name"] = hostile
    fit["films"][0]["layers"][2]["name"] = fit["film"]["layers"][2]["name"] = hostile
    fit["contrasts"][1]["name"] = hostile
    (tmp_path / "fit.ort").write_text(fit_orso_text(fit, curves))
    text = refnx_script(fit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["refnx_model.py"])
    namespace = {"__name__": "__main__"}
    exec(compile(text, "refnx_model.py", "exec"), namespace)  # noqa: S102
    assert namespace["LAYERS"][1][0] == hostile and namespace["CONTRASTS"][1][0] == hostile
    printed = capsys.readouterr().out
    assert "chi2 = " in printed and "GlobalObjective" in printed.replace("Global Objective", "GlobalObjective")
    assert refnx_layers(film())[0][0] == "D2O" and refnx_layers(film("substrate"))[0][0] == "Si"


def test_the_refnx_script_leaves_out_points_without_an_uncertainty(tmp_path):
    """As reflect_core's χ² does: a point with dR = 0 would make refnx's χ² infinite."""
    fit, curves = fit_dict()
    curves[0] = {**curves[0], "dr": np.where(np.arange(Q.size) == 5, 0.0, curves[0]["dr"])}
    (tmp_path / "fit.ort").write_text(fit_orso_text(fit, curves))
    namespace = {"__name__": "exported"}
    exec(compile(refnx_script(fit), "refnx_model.py", "exec"), namespace)  # noqa: S102
    datasets = namespace["load_ort"](str(tmp_path / "fit.ort"))
    assert len(datasets[0]) == Q.size - 1 and len(datasets[1]) == Q.size
    assert np.isfinite(namespace["build_objective"](datasets).chisqr())


# --- figures and the bundle ---------------------------------------------------------------------------------------


def test_fit_figures_have_units_colours_and_guides():
    fit, curves = fit_dict()
    curves[0]["r"] = curves[0]["r"].copy()
    curves[0]["r"][0] = -1e-9  # a point a log axis cannot draw
    fig = fit_figure(curves, "RQ4")
    assert fig.layout.xaxis.title.text == "Q (Å⁻¹)" and fig.layout.yaxis.title.text == "R·Q⁴ (Å⁻⁴)"
    assert fig.layout.yaxis.type == "log" and len(fig.data) == 4
    data, line = fig.data[0], fig.data[1]
    assert data.marker.color == line.line.color != fig.data[3].line.color  # one colour per contrast
    assert len(data.x) == Q.size - 1
    np.testing.assert_allclose(data.error_y.array, (curves[0]["dr"] * Q**4)[1:])
    both = fit_figure(curves, "both")
    assert both.layout.yaxis.title.text == "R" and both.layout.yaxis2.title.text == "R·Q⁴ (Å⁻⁴)"
    assert both.layout.xaxis2.title.text == "Q (Å⁻¹)" and len(both.data) == 8
    with pytest.raises(ValueError, match="view must be one of"):
        fit_figure(curves, "lin")
    res = residuals_figure(curves)
    np.testing.assert_allclose(res.data[1].y, (curves[1]["r"] - curves[1]["r_fit"]) / curves[1]["dr"])
    assert sorted(s.y0 for s in res.layout.shapes) == [-3, -1, 0, 1, 3]
    assert res.layout.yaxis.title.text == "residual (R − R_fit)/dR (σ)"
    z = np.linspace(-20, 300, 50)
    band = {"z": z, "median": z * 0 + 2, "lo68": z * 0 + 1.9, "hi68": z * 0 + 2.1, "lo95": z * 0 + 1.8,
            "hi95": z * 0 + 2.2}
    profile = fit_profile_figure(z, z * 0 + 2, band)
    assert [t.fill for t in profile.data].count("tonexty") == 2 and profile.layout.yaxis.title.text == "SLD (10⁻⁶ Å⁻²)"
    assert profile.layout.xaxis.title.text.startswith("z (Å)")
    heat = correlation_figure(fit["correlations"])
    assert heat.data[0].zmin == -1 and heat.data[0].zmax == 1 and heat.data[0].text[0][1] == "0.40"
    with pytest.raises(ValueError, match="3×3 matrix expected"):
        correlation_figure({"names": ["a", "b", "c"], "matrix": [[1.0]]})


def test_the_bundle_holds_every_file_of_the_fit():
    fit, curves = fit_dict()
    z = np.linspace(-20, 300, 200)
    sld = np.interp(z, [0, 12, 262], [2.07, 3.47, 1.4])
    fit["mcmc"] = {"steps": 100, "sld_band": {"z": z.tolist(), "median": sld.tolist(), "lo68": (sld - 0.1).tolist(),
                                              "hi68": (sld + 0.1).tolist(), "lo95": (sld - 0.2).tolist(),
                                              "hi95": (sld + 0.2).tolist()}}
    data = fit_bundle(fit, curves, (z, sld), title="<script>alert(1)</script>")
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["curve_0.csv", "curve_1.csv", "figures.html", "fit.json", "fit.ort",
                                          "profile.csv", "refnx_model.py"]
    assert json.loads(archive.read("fit.json")) == json.loads(json.dumps(fit))
    table = np.loadtxt(io.StringIO(archive.read("curve_1.csv").decode()), delimiter=",", skiprows=1)
    assert archive.read("curve_1.csv").decode().startswith("Q,R,dR,R_fit\n")
    np.testing.assert_allclose(table[:, 3], curves[1]["r_fit"], rtol=1e-9)  # written with 10 significant digits
    profile = archive.read("profile.csv").decode()
    assert profile.startswith("z,sld,sld_median,sld_lo68,sld_hi68,sld_lo95,sld_hi95\n")
    assert len(measured_curves("fit.ort", archive.read("fit.ort"), ".ort")) == 2
    assert archive.read("refnx_model.py").decode() == refnx_script(fit, "fit.ort")
    page = archive.read("figures.html").decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'src="https://cdn.plot.ly' not in page and len(page) > 3_000_000  # plotly.js embedded: opens offline
    assert len(data) < 2_500_000, len(data)  # about 1.5 MB, nearly all of it plotly.js compressed
    light = fit_bundle(fit, curves, (z, sld), figures=False)
    assert "figures.html" not in zipfile.ZipFile(io.BytesIO(light)).namelist() and len(light) < 100_000
    with pytest.raises(InvalidInput, match=f"1 to {MAX_CURVES} fitted curves"):
        fit_bundle(fit, curves * (MAX_CURVES // 2 + 1), (z, sld), figures=False)
