"""Stored files (issue 8): a curve is parsed once, at upload, into a validated Curve that is
kept in one canonical form and read back from it everywhere (ORSO's 1/nm and 1-sigma
resolutions stay converted, extra ORSO columns and byte-order marks do no harm); R in %,
counts or log10 is refused; training arrays need a strictly increasing Q grid and nothing
after their numbers; each user's storage counts against a quota; and on the Models page a
curve or model that cannot be read shows why, with a Delete button, while the rest works.
Every file is made here, at test time."""

import dataclasses
import io
import json
import math
import zipfile

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from reflect_core.accounts.access import LOCAL_USER, User
from reflect_core.accounts.limits import SHARED, LimitError
from reflect_core.analysis.measured import RESULTS, analyse, load_saved, save_analysis
from reflect_core.base.errors import NotFound
from reflect_core.base.storage import data_dir
from reflect_core.formats.arrays import ArrayError, load_npy, load_training_arrays
from reflect_core.formats.curves import (
    CANONICAL_MARK,
    Curve,
    CurveError,
    canonical_text,
    parse_canonical,
    parse_curve,
    read_curve,
)
from reflect_core.physics.presets import DEFAULT_FILM
from reflect_core.physics.reflectivity import reflectivity
from reflect_core.physics.simulate import film_profile
from reflect_core.store import history, user_curves, user_files
from reflect_core.store.records import record_dir
from reflect_core.uploads import UploadError, validate_upload

ALICE = User("alice")
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
Q = np.geomspace(0.01, 0.2, 20)  # Å⁻¹
LIMIT = 50_000_000


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    return tmp_path


def orso_text(q=Q, unit="1/nm", extra_column=True, r=None) -> str:
    """An ORSO file with Qz in ``unit``, 1-sigma sR and sQz (ORSO's default), and (by default)
    a fifth column, as instruments write them."""
    from orsopy import fileio
    from orsopy.fileio import orso

    factor = {"1/nm": 10.0, "1/angstrom": 1.0}[unit]
    r = np.minimum(1, 1e-7 * q ** -4) if r is None else r
    info = orso.Orso.empty()
    info.columns = [fileio.Column("Qz", unit), fileio.Column("R"), fileio.ErrorColumn("R"),
                    fileio.ErrorColumn("Qz")] + ([fileio.Column("lambda", "1/angstrom")] if extra_column else [])
    table = [q * factor, r, 0.05 * r, 0.01 * q * factor] + ([np.full_like(q, 6.0)] if extra_column else [])
    buffer = io.StringIO()
    orso.save_orso([orso.OrsoDataset(info, np.column_stack(table))], buffer)
    return buffer.getvalue()


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def nr_array(q=Q, n=3) -> np.ndarray:
    nr = np.empty((n, 2, q.size), np.float32)
    nr[:, 0] = q
    nr[:, 1] = np.minimum(1.0, 1e-7 * q ** -4.0)
    return nr


# --- one parse, one canonical form -------------------------------------------------------------------------------


def test_orso_in_inverse_nm_with_sigma_resolution_is_kept_in_inverse_angstrom_and_fwhm():
    text = orso_text()
    name = user_curves.save_curve(ALICE, "run 7.ort", text.encode())
    assert name == "run_7.ort" and user_curves.curves(ALICE) == [name]
    curve = user_curves.load_curve(ALICE, name)
    np.testing.assert_allclose(curve.q, Q, rtol=1e-15)  # 0.1 … 2 nm⁻¹ in the file
    np.testing.assert_allclose(curve.dq, 0.01 * Q * FWHM_PER_SIGMA, rtol=1e-15)  # σ → FWHM
    np.testing.assert_allclose(curve.dr, 0.05 * curve.r, rtol=1e-15)
    folder = data_dir() / "uploads" / "alice" / "curves" / name
    assert (folder / "original.ort").read_text() == text  # kept as it came, for download only
    stored = (folder / "curve.csv").read_text()
    assert stored.splitlines()[:2] == [CANONICAL_MARK, "Q,R,dR,dQ_FWHM"]
    # The general text reader of the same CSV agrees: no unit is left to guess.
    np.testing.assert_array_equal(parse_curve(stored, "curve.csv").dq, curve.dq)
    # Read as plain columns (what re-reading the original did), Q would be 10× too large and the
    # resolution 2.35× too narrow: the text reader refuses an ORSO file instead.
    with pytest.raises(CurveError, match="run.ort: an ORSO file"):
        parse_curve(orso_text(extra_column=False), "run.ort")
    with pytest.raises(UploadError, match="give it the .ort extension"):
        validate_upload("run.txt", text.encode(), "curve", LIMIT)


