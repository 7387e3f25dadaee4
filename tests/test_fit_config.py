"""FitConfig.parse (reflect_core.analysis.fit.config): typed, validated once, and every mistake a
user can make gives an InvalidInput whose message names the field."""

import copy

import pytest

from reflect_core.analysis.fit import ConfigError, FitConfig
from reflect_core.base.errors import InvalidInput

FILM = {"name": "Si / SiO2 / PS / air", "beam_from": "ambient", "layers": [
    {"name": "Si", "sld": 2.07, "roughness": 3},
    {"name": "SiO2", "sld": 3.47, "thickness": 12, "roughness": 3},
    {"name": "PS", "sld": 6.2, "thickness": 250, "roughness": 5},
    {"name": "PS copy", "sld": 6.2, "thickness": 250, "roughness": 5},
    {"name": "air", "sld": 0.0}]}
GOOD = {
    "film": FILM,
    "bounds": [{"i": 2, "par": "thickness", "bounds": [200, 300]}, {"i": 2, "par": "sld", "bounds": [5, 7]}],
    "ties": [{"i": 3, "par": "thickness", "same_as": {"i": 2, "par": "thickness"}}],
    "mixes": [{"i": 1, "a": 3.47, "b": 2.07, "phi": {"value": 0.5, "bounds": [0, 1]}}],
    "scale": {"value": 1.0, "bounds": [0.8, 1.2]},
    "background": {"value": 1e-7},
}


def config(**changes) -> dict:
    raw = copy.deepcopy(GOOD)
    raw.update(changes)
    return raw


def test_a_good_configuration_is_typed():
    c = FitConfig.parse(config(), 1)
    assert [(b.i, b.par, b.lo, b.hi) for b in c.bounds] == [(2, "thickness", 200, 300), (2, "sld", 5, 7)]
    assert (c.ties[0].i, c.ties[0].par, c.ties[0].same_i, c.ties[0].same_par) == (3, "thickness", 2, "thickness")
    assert c.mixes[0].phi.varies and c.mixes[0].phi.value == 0.5
    (contrast,) = c.contrasts
    assert contrast.scale.varies and (contrast.scale.lo, contrast.scale.hi) == (0.8, 1.2)
    assert not contrast.background.varies and contrast.background.value == 1e-7  # no bounds: fixed
    assert contrast.ambient_sld == 0.0 and c.dq == pytest.approx(0.0294855)  # pyreflect's dQ/Q by default
    assert c.raw_ties == tuple(GOOD["ties"])
    assert c.to_dict()["bounds"] == GOOD["bounds"]


def test_contrasts_default_to_one_per_dataset_and_inherit_scale_and_background():
    c = FitConfig.parse(config(), 3)
    assert len(c.contrasts) == 3 and all(k.scale == c.contrasts[0].scale for k in c.contrasts)
    c = FitConfig.parse(config(contrasts=[{"name": "D2O", "ambient_sld": 6.36},
                                          {"name": "H2O", "ambient_sld": -0.56, "background": {"value": 2e-6}}]), 2)
    assert [k.ambient_sld for k in c.contrasts] == [6.36, -0.56]
    assert c.contrasts[1].background.value == 2e-6 and c.contrasts[0].background.value == 1e-7


def bad(field: str, text: str, n_datasets: int = 1, **changes):
    with pytest.raises(InvalidInput) as err:
        FitConfig.parse(config(**changes), n_datasets)
    assert isinstance(err.value, ConfigError)
    message = str(err.value)
    assert field in message and text in message, message
    return message


