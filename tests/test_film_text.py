"""A film from one line of text: the syntax, repeats and their ties, the limits, every error
message, and the film written back as text."""

import pytest

from reflect_core.base.errors import InvalidInput
from reflect_core.formats.film_text import (
    EXAMPLE,
    EXAMPLE_REPEAT,
    MAX_REPEAT,
    MAX_TEXT_CHARS,
    FilmTextError,
    film_to_text,
    parse_film_text,
)
from reflect_core.physics.film import LAYER_FIELDS, MAX_LAYERS, Film, Layer
from reflect_core.physics.materials import formula_sld, material
from reflect_core.physics.presets import PRESETS


def rows(film):
    return [(l.name, l.sld, l.isld, l.thickness, l.roughness) for l in film.layers]


def test_the_example_line():
    built = parse_film_text("Si / SiO2 12 / PMMA 500 rough 8 / air")
    si, sio2, pmma, air = (material(n) for n in ("Si", "SiO2", "PMMA", "air"))
    assert rows(built.film) == [
        ("Si", si.sld, si.isld, 0.0, 0.0),
        ("SiO2", sio2.sld, sio2.isld, 12.0, 0.0),
        ("PMMA", pmma.sld, pmma.isld, 500.0, 8.0),  # the rough of PMMA's top interface (toward air)
        ("air", 0.0, 0.0, 0.0, 0.0),
    ]
    assert built.film.beam_from == "ambient" and built.ties == ()
    assert [m.name for m in built.materials] == ["Si", "SiO2", "PMMA", "air"]
    assert built.materials[2].sld == pytest.approx(1.0587, abs=1e-4)


def test_the_documented_examples_parse():
    assert len(parse_film_text(EXAMPLE).film.layers) == 4
    assert len(parse_film_text(EXAMPLE_REPEAT).film.layers) == 13


def test_every_kind_of_material():
    built = parse_film_text("Si rough 2 / C8H8@1.05 50 nm rough 1nm / sld 3.5 20 / siox=3.47 10Å / "
                            "-0.5 10 A isld 0.1 / Au 150 isld 0.02 / H[2]2O@1.107")
    film = built.film
    assert [l.name for l in film.layers] == ["Si", "C8H8", "SLD 3.5", "siox", "SLD -0.5", "Au", "H[2]2O"]
    assert film.layers[0].roughness == 2.0
    assert film.layers[1].sld == pytest.approx(formula_sld("C8H8", 1.05).sld)
    assert (film.layers[1].thickness, film.layers[1].roughness) == (500.0, 10.0)  # nm → Å
    assert (film.layers[2].sld, film.layers[2].thickness) == (3.5, 20.0)
    assert (film.layers[3].sld, film.layers[3].thickness) == (3.47, 10.0)
    assert (film.layers[4].sld, film.layers[4].isld, film.layers[4].thickness) == (-0.5, 0.1, 10.0)
    assert film.layers[5].isld == 0.02  # replaces the table's 0.0162
    assert film.layers[6].sld == pytest.approx(6.371, abs=1e-3)  # H[2] is an isotope, not a repeat
    assert {m.name for m in built.materials} >= {"C8H8", "SLD 3.5", "siox", "H[2]2O", "Au"}
    assert next(m for m in built.materials if m.name == "C8H8").density == 1.05
    assert next(m for m in built.materials if m.name == "siox").density is None


def test_a_typographic_minus_is_a_minus():
    assert parse_film_text("Si / Ti 100 / \u22120.56").film.layers[-1].sld == -0.56


def test_names_are_case_insensitive_and_keywords_in_any_order():
    a = parse_film_text("si / pmma 500 rough 8 isld 0.001 / AIR").film
    b = parse_film_text("Si / PMMA isld 0.001 Rough 8 500 / air").film
    assert a == b and a.layers[1].name == "PMMA"


def test_beam_side_is_passed_through():
    assert parse_film_text("Si / Au 100 / D2O", beam_from="substrate").film.beam_from == "substrate"