def test_five_column_orso_and_columns_found_by_name():
    curve = validate_upload("five.ort", orso_text(unit="1/angstrom").encode(), "curve", LIMIT).content
    np.testing.assert_allclose(curve.q, Q)
    np.testing.assert_allclose(curve.dq, 0.01 * Q * FWHM_PER_SIGMA)
    name = user_curves.save_curve(ALICE, "five.ort", orso_text().encode(), curve)
    assert user_curves.load_curve(ALICE, name).q.size == Q.size
    assert user_curves.load_curve(ALICE, name).dq[0] == pytest.approx(0.01 * Q[0] * FWHM_PER_SIGMA)


def test_canonical_form_round_trips_exactly_and_refuses_damage():
    rng = np.random.default_rng(1)
    for curve in (Curve(Q, rng.random(Q.size)), Curve(Q, rng.random(Q.size), dq=Q / 3),
                  Curve(Q, rng.random(Q.size), rng.random(Q.size), rng.random(Q.size))):
        back = parse_canonical(canonical_text(curve), "c")
        for a, b in zip((curve.q, curve.r, curve.dr, curve.dq), (back.q, back.r, back.dr, back.dq)):
            assert (a is None and b is None) or np.array_equal(a, b)
    good = canonical_text(Curve(Q, Q))
    for damaged in ("0.01,1\n0.02,2\n", good.replace("Q,R", "Q,X"), good.replace("0.01", "nan", 1),
                    "\n".join(good.splitlines()[:3]), good + "0.3\n"):
        with pytest.raises(CurveError, match="c: the stored curve is damaged"):
            parse_canonical(damaged, "c")


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf0.01 1\n0.02 0.5\n", b"\xef\xbb\xbfQ,R\n0.01,1\n0.02,0.5\n",
                                 "\ufeff0.01,1\n0.02,0.5\n"])
def test_a_byte_order_mark_before_the_data_is_read_past(raw, tmp_path):
    curve = parse_curve(raw, "bom.csv")
    np.testing.assert_array_equal(curve.q, [0.01, 0.02])
    (tmp_path / "bom.csv").write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    np.testing.assert_array_equal(read_curve(tmp_path / "bom.csv").r, [1, 0.5])
    name = user_curves.save_curve(ALICE, "bom.csv", raw if isinstance(raw, bytes) else raw.encode())
    np.testing.assert_array_equal(user_curves.load_curve(ALICE, name).q, [0.01, 0.02])