def test_bound_errors_name_the_entry_and_field():
    bad("bounds[0].par", "must be one of", bounds=[{"i": 2, "par": "density", "bounds": [0, 1]}])
    bad("bounds[0].i", "layer index 0..4", bounds=[{"i": 5, "par": "sld", "bounds": [0, 1]}])
    bad("bounds[0].i", "layer index", bounds=[{"i": True, "par": "sld", "bounds": [0, 1]}])
    bad("bounds[0]", "lower bound 300 must be below the upper bound 200",
        bounds=[{"i": 2, "par": "thickness", "bounds": [300, 200]}])
    bad("bounds[0]", "lower bound 250 must be below", bounds=[{"i": 2, "par": "thickness", "bounds": [250, 250]}])
    bad("bounds[0]", "outside the bounds [300, 400]", bounds=[{"i": 2, "par": "thickness", "bounds": [300, 400]}])
    bad("bounds[0] (layer 2 'PS', sld).bounds[1]", "expected a number",
        bounds=[{"i": 2, "par": "sld", "bounds": [0, "x"]}])
    bad(".bounds: expected [lo, hi]", "bounds[0]", bounds=[{"i": 2, "par": "sld", "bounds": [0]}])
    bad("bounds[1]", "bounded twice", bounds=[{"i": 2, "par": "sld", "bounds": [5, 7]}] * 2)
    bad("bounds", "expected a list", bounds={"i": 2})


def test_physical_limits_come_from_the_film_model():
    bad("bounds[0]", "within [0, 100000] Å", bounds=[{"i": 2, "par": "thickness", "bounds": [200, 2e5]}])
    bad("bounds[0]", "within [0, 1000] Å", bounds=[{"i": 2, "par": "roughness", "bounds": [-1, 10]}])
    bad("bounds[0]", "within [-100, 100]", bounds=[{"i": 2, "par": "sld", "bounds": [5, 200]}])
    bad("bounds[0]", "within [0, 100]", bounds=[{"i": 2, "par": "isld", "bounds": [-1, 1]}])


def test_parameters_the_model_does_not_use_cannot_vary():
    bad("bounds[0] (layer 0 'Si', thickness)", "not used", bounds=[{"i": 0, "par": "thickness", "bounds": [0, 1]}])
    bad("bounds[0] (layer 4 'air', thickness)", "not used", bounds=[{"i": 4, "par": "thickness", "bounds": [0, 1]}])
    bad("bounds[0]", "no interface above it", bounds=[{"i": 4, "par": "roughness", "bounds": [0, 1]}])
    bad("bounds[0]", "taken as transparent", bounds=[{"i": 4, "par": "isld", "bounds": [0, 1]}])
    # Through the substrate, the substrate is the incident medium instead.
    film = dict(FILM, beam_from="substrate")
    bad("bounds[0]", "taken as transparent", film=film, bounds=[{"i": 0, "par": "isld", "bounds": [0, 1]}])


def test_tie_errors():
    bad("ties[0]", "tied to itself", ties=[{"i": 3, "par": "sld", "same_as": {"i": 3, "par": "sld"}}])
    bad("ties[", "cycle", ties=[{"i": 3, "par": "sld", "same_as": {"i": 1, "par": "sld"}},
                                {"i": 1, "par": "sld", "same_as": {"i": 3, "par": "sld"}}], mixes=[])
    bad("ties[0]", "cannot also have bounds", ties=[{"i": 2, "par": "sld", "same_as": {"i": 3, "par": "sld"}}])
    bad("ties[0]", "only be tied to another layer's sld", ties=[{"i": 3, "par": "sld",
                                                                  "same_as": {"i": 2, "par": "thickness"}}])
    # an absorption tied to a (negative) SLD, a roughness to a 2,000 Å thickness: same units, unphysical
    bad("ties[0]", "only be tied to another layer's isld", ties=[{"i": 3, "par": "isld",
                                                                   "same_as": {"i": 2, "par": "sld"}}])
    bad("ties[0].same_as.i", "layer index", ties=[{"i": 3, "par": "sld", "same_as": {"i": 9, "par": "sld"}}])
    bad("ties[0].same_as", "expected an object", ties=[{"i": 3, "par": "sld", "same_as": 2}])
    bad("ties[0].same_as", "not used", ties=[{"i": 3, "par": "thickness", "same_as": {"i": 0, "par": "thickness"}}])
    bad("ties[1]", "tied twice", ties=[{"i": 3, "par": "sld", "same_as": {"i": 2, "par": "sld"}}] * 2)
    bad("ties[0]", "set by its mix", ties=[{"i": 1, "par": "sld", "same_as": {"i": 2, "par": "sld"}}])


