"""ORSO files of several data sets (spin states, contrasts): each data set is read in our units with a label
from its header, refused within bounds with a message naming the data set, and kept as its own stored curve."""

import dataclasses
import io
import os

import numpy as np
import pytest

from reflect_core.accounts.access import User
from reflect_core.accounts.limits import SHARED
from reflect_core.store import user_curves, user_files
from reflect_core.uploads import UploadError, validate_upload
from reflect_core.uploads.curves import (
    FWHM_PER_SIGMA,
    MAX_DATASETS,
    measured_curve,
    measured_curves,
    validate_curves,
)

ALICE, LIMIT = User("alice"), SHARED.upload_bytes
Q = np.geomspace(0.01, 0.2, 20)  # Å⁻¹


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))


def orso_file(sets, sample="PMMA on Si") -> bytes:
    """An ORSO file with one data set per entry of ``sets``: (name, Qz unit, sQz value_is, R factor)."""
    from orsopy import fileio
    from orsopy.fileio import orso

    found = []
    for name, unit, value_is, factor in sets:
        to_unit = {"1/nm": 10.0, "1/angstrom": 1.0, "1/m": 1e10}[unit]
        info = orso.Orso.empty()
        info.data_source.sample.name = sample
        info.data_set = name
        info.columns = [fileio.Column("Qz", unit), fileio.Column("R"), fileio.ErrorColumn("R"),
                        fileio.ErrorColumn("Qz", error_type="resolution", value_is=value_is)]
        r = factor * np.minimum(1, 1e-7 * Q ** -4)
        width = 0.02 * Q * (FWHM_PER_SIGMA if value_is == "FWHM" else 1.0)  # one physical resolution, either way
        found.append(orso.OrsoDataset(info, np.column_stack([Q * to_unit, r, 0.05 * r, width * to_unit])))
    buffer = io.StringIO()
    orso.save_orso(found, buffer)
    return buffer.getvalue().encode()


THREE = [("D2O", "1/angstrom", None, 1.0), ("H2O", "1/nm", "FWHM", 0.5), (None, "1/angstrom", "sigma", 0.25)]


def test_every_data_set_is_read_in_our_units_with_its_label():
    found = measured_curves("contrasts.ort", orso_file(THREE), ".ort")
    assert [label for _, label in found] == ["PMMA on Si [D2O]", "PMMA on Si [H2O]", "PMMA on Si [2]"]
    for (curve, _), (_, _, _, factor) in zip(found, THREE):
        # the same physical data in every unit and resolution kind: float round trip only
        np.testing.assert_allclose(curve.q, Q, rtol=1e-12)
        np.testing.assert_allclose(curve.r, factor * np.minimum(1, 1e-7 * Q ** -4), rtol=1e-12)
        np.testing.assert_allclose(curve.dq, 0.02 * Q * FWHM_PER_SIGMA, rtol=1e-12)  # FWHM, Å⁻¹
        np.testing.assert_allclose(curve.dr, 0.05 * curve.r, rtol=1e-12)


def test_one_data_set_reads_as_before_and_text_files_are_one_curve():
    single = orso_file(THREE[:1])
    [(curve, label)] = measured_curves("run.ort", single, ".ort")
    old, _ = measured_curve("run.ort", single, ".ort")
    assert label == "PMMA on Si"  # a file of one data set: no data set tag
    for a, b in zip((curve.q, curve.r, curve.dr, curve.dq), (old.q, old.r, old.dr, old.dq)):
        np.testing.assert_array_equal(a, b)
    [(text_curve, text_label)] = measured_curves("my run.txt", b"0.02 0.5\n0.01 1\n", ".txt")
    assert text_label == "my run" and text_curve.q.tolist() == [0.01, 0.02]
    with pytest.raises(UploadError, match="holds 3 data sets"):  # the one-curve route still wants one
        measured_curve("contrasts.ort", orso_file(THREE), ".ort")
    with pytest.raises(UploadError, match="holds 3 data sets"):
        validate_upload("contrasts.ort", orso_file(THREE), "curve", LIMIT)