def test_curves_kept_as_plain_files_are_moved_and_parsed_once_with_the_upload_parser():
    legacy = data_dir() / "uploads" / "alice" / "curves"
    legacy.mkdir(parents=True)
    (legacy / "old.ort").write_text(orso_text())
    (legacy / "bom.txt").write_bytes(b"\xef\xbb\xbf0.01 1 0.1\n0.02 0.5 0.05\n")
    (legacy / "broken.txt").write_bytes(b"0.01 1\n0.02 abc\n")
    assert sorted(user_curves.curves(ALICE)) == ["bom.txt", "broken.txt", "old.ort"]
    assert not any(p.is_file() for p in legacy.iterdir())  # every plain file moved into its folder
    curve = user_curves.load_curve(ALICE, "old.ort")
    np.testing.assert_allclose(curve.q, Q)
    np.testing.assert_allclose(curve.dq, 0.01 * Q * FWHM_PER_SIGMA)
    assert (legacy / "old.ort" / "curve.csv").is_file()  # parsed once; read from the canonical form after
    assert user_curves.load_curve(ALICE, "bom.txt").dr[1] == 0.05
    with pytest.raises(UploadError, match="broken.txt, line 2: not numbers"):
        user_curves.load_curve(ALICE, "broken.txt")
    assert user_curves.original_file(ALICE, "broken.txt").read_bytes() == b"0.01 1\n0.02 abc\n"
    user_curves.delete_curve(ALICE, "broken.txt")
    assert sorted(user_curves.curves(ALICE)) == ["bom.txt", "old.ort"]
    for bad in ("../alice", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            user_curves.load_curve(ALICE, bad)
    with pytest.raises(NotFound):
        user_curves.load_curve(User("bob"), "old.ort")  # nothing is shared between users


def test_a_second_upload_of_one_name_gets_its_own_name():
    first = user_curves.save_curve(ALICE, "a.txt", b"0.01 1\n0.02 0.5\n")
    second = user_curves.save_curve(ALICE, "a.txt", b"0.01 1\n0.03 0.5\n")
    assert (first, second) == ("a.txt", "a-1.txt")
    assert user_curves.load_curve(ALICE, second).q[1] == 0.03


def test_analyses_keep_the_canonical_curve_and_old_ones_with_orso_still_read_in_our_units():
    curve = validate_upload("run.ort", orso_text().encode(), "curve", LIMIT).content
    z, sld, _ = film_profile(DEFAULT_FILM)
    result = analyse(z, sld, curve, model_dq=0.0295)
    record = save_analysis(ALICE, "a", result, "run.ort", curve, {"id": "m1", "name": "m"})
    folder = record_dir(record) / RESULTS
    assert [p.name for p in folder.glob("measured.*")] == ["measured.csv"]
    loaded, _ = load_saved(record_dir(record))
    np.testing.assert_array_equal(loaded.q, curve.q)
    np.testing.assert_array_equal(loaded.dq, curve.dq)
    # A record saved before the canonical form kept the original upload.
    (folder / "measured.csv").unlink()
    (folder / "measured.ort").write_text(orso_text())
    loaded, _ = load_saved(record_dir(record))
    np.testing.assert_allclose(loaded.q, curve.q)
    np.testing.assert_allclose(loaded.dq, curve.dq)


# --- F12: R in %, counts or log10 --------------------------------------------------------------------------------


def text_curve(r) -> bytes:
    return "".join(f"{q:.6g} {v:.6g}\n" for q, v in zip(Q, r)).encode()


R = np.minimum(1, 1e-7 * Q ** -4)


@pytest.mark.parametrize("filename, data, words", [
    ("pct.txt", text_curve(100 * R), "looks like R in %"),
    ("counts.dat", text_curve(2e5 * R), "looks like counts"),
    ("log.csv", text_curve(np.log10(R)), "looks like log10 R"),
    ("zeros.txt", text_curve(0 * R), "no positive value"),
    ("pct.ort", orso_text(r=100 * R).encode(), "looks like R in %"),
])
def test_measured_r_in_percent_counts_or_log10_is_refused(filename, data, words):
    with pytest.raises(UploadError, match=words) as refused:
        validate_upload(filename, data, "curve", LIMIT)
    assert str(refused.value).startswith(filename)
    with pytest.raises(UploadError):
        user_curves.save_curve(ALICE, filename, data)
    assert user_curves.curves(ALICE) == []


def test_real_data_with_a_few_negative_r_and_repeated_q_is_accepted(shared_data_path):
    curve = validate_upload(shared_data_path.name, shared_data_path.read_bytes(), "curve", LIMIT).content
    assert np.sum(curve.r < 0) == 2 and np.unique(curve.q).size < curve.q.size
    name = user_curves.save_curve(ALICE, shared_data_path.name, shared_data_path.read_bytes(), curve)
    back = user_curves.load_curve(ALICE, name)
    np.testing.assert_array_equal(back.q, curve.q)
    np.testing.assert_array_equal(back.dq, curve.dq)


# --- training arrays: the Q grid and the file's length -----------------------------------------------------------


@pytest.mark.parametrize("q, words", [
    (np.r_[Q[:5], Q[4:]], "Q repeats at point 6"),
    (np.r_[Q[:5], Q[3], Q[6:]], "Q decreases at point 6"),
    (Q[::-1].copy(), "Q decreases at point 2"),
])
def test_training_q_grids_must_increase_strictly(q, words, tmp_path):
    with pytest.raises(UploadError, match=words):
        validate_upload("nr.npy", npy(nr_array(q)), "nr", LIMIT)
    nr, sld = nr_array(q, 12), np.zeros((12, 2, 30), np.float32)
    sld[:, 0] = np.linspace(0, 100, 30)
    np.save(tmp_path / "nr.npy", nr)
    np.save(tmp_path / "sld.npy", sld)
    with pytest.raises(ArrayError, match=words):
        load_training_arrays(tmp_path / "nr.npy", tmp_path / "sld.npy")


def test_bytes_after_the_array_are_refused(tmp_path):
    data = npy(nr_array()) + b"PK\x03\x04 a second payload"
    with pytest.raises(UploadError, match="bytes after the"):
        validate_upload("nr.npy", data, "nr", LIMIT)
    (tmp_path / "tail.npy").write_bytes(data)
    with pytest.raises(ArrayError, match="21 bytes follow the array"):
        load_npy(tmp_path / "tail.npy", "NR")
    (tmp_path / "cut.npy").write_bytes(npy(nr_array())[:-4])
    with pytest.raises(ArrayError, match="truncated"):
        load_npy(tmp_path / "cut.npy", "NR")
    (tmp_path / "ok.npy").write_bytes(npy(nr_array()))
    assert load_npy(tmp_path / "ok.npy", "NR").shape == (3, 2, Q.size)


# --- the storage quota ---------------------------------------------------------------------------------------------


def test_usage_counts_uploads_runs_and_analyses_of_the_user_only():
    user_curves.save_curve(ALICE, "a.txt", b"0.01 1\n0.02 0.5\n")
    run = data_dir() / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "state.json").write_text(json.dumps({"owner": "alice", "backend": "local", "state": "completed"}))
    (run / "big.bin").write_bytes(b"x" * 5000)
    other = data_dir() / "runs" / "r2"
    other.mkdir()
    (other / "state.json").write_text(json.dumps({"owner": "bob", "backend": "local", "state": "completed"}))
    (other / "big.bin").write_bytes(b"x" * 7000)
    analyses = data_dir() / "history" / "analyses" / "alice" / "x"
    analyses.mkdir(parents=True)
    (analyses / "profile.csv").write_bytes(b"y" * 300)
    uploads = sum(p.stat().st_size for p in (data_dir() / "uploads" / "alice").rglob("*") if p.is_file())
    assert user_files.usage_bytes(ALICE) == uploads + 5000 + len((run / "state.json").read_bytes()) + 300
    assert user_files.usage_bytes(User("carol")) == 0


