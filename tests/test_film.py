import json

import numpy as np
import pytest

from reflect_core.physics.film import (
    Film,
    FilmError,
    Layer,
    film_from_dict,
    film_from_json,
    flip_stack,
    roughness_warnings,
)
from reflect_core.physics.presets import DEFAULT_BOUNDS, DEFAULT_FILM, PRESETS


def test_default_film_matches_pyreflect_prior():
    rows = [(l.name, l.sld, l.isld, l.thickness, l.roughness) for l in DEFAULT_FILM.layers]
    assert rows[0] == ("substrate", 2.07, 0, 0, 1.35)
    assert rows[3] == ("layer_2", 2.37, 0, 178.66, 57.26)
    assert rows[-1] == ("air", 0, 0, 0, 0)
    assert len(rows) == 8
    assert len(DEFAULT_BOUNDS) == 19
    bounds = {(b["i"], b["par"]): tuple(b["bounds"]) for b in DEFAULT_BOUNDS}
    assert bounds[(0, "roughness")] == (1.177, 1.5215)
    assert bounds[(6, "roughness")] == (43.155, 110.11)
    for b in DEFAULT_BOUNDS:
        lo, hi = b["bounds"]
        assert lo <= getattr(DEFAULT_FILM.layers[b["i"]], b["par"]) <= hi


def test_presets_are_valid_films():
    assert len(PRESETS) >= 3
    for film in PRESETS.values():
        assert isinstance(film, Film) and len(film.layers) >= 2


@pytest.mark.parametrize(
    "layers, field, index",
    [
        ([{"sld": 2.07}, {"sld": float("nan")}], "sld", 1),
        ([{"sld": 2.07}, {"sld": 1, "thickness": -5}, {"sld": 0}], "thickness", 1),
        ([{"sld": 2.07, "roughness": -1}, {"sld": 0}], "roughness", 0),
        ([{"sld": 2.07}, {"sld": 1, "thickness": float("inf")}, {"sld": 0}], "thickness", 1),
        ([{"sld": 2.07}, {"sld": "abc"}], "sld", 1),
        ([{"sld": 2.07}, {"sld": 1, "isld": -0.1}], "isld", 1),
    ],
)
def test_bad_values_name_layer_and_field(layers, field, index):
    with pytest.raises(FilmError) as info:
        film_from_dict({"layers": layers})
    assert info.value.field_name == field
    assert info.value.layer == index
    assert f"layer {index}" in str(info.value) and field in str(info.value)


def test_fewer_than_two_layers_rejected():
    with pytest.raises(FilmError, match="at least 2 layers"):
        film_from_dict({"layers": [{"sld": 2.07}]})


def test_negative_sld_is_accepted():
    film = film_from_dict({"layers": [{"sld": 2.07}, {"sld": -1.95, "thickness": 100}, {"sld": -0.56}]})
    assert film.layers[1].sld == -1.95


def test_reads_pyreflect_interface_export():
    export = {
        "params": {
            "layers": [
                {"name": "substrate", "sld": 2.07, "isld": 0, "thickness": 0, "roughness": 1.8},
                {"name": "film", "sld": 4.0, "isld": 0, "thickness": 120, "roughness": 5},
                {"name": "air", "sld": 0, "isld": 0, "thickness": 0, "roughness": 0},
            ],
            "generator": {"numCurves": 100},
        },
        "result": {"nr": {}},
    }
    film = film_from_json(json.dumps(export))
    assert [l.name for l in film.layers] == ["substrate", "film", "air"]
    assert film.layers[1].thickness == 120


def test_own_format_round_trip():
    film = PRESETS["Si / Au / polymer (PS) / D2O (beam through Si)"]
    again = film_from_json(film.to_json())
    assert again == film and again.beam_from == "substrate"


@pytest.mark.parametrize("text", ["{", "[]", '{"layers": 3}', '"x"', b"\xff\xfe"])
def test_malformed_json_rejected_with_message(text):
    with pytest.raises(FilmError):
        film_from_json(text)