def test_repeat_expands_with_names_and_ties():
    built = parse_film_text("Si / SiO2 12 / 3 x [PEO 33 / dPS 40 rough 4] / air")
    names = [l.name for l in built.film.layers]
    assert names == ["Si", "SiO2", "PEO#1", "dPS#1", "PEO#2", "dPS#2", "PEO#3", "dPS#3", "air"]
    assert [l.thickness for l in built.film.layers[2:8]] == [33.0, 40.0] * 3
    assert [l.roughness for l in built.film.layers[2:8]] == [0.0, 4.0] * 3
    ties = {(t["i"], t["par"]): (t["same_as"]["i"], t["same_as"]["par"]) for t in built.ties}
    for copy in (1, 2):  # copies 2 and 3 (0-based 1, 2) take copy 1's values
        for j in (0, 1):
            for par in LAYER_FIELDS:
                key = (2 + 2 * copy + j, par)
                if key == (7, "roughness"):
                    assert key not in ties  # dPS#3's top interface meets air, not another PEO
                else:
                    assert ties[key] == (2 + j, par)
    assert len(built.ties) == 2 * 2 * 4 - 1
    assert all(set(t) == {"i", "par", "same_as"} and set(t["same_as"]) == {"i", "par"} for t in built.ties)
    assert [m.name for m in built.materials] == ["Si", "SiO2", "PEO", "dPS", "air"]


@pytest.mark.parametrize("sign", ["x", "X", "×", "*"])
def test_repeat_signs_and_spacing(sign):
    spaced = parse_film_text(f"Si / 2 {sign} [PEO 33 / dPS 40] / air")
    glued = parse_film_text(f"Si/2{sign}[PEO 33/dPS 40]/air")
    assert spaced == glued and len(spaced.film.layers) == 6


def test_one_copy_has_no_ties():
    built = parse_film_text("Si / 1 x [PEO 33] / air")
    assert [l.name for l in built.film.layers] == ["Si", "PEO#1", "air"] and built.ties == ()


def test_repeat_of_formulas_with_isotopes():
    built = parse_film_text("Si / 2 x [C8D8@1.13 40 / H[2]2O@1.107 20] / air")
    assert [l.name for l in built.film.layers] == ["Si", "C8D8#1", "H[2]2O#1", "C8D8#2", "H[2]2O#2", "air"]


def test_limits():
    at_most = parse_film_text(f"Si / {MAX_REPEAT} x [PEO 3 / dPS 4] / air")
    assert len(at_most.film.layers) == 2 * MAX_REPEAT + 2
    with pytest.raises(FilmTextError, match="at most 20 here"):
        parse_film_text("Si / 10 x [PEO 33 / dPS 40] / air", max_layers=20)
    assert len(parse_film_text("Si / 9 x [PEO 33 / dPS 40] / air", max_layers=20).film.layers) == 20
    # the layer bound is the physics' one even when a larger one is asked for
    with pytest.raises(FilmTextError, match=f"at most {MAX_LAYERS:,} here"):
        parse_film_text("Si / " + " / ".join(["60 x [PEO 1 / dPS 1]"] * 9) + " / air", max_layers=10**6)