def test_a_layer_filled_by_a_solvent_cannot_be_the_source_of_a_tie():
    """Its SLD differs per contrast (φ·a + (1−φ)·ambient), so another layer tied to it would take one value."""
    bad("ties[0]", "follows each contrast's solvent",
        mixes=[{"i": 1, "a": 3.47, "b": "ambient", "phi": 0.8}],
        ties=[{"i": 3, "par": "sld", "same_as": {"i": 1, "par": "sld"}}])


def test_contrasts_need_distinct_names():
    with pytest.raises(InvalidInput, match=r"contrasts\[1\].name: 'run' names another contrast"):
        FitConfig.parse(config(contrasts=[{"name": "run"}, {"name": "run"}]), 2)


def test_mix_errors():
    bad("mixes[0].phi", "must be ≤ 1, got 1.5",
        mixes=[{"i": 1, "a": 3.47, "b": 2.07, "phi": {"value": 0.5, "bounds": [0, 1.5]}}])
    bad("mixes[0].phi", "must be ≥ 0", mixes=[{"i": 1, "a": 3.47, "b": 2.07, "phi": {"value": -0.1}}])
    bad("mixes[0].phi", "must be ≤ 1", mixes=[{"i": 1, "a": 3.47, "b": 2.07, "phi": 1.2}])
    bad("mixes[0].a", "expected a number", mixes=[{"i": 1, "a": "D2O", "b": 2.07}])
    bad("mixes[0]", "cannot also have bounds", mixes=[{"i": 2, "a": 6.4, "b": 1.4, "phi": 0.5}])
    bad("mixes[1]", "mixed twice", mixes=[{"i": 1, "a": 3.47, "b": 2.07}] * 2)


def test_scale_background_and_resolution_errors():
    bad("scale", "must be > 0", scale={"value": 0.0})
    bad("scale", "must be > 0", scale={"value": 1.0, "bounds": [-1, 2]})
    bad("background", "cannot be negative", background={"value": -1e-7})
    bad("background", "cannot be negative", background={"value": 0, "bounds": [-1e-6, 1e-6]})
    bad("scale.value", "outside its bounds", scale={"value": 1.5, "bounds": [0.8, 1.2]})
    bad("dq", "FWHM fraction", dq=-0.01)
    bad("contrasts[1].background", "cannot be negative", n_datasets=2,
        contrasts=[{"name": "a"}, {"name": "b", "background": {"value": -1}}])


def test_datasets_and_contrasts_must_match():
    bad("contrasts", "2 contrasts for 3 datasets", n_datasets=3, contrasts=[{"name": "a"}, {"name": "b"}])
    bad("contrasts", "1 contrasts for 2 datasets", n_datasets=2, contrasts=[{"name": "a"}])
    with pytest.raises(ConfigError, match="at least one dataset"):
        FitConfig.parse(config(), 0)
    # A contrast sets the ambient's SLD, so the ambient SLD cannot also vary.
    bad("bounds[2]", "set per contrast", n_datasets=2, contrasts=[{"ambient_sld": 6.36}, {"ambient_sld": -0.56}],
        bounds=GOOD["bounds"] + [{"i": 4, "par": "sld", "bounds": [-1, 7]}])


def test_the_film_and_the_whole_are_checked():
    with pytest.raises(ConfigError, match="film: missing"):
        FitConfig.parse({"bounds": []}, 1)
    bad("film:", "layer 2 ('PS'), field 'thickness'",
        film={"layers": [{"name": "Si", "sld": 2.07}, {"name": "x", "sld": 1}, {"name": "PS", "sld": 1,
                                                                               "thickness": -5}, {"sld": 0}]})
    bad("bounds", "nothing varies", bounds=[], mixes=[], scale={"value": 1.0})
    with pytest.raises(ConfigError, match="JSON object"):
        FitConfig.parse([GOOD], 1)