def test_oversized_film_file_rejected():
    with pytest.raises(FilmError, match="limit"):
        film_from_json("{" + " " * 2_000_000 + "}")


def test_flip_moves_roughness_to_the_right_interface():
    # substrate(σ=1) | a(σ=2) | b(σ=3) | ambient ; flipped: ambient | b | a | substrate
    arr = np.array([[1, 0, 0, 1], [2, 0, 10, 2], [3, 0, 20, 3], [4, 0, 0, 0]], float)
    flipped = flip_stack(arr)
    assert list(flipped[:, 0]) == [4, 3, 2, 1]
    # interface ambient|b was b's (σ=3); b|a was a's (σ=2); a|substrate was the substrate's (σ=1)
    assert list(flipped[:, 3]) == [3, 2, 1, 0]
    assert np.array_equal(flip_stack(flipped)[:, :3], arr[:, :3])


def test_roughness_warnings_follow_the_stated_limits():
    film = Film(layers=(Layer("s", 2, 0, 0, 5), Layer("a", 3, 0, 30, 11), Layer("air", 0)))
    notes = roughness_warnings(film)
    assert len(notes) == 1 and "a / air" in notes[0]  # 11 Å > 30/3
    assert roughness_warnings(film.with_layer(1, roughness=9)) == []


# --- physical bounds ---------------------------------------------------------------------------------------------


def _stack(**middle) -> dict:
    return {"layers": [{"name": "Si", "sld": 2.07}, {"name": "film", "sld": 4.0, **middle}, {"name": "air", "sld": 0}]}


@pytest.mark.parametrize("middle, field, bound", [
    ({"thickness": 1e5 + 1}, "thickness", "≤ 100000 Å"),
    ({"thickness": 3e7}, "thickness", "≤ 100000 Å"),
    ({"roughness": 1000.5}, "roughness", "≤ 1000 Å"),
    ({"sld": 100.1}, "sld", "|SLD| ≤ 100"),
    ({"sld": -150.0}, "sld", "|SLD| ≤ 100"),
    ({"isld": 101.0}, "isld", "≤ 100"),
])
def test_values_beyond_the_physical_bounds_are_refused_naming_layer_and_field(middle, field, bound):
    with pytest.raises(FilmError) as info:
        film_from_dict(_stack(**middle))
    assert (info.value.layer, info.value.field_name) == (1, field)
    assert "physical bound" in str(info.value) and bound in str(info.value)


def test_the_bounds_themselves_are_accepted():
    film = film_from_dict(_stack(thickness=1e5, roughness=1000.0, sld=-100.0, isld=100.0))
    assert film.layers[1].thickness == 1e5


def test_the_whole_stack_is_bounded_too():
    layers = [{"sld": 2.07}] + [{"sld": 3.0, "thickness": 4e4}] * 3 + [{"sld": 0}]
    with pytest.raises(FilmError, match="120000 Å thick in all; the bound is 100000 Å"):
        film_from_dict({"layers": layers})


def test_a_5000_digit_integer_is_a_clear_film_error():
    huge = 10**5000
    for raw in (_stack(thickness=huge), _stack(sld=-huge), {"layers": [{"sld": 1, "name": huge}, {"sld": 0}]}):
        with pytest.raises(FilmError, match="more than 4,300 digits"):
            film_from_dict(raw)
    with pytest.raises(FilmError, match="not valid JSON.*digits"):
        film_from_json('{"layers": [{"sld": ' + "7" * 5000 + '}, {"sld": 0}]}')
    with pytest.raises(FilmError, match="expected a number"):
        film_from_dict(_stack(thickness=10**400))  # fewer digits than the limit, still no float


def test_a_film_of_thousands_of_layers_is_refused_before_each_is_read():
    with pytest.raises(FilmError, match="at most 1000 layers, got 5,000"):
        film_from_dict({"layers": [{"sld": 1.0}] * 5000})