@pytest.mark.parametrize(("text", "message", "token"), [
    ("Si / SiO2 12 / PMMX 500 / air", r"^token 3 'PMMX 500': unknown material 'PMMX'; did you mean PMMA\?$", 3),
    ("Si / 5 x [PEO 33 / dPX 40] / air",
     r"^token 2 \(repeat\), layer 2 'dPX 40': unknown material 'dPX'; did you mean dPS\?$", 2),
    ("", r"^film text: empty; write the layers substrate first", None),
    ("Si", r"needs at least a substrate and an ambient", 1),
    ("Si / / air", r"^token 2 '': empty", 2),
    ("Si / air /", r"^token 3 '': empty", 3),
    ("Si / PMMA / air", r"^token 2 'PMMA': needs a thickness in Å, e.g. 'PMMA 100'$", 2),
    ("Si / sld 3.5 / air", r"^token 2 'sld 3.5': needs a thickness in Å, e.g. 'sld 3.5 100'$", 2),
    ("Si 10 / air", r"^token 1 'Si 10': the substrate is semi-infinite: give it no thickness", 1),
    ("Si / air 5", r"^token 2 'air 5': the ambient is semi-infinite", 2),
    ("Si / air rough 2", r"^token 2 'air rough 2': the ambient is semi-infinite", 2),
    ("Si / 5 x [PEO 33 / [dPS 40]] / air", r"^token 2 \(character 20\): repeats cannot be nested$", 2),
    ("Si / 5 x [PEO 33 / air", r"^token 2 \(character 10\): '\[' is never closed with '\]'$", 2),
    ("Si / PEO 33] / air", r"^token 2 \(character 12\): '\]' without a '\['$", 2),
    ("Si / 500 x [PEO 33] / air", r"^token 2 '500 x \[PEO 33\]': the repeat count must be a whole number from 1 "
     r"to 100, got '500'$", 2),
    ("Si / 0 x [PEO 33] / air", r"the repeat count must be a whole number from 1 to 100, got '0'", 2),
    ("Si / 2.5 x [PEO 33] / air", r"the repeat count must be a whole number from 1 to 100, got '2.5'", 2),
    ("Si / 5 x [PEO 33] rough 3 / air", r"^token 2 '5 x \[PEO 33\] rough 3': nothing may follow the '\]'", 2),
    ("Si / [PEO 33] / air", r"^token 2 '\[PEO 33\]': a repeat is written N x \[layer / layer …\]", 2),
    ("Si / 5 x [] / air", r"^token 2 \(repeat\), layer 1 '': empty", 2),
    ("Si / 5 x [PEO 33 / ] / air", r"^token 2 \(repeat\), layer 2 '': empty", 2),
    ("Si / 5 x [PEO] / air", r"^token 2 \(repeat\), layer 1 'PEO': needs a thickness", 2),
    ("5 x [Si] / air", r"^token 1 '5 x \[Si\]': the substrate cannot be a repeat$", 1),
    ("Si / 5 x [PEO 3]", r"^token 2 '5 x \[PEO 3\]': the ambient cannot be a repeat$", 2),
    ("Si / PMMA 2e5 / air", r"^token 2 'PMMA 2e5': thickness: 200000 Å is beyond the physical bound 100000 Å$", 2),
    ("Si / PMMA 50 rough 2000 / air", r"roughness: 2000 Å is beyond the physical bound 1000 Å$", 2),
    ("Si / PMMA 50 rough 200 nm / air", r"roughness: 2000 Å is beyond the physical bound 1000 Å$", 2),
    ("Si / PMMA -5 / air", r"^token 2 'PMMA -5': thickness: must be ≥ 0 Å, got -5$", 2),
    ("Si / PMMA 50 60 / air", r"^token 2 'PMMA 50 60': thickness is given twice$", 2),
    ("Si / PMMA 50 rough 1 rough 2 / air", r"roughness is given twice$", 2),
    ("Si / PMMA 50 rough / air", r"^token 2 'PMMA 50 rough': roughness: a number \(Å\) must follow$", 2),
    ("Si / PMMA 50 rough big / air", r"roughness: expected a length in Å, got 'big'$", 2),
    ("Si / PMMA 50 foo / air", r"^token 2 'PMMA 50 foo': unexpected 'foo'; after the material come a thickness", 2),
    ("Si / PMMA 50 nm nm / air", r"unexpected 'nm'", 2),
    ("Si / C8H8 50 / air", r"^token 2 'C8H8 50': 'C8H8' is not in the materials table: give the formula's density "
     r"in g/cm³, e.g. C8H8@DENSITY$", 2),
    ("Si / Co 50 / air", r"'Co' is not in the materials table: give the formula's density in g/cm³, e.g. Co@8\.9", 2),
    ("Si / Qqq 50 / air", r"^token 2 'Qqq 50': unknown material 'Qqq': not in the materials table; write a formula "
     r"with its density \(C8H8@1\.05, g/cm³\) or an SLD \(sld 3\.5\)$", 2),
    ("Si / C8H8@0 50 / air", r"^token 2 'C8H8@0 50': density: must be > 0 g/cm³, got 0", 2),
    ("Si / C8H8@30 50 / air", r"density: 30 g/cm³ is beyond the physical bound 25 g/cm³", 2),
    ("Si / C8H8@ 50 / air", r"^token 2 'C8H8@ 50': density of C8H8 \(g/cm³\): expected a number, got ''$", 2),
    ("Si / @1 50 / air", r"^token 2 '@1 50': formula: empty", 2),
    ("Si / Xx@2 50 / air", r"^token 2 'Xx@2 50': formula 'Xx': unknown element Xx$", 2),
    ("Si / sld 500 50 / air", r"SLD: 500 10⁻⁶ Å⁻² is beyond the physical bound \|SLD\| ≤ 100$", 2),
    ("Si / sld / air", r"^token 2 'sld': 'sld' must be followed by a number", 2),
    ("Si / sld abc 5 / air", r"SLD: expected a number, got 'abc'$", 2),
    ("Si / a= 50 / air", r"^token 2 'a= 50': give the SLD after '=' with no space, e.g. a=3.5$", 2),
    ("Si / PMMA 50 isld -1 / air", r"iSLD: absorption must be ≥ 0 10⁻⁶ Å⁻², got -1$", 2),
    ("Si / PMMA 50 isld / air", r"'isld' must be followed by a number", 2),
    ("Si / 1e999 50 / air", r"SLD: must be finite, got '1e999'$", 2),
    ("Si / PMMA 1" + "0" * 400 + " / air", r"thickness: must be finite, got '1" + "0" * 36 + "…'$", 2),
    ("Si / 60 x [PMMA 2000] / air", r"^the film: the film is 120000 Å thick in all; the bound is 100000 Å", None),
    ("Si / " + "x" * MAX_TEXT_CHARS, r"^film text: at most 2,000 characters, got 2,005$", None),
])
def test_error_messages_name_the_token(text, message, token):
    with pytest.raises(FilmTextError, match=message) as info:
        parse_film_text(text)
    assert info.value.token == token
    assert isinstance(info.value, InvalidInput)