def test_a_save_over_the_quota_is_refused_naming_used_limit_and_size():
    user_curves.save_curve(ALICE, "a.txt", b"0.01 1\n0.02 0.5\n")
    used = user_files.usage_bytes(ALICE)
    tight = dataclasses.replace(SHARED, storage_bytes=used + 100)
    data = text_curve(R)
    with pytest.raises(LimitError) as refused:
        user_curves.save_curve(ALICE, "b.txt", data, limits=tight)
    message = str(refused.value)
    assert isinstance(refused.value, user_files.QuotaError)
    assert "b.txt" in message and user_files.human_bytes(used) in message
    assert user_files.human_bytes(used + 100) in message and "kB" in message  # the size refused
    assert user_curves.curves(ALICE) == ["a.txt"] and user_files.usage_bytes(ALICE) == used
    with pytest.raises(user_files.QuotaError):
        user_files.save_array_pair(ALICE, ("n.npy", b"0" * 200, (1, 2, 3)), ("s.npy", b"", (1, 2, 3)), limits=tight)
    assert user_files.array_sets(ALICE) == []
    roomy = dataclasses.replace(SHARED, storage_bytes=used + 10_000)
    assert user_curves.save_curve(ALICE, "b.txt", data, limits=roomy) == "b.txt"


# --- the Models page: every curve and model on its own -------------------------------------------------------------


