"""The explorer's downloads say what they are: the curve and profile CSVs carry units, resolution and the
film as # lines, and still read back as plain data (our reader, numpy) with the film recoverable."""

from __future__ import annotations

import io

import numpy as np
import pytest

from reflect_core.formats.curves import parse_curve
from reflect_core.formats.downloads import curve_csv, profile_csv
from reflect_core.formats.film_text import parse_film_text
from reflect_core.physics.presets import PRESETS
from reflect_core.physics.simulate import CurveSettings, film_profile, film_reflectivity

FILM = next(iter(PRESETS.values()))


def comment_lines(text: str) -> list[str]:
    return [line[2:] for line in text.splitlines() if line.startswith("# ")]


def test_the_curve_csv_reads_back_and_names_its_resolution_and_film():
    q = np.geomspace(0.008, 0.2, 50)
    r = film_reflectivity(FILM, q, CurveSettings(dq=0.03, scale=0.95, background=2e-7))
    text = curve_csv(FILM, q, r, dq=0.03, background=2e-7, scale=0.95)
    curve = parse_curve(text, "curve.csv")
    assert np.allclose(curve.q, q, rtol=1e-9) and np.allclose(curve.r, r, rtol=1e-9)  # written with %.10g
    notes = comment_lines(text)
    assert any("dQ/Q = 3 % FWHM" in n and "scale 0.95" in n and "background 2e-07" in n for n in notes)
    film_line = notes[notes.index(next(n for n in notes if n.startswith("film ("))) + 1]
    back = parse_film_text(film_line).film
    for original, read in zip(FILM.layers, back.layers, strict=True):  # film text keeps 6 significant digits
        assert read.sld == pytest.approx(original.sld, rel=1e-5, abs=1e-9)
        assert read.thickness == pytest.approx(original.thickness, rel=1e-5, abs=1e-9)


def test_the_profile_csv_has_isld_and_units():
    z, sld, isld = film_profile(FILM)
    text = profile_csv(FILM, z, sld, isld)
    header_at = len(comment_lines(text))
    assert text.splitlines()[header_at] == "z,sld,isld"
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=header_at + 1)
    assert np.allclose(table, np.column_stack([z, sld, isld]), rtol=1e-9, atol=1e-12)
    assert any("1e-6 A^-2" in n for n in comment_lines(text))


@pytest.mark.parametrize("name, stem", [("my film 2", "my_film_2"), ("../../etc/passwd", "etc_passwd"),
                                        ("", "fallback"), ("...", "fallback"), ("x" * 60, "x" * 40)])
def test_download_names_come_from_the_users_name_and_stay_plain(name, stem):
    from reflect_core.base.storage import file_stem

    assert file_stem(name, "fallback") == stem


def test_a_film_name_with_line_breaks_cannot_add_data_lines():
    from dataclasses import replace

    hostile = replace(FILM, name="x\n0.5,1e9\r\n0.6,2e9\u2028")
    q = np.geomspace(0.01, 0.1, 5)
    text = curve_csv(hostile, q, np.ones(5), dq=0.0, background=0.0, scale=1.0)
    curve = parse_curve(text, "curve.csv")
    assert np.allclose(curve.q, q) and len(curve.q) == 5  # only the five real points
    assert all(line.startswith("#") or line[0].isdigit() or line == "Q,R" for line in text.splitlines())