def test_error_position_is_the_tokens_first_character():
    with pytest.raises(FilmTextError) as info:
        parse_film_text("Si / SiO2 12 /   PMMX 500 / air")
    assert info.value.start == 17 and "Si / SiO2 12 /   PMMX 500 / air"[17:].startswith("PMMX")


def test_not_text_is_refused():
    with pytest.raises(FilmTextError, match="expected text, got int"):
        parse_film_text(5)


def test_film_to_text():
    assert film_to_text(parse_film_text(EXAMPLE).film) == EXAMPLE
    film = Film(layers=(Layer("Si", 2.07, roughness=3), Layer("Cr adhesion", 3.03, 0, 20, 4),
                        Layer("Au", 4.66, 0.016, 150, 5), Layer("", 1.5, 0, 10), Layer("D2O", 6.36)))
    assert film_to_text(film) == ("Si=2.07 rough 3 / Cr_adhesion=3.03 20 rough 4 / Au=4.66 isld 0.016 150 rough 5"
                                  " / sld 1.5 10 / D2O=6.36")
    repeated = parse_film_text("Si / 2 x [PEO 33 / dPS 40] / air").film
    assert film_to_text(repeated) == "Si / PEO 33 / dPS 40 / PEO 33 / dPS 40 / air"


@pytest.mark.parametrize("film", list(PRESETS.values()), ids=list(PRESETS))
def test_film_to_text_round_trip(film):
    back = parse_film_text(film_to_text(film), beam_from=film.beam_from).film
    assert [l.name for l in back.layers] == [l.name.replace(" ", "_") for l in film.layers]
    for a, b in zip(back.layers, film.layers):
        for field in LAYER_FIELDS:  # written with 6 significant digits
            assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-5, abs=1e-9)