def test_refusals_name_the_data_set_and_the_count_is_bounded():
    bad_unit = THREE[:1] + [("H2O", "1/m", None, 1.0)]
    with pytest.raises(UploadError, match=r"two\.ort \(data set 2 of 2\): its Qz column is in '1/m'"):
        measured_curves("two.ort", orso_file(bad_unit), ".ort")
    in_percent = THREE[:1] + [("H2O", "1/angstrom", None, 100.0)]
    with pytest.raises(UploadError, match=r"data set 2 of 2\): R goes up to 100.*R in %"):
        measured_curves("two.ort", orso_file(in_percent), ".ort")
    many = [(f"T{k}", "1/angstrom", None, 1.0) for k in range(MAX_DATASETS + 1)]
    with pytest.raises(UploadError, match=f"many.ort: holds {MAX_DATASETS + 1} data sets; 1 to {MAX_DATASETS}"):
        measured_curves("many.ort", orso_file(many), ".ort")
    with pytest.raises(UploadError, match="must be a .txt, .dat, .csv or .ort file"):
        validate_curves("curves.npy", b"0.01 1\n", LIMIT)


def test_a_file_of_several_data_sets_is_kept_as_one_curve_each():
    raw = orso_file(THREE)
    accepted = validate_curves("contrasts.ort", raw, LIMIT)
    assert accepted.description.startswith("3 measured curves (one per data set): PMMA on Si [D2O]: 20 points")
    names = user_curves.save_curves(ALICE, "contrasts.ort", raw, accepted.content, limits=SHARED)
    assert names == ["contrasts-1.ort", "contrasts-2.ort", "contrasts-3.ort"]
    assert user_curves.curves(ALICE) == names  # one upload lists in the file's order
    for name, (curve, label) in zip(names, accepted.content):
        back = user_curves.load_curve(ALICE, name)
        np.testing.assert_array_equal(back.r, curve.r)
        np.testing.assert_array_equal(back.dq, curve.dq)
        assert user_curves.curve_label(ALICE, name) == f"{label} ({name})"
    originals = [user_curves.original_file(ALICE, name) for name in names]
    assert all(p.read_bytes() == raw for p in originals)
    assert len({os.stat(p).st_ino for p in originals}) == 1  # stored once, linked into each folder
    assert user_files.usage_bytes(ALICE) < 2 * len(raw)  # ... and counted once
    user_curves.delete_curve(ALICE, names[1])
    assert user_curves.curves(ALICE) == [names[0], names[2]]
    assert user_curves.load_curve(ALICE, names[2]).r[0] == pytest.approx(0.25)
    # a folder without its canonical form is read again from the original: its own data set
    (user_curves.original_file(ALICE, names[2]).parent / user_curves.CURVE_FILE).unlink()
    np.testing.assert_array_equal(user_curves.load_curve(ALICE, names[2]).r, accepted.content[2][0].r)
    # a second upload of the same name takes free names, and one data set is kept as save_curve keeps it
    assert user_curves.save_curves(ALICE, "contrasts.ort", raw)[0] == "contrasts-1-1.ort"
    assert user_curves.save_curves(ALICE, "one.ort", orso_file(THREE[:1])) == ["one.ort"]
    assert user_curves.curve_label(ALICE, "one.ort") == "one.ort"


def test_several_data_sets_are_kept_whole_or_not_at_all(monkeypatch):
    raw = orso_file(THREE)
    real = user_curves._keep_curve
    calls = []

    def fail_third(folder, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(folder, name, *args, **kwargs)

    monkeypatch.setattr(user_curves, "_keep_curve", fail_third)
    with pytest.raises(OSError, match="disk full"):
        user_curves.save_curves(ALICE, "contrasts.ort", raw)
    assert user_curves.curves(ALICE) == []


def test_the_quota_counts_the_original_once_and_each_data_set():
    raw = orso_file(THREE)
    found = measured_curves("contrasts.ort", raw, ".ort")
    tight = dataclasses.replace(SHARED, storage_bytes=len(raw) + 100)
    with pytest.raises(user_files.QuotaError, match="contrasts.ort"):
        user_curves.save_curves(ALICE, "contrasts.ort", raw, found, limits=tight)
    assert user_curves.curves(ALICE) == []