def broken_model_records() -> tuple[dict, dict]:
    folder = data_dir() / "uploads" / "local" / "models" / "bad"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "model.json").write_text("{not json")
    damaged = history.add(LOCAL_USER, "import", "damaged upload", {"source": "uploaded model"},
                          files="uploads/local/models/bad")
    missing = history.add(LOCAL_USER, "training", "lost run", {}, {"state": "completed"}, files="runs/gone")
    return damaged, missing


def test_models_lists_broken_models_with_their_reason_and_deletes_them():
    damaged, missing = broken_model_records()
    found = {m.record["id"]: m for m in user_files.models(LOCAL_USER)}
    assert "not valid JSON" in found[damaged["id"]].error and "missing" in found[missing["id"]].error
    assert user_files.model_records(LOCAL_USER) == []
    user_files.delete_model(LOCAL_USER, damaged["id"])
    assert not (data_dir() / "uploads" / "local" / "models" / "bad").exists()
    assert [m.record["id"] for m in user_files.models(LOCAL_USER)] == [missing["id"]]


def test_broken_curve_and_model_show_an_error_with_delete_and_the_page_still_works():
    from test_history_app import trained_record

    model = trained_record("tiny model", 1)
    meta = json.loads((record_dir(model) / "model" / "model.json").read_text())
    q = np.asarray(meta["q"])
    r = reflectivity(DEFAULT_FILM.beam_array()[None], q, meta["dq"])[0]
    good = user_curves.save_curve(LOCAL_USER, "five.ort", orso_text(q=q, r=r).encode())  # 1/nm, 5 columns
    broken = user_curves.save_curve(LOCAL_USER, "broken.txt", b"0.01 1\n0.02 0.5\n")
    (data_dir() / "uploads" / "local" / "curves" / broken / "curve.csv").write_text("garbage")
    damaged, _ = broken_model_records()

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("broken.txt" in e and "damaged" in e for e in errors), errors
    assert any("not valid JSON" in e for e in errors) and any("missing" in e for e in errors), errors
    assert any("Your storage:" in c.value and "of 20.0 GB" in c.value for c in at.caption)
    assert any(meta["model"]["arch"] in c.value for c in at.caption)  # the good card still renders
    # Predict reads the 5-column ORSO curve in Å⁻¹: it covers the model's grid, nothing extrapolates.
    [curve_box] = [s for s in at.selectbox if s.label == "Measured curve"]
    assert curve_box.options == [good]
    assert {"Reduced χ²", "Points"} <= {m.label for m in at.metric}
    assert next(m for m in at.metric if m.label == "Points").value == str(q.size)
    # The predicted profile carries the model's uncertainty band, with what it covers said under it.
    assert any("band 68 % interval" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any("split conformal" in c.value and "covers" in c.value for c in at.caption)

    at.button(key=f"manage_delete_curve_{broken}").click().run()  # asks first
    assert any("Delete curve 'broken.txt'?" in w.value and "cannot be undone" in w.value for w in at.warning)
    assert broken in user_curves.curves(LOCAL_USER)
    at.button(key=f"manage_yes_curve_{broken}").click().run()
    assert not at.exception, at.exception
    assert user_curves.curves(LOCAL_USER) == [good]
    at.button(key=f"manage_delete_model_{damaged['id']}").click().run()
    at.button(key=f"manage_yes_model_{damaged['id']}").click().run()
    assert not at.exception, at.exception
    assert damaged["id"] not in {m.record["id"] for m in user_files.models(LOCAL_USER)}
    assert not any("broken.txt" in e.value or "not valid JSON" in e.value for e in at.error)
    assert {"Reduced χ²", "Points"} <= {m.label for m in at.metric}


def test_a_model_over_the_quota_is_refused_and_nothing_is_kept():
    from test_uploads import model_zip

    data = model_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    assert unpacked > len(data)  # so the zip fits and only what it unpacks to does not: checked after unpacking
    tight = dataclasses.replace(SHARED, storage_bytes=len(data))
    with pytest.raises(user_files.QuotaError, match="model.zip"):
        user_files.add_model_zip(ALICE, "model.zip", data, LIMIT, limits=tight)
    assert user_files.models(ALICE) == [] and user_files.usage_bytes(ALICE) == 0
    record = user_files.add_model_zip(ALICE, "model.zip", data, LIMIT,
                                      limits=dataclasses.replace(SHARED, storage_bytes=2 * unpacked))
    assert user_files.model_records(ALICE)[0][0]["id"] == record["id"]


def test_measured_curves_can_be_previewed_on_the_models_page(tmp_path, monkeypatch):
    import json

    import numpy as np
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    from reflect_core.accounts.access import LOCAL_USER
    from reflect_core.formats.curves import csv_text
    from reflect_core.store import user_curves

    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    q = np.geomspace(0.01, 0.2, 40)
    user_curves.save_curve(LOCAL_USER, "mine.txt", csv_text(["Q", "R", "dR"], [q, 1e-4 / q, 1e-5 / q]).encode())
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/models.py").run()
    before = len(at.get("plotly_chart"))
    at.toggle(key="curve_previews").set_value(True).run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == before + 1
    preview = json.loads(charts[before].proto.spec)
    assert preview["data"][0]["name"] == "data" and preview["layout"]["xaxis"]["title"]["text"] == "Q (Å⁻¹)"


def test_curves_and_models_are_renamed_and_delete_can_be_called_off():
    from test_history_app import trained_record

    model = trained_record("tiny model", 1)
    name = user_curves.save_curve(LOCAL_USER, "run 7.txt", b"0.01 1\n0.02 0.5\n0.03 0.1\n")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/models.py").run()
    at.text_input(key=f"manage_name_curve_{name}").set_value("  Si/PS in D2O  ")
    at.button(key=f"manage_save_curve_{name}").click().run()
    assert not at.exception, at.exception
    assert user_curves.curve_label(LOCAL_USER, name) == f"Si/PS in D2O ({name})"  # the stored name stays
    assert user_curves.curves(LOCAL_USER) == [name]
    assert any(f"Si/PS in D2O ({name})" in m.value for m in at.markdown)
    at.text_input(key=f"manage_name_model_{model['id']}").set_value("   ")
    at.button(key=f"manage_save_model_{model['id']}").click().run()
    assert any("was not renamed: name is empty" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key=f"manage_name_model_{model['id']}").set_value("polymer net v2")
    at.button(key=f"manage_save_model_{model['id']}").click().run()
    assert [m.record["name"] for m in user_files.models(LOCAL_USER)] == ["polymer net v2"]
    at.button(key=f"manage_delete_model_{model['id']}").click().run()
    at.button(key=f"manage_keep_model_{model['id']}").click().run()  # called off: nothing goes
    assert not at.exception, at.exception
    assert [m.record["id"] for m in user_files.models(LOCAL_USER)] == [model["id"]]
    assert not any("cannot be undone" in w.value for w in at.warning)
    user_curves.rename_curve(LOCAL_USER, name, "")  # an empty label gives the stored name back
    assert user_curves.curve_label(LOCAL_USER, name) == name
