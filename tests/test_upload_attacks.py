"""The classes of the security findings of issue 8, each tested at its cause with small files
made here: no pickle is loaded by the server (F1), no tensor claims more numbers than its file
stores and no network is sized past a limit before anything is allocated (F3), hostile JSON,
zips and names are clean refusals that leave nothing behind and show no server path (F10),
and a model.json that passes validation renders (F6/F8)."""

import ast
import io
import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from conftest import ROOT
from test_uploads import (
    SMALL,
    SMALL_Q,
    SMALL_Z,
    STATS,
    Reduces,
    creates_file,
    model_zip,
    object_npy,
    small_meta,
    small_state,
    torch_bytes,
    zip_of,
)

from reflect_core.accounts.access import User
from reflect_core.base.storage import data_dir
from reflect_core.ml.meta import ModelLoadError, ModelMeta
from reflect_core.ml.models import build_model, parameter_count
from reflect_core.ml.settings import settings_from_dict
from reflect_core.store import history
from reflect_core.store.importer import import_bundle, import_json
from reflect_core.uploads import UploadError, pickled_stats, unpack_model_zip, validate_upload
from reflect_core.uploads.common import AlreadyExists
from reflect_core.uploads.weights import MAX_PARAMETERS

LIMIT = 50_000_000
HELPER = ROOT / "reflect_core" / "formats" / "pyreflect_pickle.py"
OBJECT_HEADER = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"


def npy_object_header() -> bytes:
    header = OBJECT_HEADER + b" " * (63 - len(OBJECT_HEADER)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def memory_flood_npy() -> bytes:
    """A 1 MB stats 'pickle' of 990,000 EMPTY_LIST opcodes: ~64 MB of lists on the unpickler's stack."""
    return npy_object_header() + b"\x80\x02" + b"]" * 990_000 + b"."


class BadDtype:
    """An object dtype whose state says 1-byte items: numpy would read raw bytes as object
    pointers (the class of the 264-byte file that segfaulted the server)."""

    def __reduce__(self):
        return np.dtype, ("O8", False, True), (3, "|", None, None, None, 1, 1, 63)


class BadArray:
    def __reduce__(self):
        from numpy.core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (4,), BadDtype(), False, b"\x41" * 32)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- F1: no pickle is loaded in the server process -----------------------------------------------------------------


def library_imports() -> dict[str, set[str]]:
    """Each module of reflect_core, ui and app_pages (by path) → the modules it imports."""
    found = {}
    for path in [*ROOT.glob("reflect_core/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("app_pages/*.py"),
                 ROOT / "app.py"]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        found[str(path.relative_to(ROOT))] = names
    return found


def test_only_the_child_helper_unpickles_and_nothing_imports_it():
    imports = library_imports()
    unpicklers = sorted(path for path, names in imports.items() if names & {"pickle", "_pickle", "dill", "joblib"})
    assert unpicklers == ["reflect_core/formats/pyreflect_pickle.py"]
    assert not [path for path, names in imports.items() if any("pyreflect_pickle" in name for name in names)]
    # the runner of the child is the command line's alone: no page, no server module starts it
    assert sorted(path for path, names in imports.items() if any("pickled_stats" in n for n in names)) == \
        ["reflect_core/cli.py"]
    helper = imports["reflect_core/formats/pyreflect_pickle.py"]
    assert not {name for name in helper if name.split(".")[0] in ("numpy", "torch", "reflect_core")}


@pytest.mark.parametrize("payload", [
    pytest.param(lambda marker: object_npy(creates_file(marker)), id="runs-a-function"),
    pytest.param(lambda marker: object_npy({"nr": BadArray()}), id="dtype-setstate"),
    pytest.param(lambda marker: npy_object_header() + b"\x80\x02" + b"]" * 10 + b".", id="not-an-array"),
])
def test_a_pickled_npy_upload_is_refused_unread_and_the_child_refuses_it_cleanly(payload, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    data = payload(marker)
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("the upload read the pickle"))
    with pytest.raises(UploadError) as refused:
        validate_upload("stats.npy", data, "pyreflect_stats", LIMIT)
    assert "import-pyreflect" in str(refused.value) and "never loads a pickle" in str(refused.value)
    with pytest.raises(UploadError, match=r"^stats\.npy: (refused|its pickle is unreadable)"):
        pickled_stats.stats_from_pickled_npy("stats.npy", data)
    assert not marker.exists()


def test_the_dtype_payload_is_refused_by_the_dtype_stand_in():
    with pytest.raises(UploadError, match="a numpy.dtype\\('O8'\\) with unusual fields"):
        pickled_stats.stats_from_pickled_npy("stats.npy", object_npy({"nr": BadArray()}))


def test_a_reader_that_exhausts_its_memory_is_a_clean_refusal():
    with pytest.raises(UploadError, match="flood.npy: its pickle needs more memory than the reader allows"):
        pickled_stats.stats_from_pickled_npy("flood.npy", memory_flood_npy(), memory_bytes=48 * 2**20)


def fake_helper(tmp_path, monkeypatch, code: str) -> None:
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent(code))
    monkeypatch.setattr(pickled_stats, "_helper_path", lambda: str(script))


def test_a_reader_that_segfaults_is_a_clean_refusal_and_the_parent_survives(tmp_path, monkeypatch):
    helper_path = pickled_stats._helper_path
    fake_helper(tmp_path, monkeypatch, "import ctypes\nctypes.string_at(0)\n")  # a read of address 0: SIGSEGV
    with pytest.raises(UploadError, match=r"stats\.npy: its pickle crashed the isolated reader \(SIGSEGV\)"):
        pickled_stats.stats_from_pickled_npy("stats.npy", object_npy(STATS))
    monkeypatch.setattr(pickled_stats, "_helper_path", helper_path)
    assert pickled_stats.stats_from_pickled_npy("stats.npy", object_npy(STATS)) == STATS


def test_a_reader_that_hangs_or_answers_nonsense_is_a_clean_refusal(tmp_path, monkeypatch):
    fake_helper(tmp_path, monkeypatch, "while True:\n    pass\n")
    with pytest.raises(UploadError, match=r"took over 1 s in the isolated reader; refused"):
        pickled_stats.stats_from_pickled_npy("stats.npy", object_npy(STATS), timeout_s=1)
    fake_helper(tmp_path, monkeypatch, "print('[1, 2]')\n")
    with pytest.raises(UploadError, match=r"the isolated reader of its pickle failed"):
        pickled_stats.stats_from_pickled_npy("stats.npy", object_npy(STATS))
    fake_helper(tmp_path, monkeypatch, "import json; print(json.dumps({'stats': {'nr': 1}}))\n")
    with pytest.raises(UploadError, match=r"no 'nr.x.min'"):
        pickled_stats.stats_from_pickled_npy("stats.npy", object_npy(STATS))


def test_the_child_limits_itself_before_reading(tmp_path):
    """Once limited, the helper's process can open no new file, write no byte to one it has, and
    allocate no more than its address space allows."""
    code = textwrap.dedent(f"""
        import importlib.util, os
        spec = importlib.util.spec_from_file_location("helper", {str(HELPER)!r})
        helper = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(helper)
        handle = open("kept", "wb")
        helper.limit_resources(256 * 2**20, 5)
        for name, attempt in [("open", lambda: open("new", "w")), ("write", lambda: handle.write(b"x") and
                              handle.flush()), ("memory", lambda: bytearray(512 * 2**20))]:
            try:
                attempt()
                print(name, "allowed")
            except (OSError, MemoryError) as exc:
                print(name, "refused", type(exc).__name__)
    """)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.stdout.split("\n")[:3] == ["open refused OSError", "write refused OSError",
                                           "memory refused MemoryError"], (done.stdout, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and (tmp_path / "kept").stat().st_size == 0


# --- F3: sizes bounded before anything is allocated ------------------------------------------------------------------


@pytest.mark.parametrize("settings, n_q, n_z", [({}, 308, 900), (SMALL, 40, 50), ({"layers": 7, "channels": 3}, 3, 7),
                                                ({"layers": 1, "channels": 512, "hidden": 8192}, 200, 50)])
def test_parameter_count_for_is_the_built_networks_count(settings, n_q, n_z):
    from reflect_core.ml.settings import parameter_count_for

    checked = settings_from_dict(settings)
    with torch.device("meta"):
        assert parameter_count_for(checked, n_q, n_z) == parameter_count(build_model(checked, n_q, n_z))


def test_pyreflects_parameter_count_without_building_it():
    pytest.importorskip("pyreflect")
    from reflect_core.ml.settings import parameter_count_for

    for layers in (1, 12, 30):
        checked = settings_from_dict({"arch": "pyreflect_cnn", "layers": layers})
        with torch.device("meta"):
            assert parameter_count_for(checked, 308, 900) == parameter_count(build_model(checked, 308, 900))
    assert parameter_count_for(settings_from_dict({"arch": "pyreflect_cnn"}), 308, 900) < MAX_PARAMETERS[
        "pyreflect_cnn"]


# Each case runs in a fresh child: build a tiny hostile file, then measure the peak RSS its
# refusal adds (ru_maxrss, in kB on Linux). Before the fix, the 1.9 KB expanded zip was accepted
# at +1,447 MB and the 2.1 KB 420 M bundle was imported at +1,608 MB.
MEASURE = r'''
import io, json, os, resource, sys, tempfile, zipfile
import numpy as np, torch
from reflect_core.ml.models import build_model
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import settings_from_dict
case, n_q, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = {"arch": "compact_cnn", "layers": layers, "channels": 512, "hidden": 8192, "dropout": 0.0}
q, z = [0.01] * n_q, np.linspace(0.0, 300.0, 50).tolist()
meta = json.dumps({"model": settings, "q": q, "z": z, "dq": 0.03,
                   "normalization": Normalizer(-8.0, 0.0, -1.0, 7.0, 0.01, 0.2, 0.0, 300.0).to_dict()}).encode()
with torch.device("meta"):
    shapes = {k: v.shape for k, v in build_model(settings_from_dict(settings), min(n_q, 200), 50).state_dict().items()}
buffer = io.BytesIO()
torch.save({k: torch.zeros(1).expand(s) for k, s in shapes.items()}, buffer)
members = {"model.json": meta, "model.pt": buffer.getvalue()}
if case == "bundle":
    members = {"record.json": json.dumps({"kind": "training", "name": "big", "params": {}}).encode(),
               **{f"model/{k}": v for k, v in members.items()}}
out = io.BytesIO()
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
    for name, content in members.items():
        archive.writestr(name, content)
data = out.getvalue()
os.environ["REFLECT_DATA_DIR"] = tempfile.mkdtemp()
from reflect_core.accounts.access import User
from reflect_core.store.importer import import_bundle
from reflect_core.uploads import validate_upload
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    if case == "bundle":
        import_bundle(User("bob"), "big.zip", data, 50_000_000)
    else:
        validate_upload("big.zip", data, "model", 50_000_000)
    result = "accepted"
except Exception as exc:
    result = f"{type(exc).__name__}: {exc}"
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
left = sorted(str(p) for p in __import__("pathlib").Path(os.environ["REFLECT_DATA_DIR"]).rglob("*") if p.is_file())
print(json.dumps({"bytes": len(data), "grown_mb": grown / 1024, "result": result, "left": left}))
'''


def measured(case: str, n_q: int, layers: int = 1) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, case, str(n_q), str(layers)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case, n_q, layers, declared", [
    ("upload", 200, 1, "419,851,314"),  # zero-stride tensors in a 2 KB zip
    ("bundle", 200, 1, "419,851,314"),  # the same model in a history bundle
    ("upload", 200, 64, "1,343,250,482"),  # 64 blocks of up to 2048 channels
])
def test_a_model_declaring_hundreds_of_millions_of_parameters_is_refused_before_allocating(case, n_q, layers,
                                                                                           declared):
    found = measured(case, n_q, layers)
    assert found["result"].startswith("UploadError: big.zip: its compact_cnn settings declare " + declared), found
    assert "over the limit of 50,000,000" in found["result"] and found["left"] == []
    assert found["bytes"] < 200_000 and found["grown_mb"] < 64, found


def test_a_huge_grid_in_a_small_zip_is_refused_before_it_is_parsed():
    found = measured("upload", 2_000_000)  # a 12 MB model.json in a 20 KB zip: 3.4 × 10¹² parameters
    assert found["result"].startswith("UploadError: big.zip: model.json is 12,0")
    assert found["result"].endswith("bytes, over the 10,000,000-byte limit")
    assert found["bytes"] < 100_000 and found["grown_mb"] < 64, found


def test_expanded_tensors_are_refused_even_when_the_network_is_small():
    weights = torch_bytes({k: torch.zeros(1).expand(v.shape) for k, v in small_state().items()})
    with pytest.raises(UploadError, match="is a view, not a tensor of its own: its shape .* declares"):
        validate_upload("m.zip", model_zip(weights=weights), "model", LIMIT)


def test_declared_sizes_are_bounded_before_the_tensors_are_read(monkeypatch):
    """A state dict whose declared numbers exceed the limit is refused from torch's meta pass,
    before the real load reads a byte of tensor data."""
    from reflect_core.uploads import weights as weights_module

    real = weights_module._torch_load
    devices = []

    def spy(filename, label, raw, device):
        devices.append(device)
        return real(filename, label, raw, device)

    monkeypatch.setattr(weights_module, "_torch_load", spy)
    big = torch_bytes({"a": torch.zeros(10), "b": torch.zeros(10)})
    with pytest.raises(UploadError, match="declare over 15 numbers"):
        weights_module.load_state_dict("w.pt", "the weights", big, LIMIT, max_values=15)
    assert devices == ["meta"]


def test_finite_values_are_checked_in_place_in_chunks(monkeypatch):
    from reflect_core.uploads import weights as weights_module

    monkeypatch.setattr(weights_module, "FINITE_CHUNK", 7)
    tensor = torch.zeros(100)
    assert weights_module._all_finite(tensor)
    tensor[99] = float("inf")
    assert not weights_module._all_finite(tensor)
    calls = []
    monkeypatch.setattr(torch.Tensor, "double", lambda self: calls.append(1))
    monkeypatch.setattr(torch.Tensor, "sum", lambda self, *a, **k: calls.append(1))
    assert weights_module._all_finite(torch.ones(20, dtype=torch.float16)) and calls == []


# --- F10: hostile JSON, zips and names: clean refusals, nothing left, no server path --------------------------------


def record(kind="film", **change) -> dict:
    return {"kind": kind, "name": "shared", "params": {"film": {"layers": []}} if kind == "film" else {},
            "summary": {}, **change}


def model_members(meta: bytes | None = None, weights: bytes | None = None) -> dict:
    return {"model/model.json": meta or small_meta(), "model/model.pt": weights or torch_bytes(small_state())}


NESTED = b'{"a": ' * 100 + b"1" + b"}" * 100
HOSTILE_BUNDLES = [
    ("record-nested", {"record.json": NESTED}, "nested too deeply"),
    ("record-nested-100000", {"record.json": b"[" * 100_000}, "nested too deeply"),
    ("record-5000-digits", {"record.json": b'{"kind": "film", "params": {"n": ' + b"9" * 5000 + b"}}"},
     "not valid JSON"),
    ("record-unknown-kind", {"record.json": json.dumps(record(kind="exploit")).encode()}, "kind is one of"),
    ("model-json-nested", {"record.json": json.dumps(record("import")).encode(),
                           **model_members(meta=small_meta(prior=json.loads(NESTED)))}, "nested too deeply"),
    ("model-unbuildable", {"record.json": json.dumps(record("import")).encode(),
                           **model_members(meta=small_meta(model={"arch": "pyreflect_cnn"}))}, "pyreflect"),
    ("model-weights-pickle", {"record.json": json.dumps(record("import")).encode(),
                              **model_members(weights=torch_bytes({"w": Reduces(print, "x")}))},
     "asks to load"),
    ("model-no-weights", {"record.json": json.dumps(record("import")).encode(), "model/model.json": small_meta()},
     "one model.json and one model.pt"),
    ("file-and-folder", {"record.json": json.dumps(record()).encode(), "data/x": b"1", "data/x/y": b"2"},
     "member 'data/x' is both a file and a folder"),
    ("dot-component", {"record.json": json.dumps(record()).encode(), "data/./x": b"1"}, "empty or '.' path"),
    ("data-not-arrays", {"record.json": json.dumps(record()).encode(), "data/nr_train.npy": b"x",
                         "data/sld_train.npy": b"y"}, "not a .npy file"),
    ("test-index-past-the-data", {"record.json": json.dumps(record("training")).encode(),
                                  **model_members(meta=small_meta(test_index=[0, 99])),
                                  "data/nr_train.npy": b"", "data/sld_train.npy": b""}, "data/nr_train.npy"),
]


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("members, reason", [pytest.param(m, r, id=i) for i, m, r in HOSTILE_BUNDLES])
def test_hostile_bundles_are_refused_leaving_nothing_and_no_server_path(members, reason, data):
    if "data/nr_train.npy" in members and members["data/nr_train.npy"] == b"":
        members = {**members, "data/nr_train.npy": npy_bytes(np.ones((5, 2, 40), np.float32)),
                   "data/sld_train.npy": npy_bytes(np.ones((5, 2, 50), np.float32))}
    with pytest.raises(UploadError) as refused:
        import_bundle(User("bob"), "b.zip", zip_of(members), LIMIT)
    message = str(refused.value)
    assert message.startswith("b.zip") and reason in message, message
    assert str(data) not in message and "/tmp" not in message
    assert [f for f in files_under(data) if not f.startswith("history.json")] in ([], ["history"], ["history",
                                                                                                     "history/imports"])
    assert history.list_records(User("bob")) == []


def test_nested_and_huge_json_records_are_refused(data):
    for payload, reason in [(b"[" * 100_000, "nested too deeply"), (NESTED, "nested too deeply"),
                            (b'{"params": {"layers": [{"sld": ' + b"9" * 5000 + b'}]}, "result": {}}',
                             "not valid JSON"),
                            (json.dumps({"params": {"layers": [{"sld": 10 ** 400}, {"sld": 0}]}, "result": {}})
                             .encode(), "params.layers")]:
        with pytest.raises(UploadError, match=reason):
            import_json(User("bob"), "r.json", payload)
    assert history.list_records(User("bob")) == []


@pytest.mark.parametrize("layer, reason", [
    (b'{"sld": ' + b"9" * 5000 + b"}", "not valid JSON"),  # Python refuses int → str past 4300 digits
    (b'{"sld": 1' + b"0" * 400 + b"}", "film.json"),  # an integer beyond any float
    (b'{"sld": 1, "name": ' + b'{"a": ' * 70 + b"1" + b"}" * 70 + b"}", "nested too deeply"),
])
def test_film_numbers_and_nesting_past_pythons_limits_are_refused(layer, reason):
    data = b'{"layers": [' + layer + b', {"sld": 2.07, "thickness": 10}, {"sld": 0}]}'
    with pytest.raises(UploadError, match=reason):
        validate_upload("film.json", data, "film", LIMIT)


@pytest.mark.parametrize("name", [" .zip", "  .zip", "\t.zip"])
def test_names_empty_after_stripping_still_import(name, data):
    film_bundle = zip_of({"record.json": json.dumps({**record(), "name": "  "}).encode()})
    assert import_bundle(User("bob"), name, film_bundle, LIMIT)["name"] == "imported record"
    export = {"params": {"layers": [{"sld": 2.07}, {"sld": 0}]}, "result": {}}
    assert import_json(User("bob"), name.replace(".zip", ".json"), json.dumps(export).encode())["name"] == \
        "pyreflect export"
    assert validate_upload(name, model_zip(), "model", LIMIT).role == "model"


def test_an_import_that_fails_half_way_removes_what_it_wrote(data, monkeypatch):
    bundle = zip_of({"record.json": json.dumps(record("import")).encode(), **model_members(),
                     "results/profile.csv": b"z,sld\n0,1\n"})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(data / "history" / "x"))

    add = history.add
    monkeypatch.setattr(history, "add", full_disk)
    with pytest.raises(UploadError) as refused:
        import_bundle(User("bob"), "b.zip", bundle, LIMIT)
    assert "No space left on device" in str(refused.value) and str(data) not in str(refused.value)
    assert files_under(data / "history" / "imports" / "bob") == []
    monkeypatch.setattr(history, "add", add)
    imported = import_bundle(User("bob"), "b.zip", bundle, LIMIT)
    assert imported["files"].startswith("history/imports/bob/")
    assert files_under(data / imported["files"]) == ["model", "model/model.json", "model/model.pt", "results",
                                                     "results/profile.csv"]


def test_unpacking_over_an_existing_model_names_no_path_and_a_failed_unpack_leaves_no_folder(tmp_path, monkeypatch):
    target = tmp_path / "uploads" / "bob" / "models" / "abc" / "model"
    unpack_model_zip("m.zip", model_zip(), target, LIMIT)
    with pytest.raises(AlreadyExists) as again:
        unpack_model_zip("m.zip", model_zip(), target, LIMIT)
    assert isinstance(again.value, FileExistsError) and isinstance(again.value, UploadError)
    assert str(tmp_path) not in str(again.value)
    from reflect_core.uploads import model_zip as model_zip_module

    monkeypatch.setattr(ModelMeta, "write", lambda self, folder: (_ for _ in ()).throw(OSError(28, "disk full")))
    with pytest.raises(OSError):
        model_zip_module.unpack_model_zip("m.zip", model_zip(), tmp_path / "uploads" / "carol" / "models" / "x" /
                                          "model", LIMIT)
    assert not (tmp_path / "uploads" / "carol").exists()


# --- model.json: what passes validation renders; imports carry no paths --------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"prior": "lots"}, "'prior' must be an object"),
    ({"dataset": [1]}, "'dataset' must be an object"),
    ({"metrics": "good"}, "'metrics' must be an object"),
    ({"metrics": {"model": 5, "baseline": {"rmse": 1}}}, "metrics.model"),
    ({"metrics": {"model": {"rmse": "low"}, "baseline": {"rmse": 1}}}, "metrics.model"),
    ({"metrics": {"model": {"rmse": 1, "r2": [1]}, "baseline": {"rmse": 1}}}, "metrics.model"),
    ({"metrics": {"model": {"rmse": 1}}}, "metrics.baseline"),
    ({"parameters": "many"}, "'parameters' must be a whole number"),
    ({"parameters": 1.5}, "'parameters' must be a whole number"),
    ({"parameters": True}, "'parameters' must be a whole number"),
    ({"best_epoch": -1}, "'best_epoch' must be a whole number"),
    ({"history": {"train": ["a"], "val": []}}, "'history'"),
    ({"history": {"train": [1.0]}}, "'history'"),
    ({"history": [1, 2]}, "'history'"),
    ({"test_index": [1.5]}, "'test_index'"),
    ({"test_index": [-1]}, "'test_index'"),
    ({"test_index": "0:10"}, "'test_index'"),
    ({"source": {"kind": {"nested": 1}}}, "'source' must be an object of plain values"),
    ({"versions": ["torch"]}, "'versions' must be an object of plain values"),
    ({"dq": None}, "'dq' must be a number"),
    ({"dq": "0.03"}, "'dq' must be a number"),
    ({"q": ["0.01", "0.2"]}, "'q' must be a list of at most 100,000 numbers"),
    ({"z": [0.0] * 100_001}, "'z' must be a list of at most 100,000 numbers"),
    ({"normalization": {"log_r_min": "-8"}}, "normalization: 'log_r_min' must be a number"),
    ({"normalization": 3}, "'normalization' must be an object"),
    ({"model": "compact"}, "'model' must be an object"),
    ({"prior": json.loads(b'{"a": ' * 70 + b"1" + b"}" * 70)}, "'prior' nests more than 64 levels"),
    ({"beam_from": 10 ** 4000}, "beam_from must be one of"),
])
def test_every_kept_field_of_model_json_is_type_checked(change, field):
    raw = {**json.loads(small_meta()), **change}
    with pytest.raises(ModelLoadError, match=field):
        ModelMeta.from_dict(raw)
    if "beam_from" not in change:  # Python's JSON writer refuses that integer itself
        with pytest.raises(UploadError, match="nested too deeply" if "nests" in field else field):
            validate_upload("m.zip", model_zip(meta=json.dumps(raw).encode()), "model", LIMIT)


@pytest.mark.parametrize("folder", ["../../etc", "/etc", "", "C:/data", "a/../../b"])
def test_a_data_folder_on_disk_must_be_relative_and_inside(folder):
    with pytest.raises(ModelLoadError, match="'data_folder' must be a folder relative"):
        ModelMeta.from_dict({**json.loads(small_meta()), "data_folder": folder})


def test_an_accepted_model_renders_what_the_pages_show():
    metrics = {"model": {"rmse": 0.2, "mae": 0.1, "r2": float("nan"), "nr_decades_median": 0.3},
               "baseline": {"name": "mean training profile", "rmse": 0.5, "mae": 0.4, "r2": 0.0}, "n_test": 10}
    raw = small_meta(metrics=metrics, history={"train": [1.0, 0.5], "val": [1.1, 0.6], "time": [1, 2]},
                     parameters=1122, best_epoch=2, test_index=[0, 3], prior=None, dataset={"n": 10},
                     data_folder="/etc", source={"kind": "training"}, versions={"torch": "2"})
    meta = validate_upload("m.zip", model_zip(meta=raw), "model", LIMIT).content
    assert meta.data_folder is None  # dropped, not followed
    summary = meta.summary()
    assert f"{summary['rmse']:.3g} {summary['baseline_rmse']:.3g} {meta.parameters or 0:,}" == "0.2 0.5 1,122"
    assert len(meta.history["train"]) == 2 and [meta.metrics["model"][k] for k in ("rmse", "mae")] == [0.2, 0.1]


def test_an_imported_bundle_carries_no_paths_and_keeps_only_the_importers_own_uploads(data):
    foreign = {"dataset": {"arrays": "uploads/alice/arrays/2024", "dq": 0.03}}
    own = {"dataset": {"arrays": "uploads/bob/arrays/2024", "dq": 0.03}}
    meta = small_meta(data_folder="uploads/alice/arrays/2024", dataset=foreign["dataset"], test_index=[0, 1],
                      metrics={"model": {"rmse": 0.2, "mae": 0.1, "r2": 0.9, "nr_decades_median": 0.3},
                               "baseline": {"rmse": 0.5}},
                      history={"train": [1.0], "val": [1.0]})
    for params, kept in [(foreign, None), (own, "uploads/bob/arrays/2024"),
                         ({"dataset": {"arrays": "uploads/bob/../alice/arrays/x"}}, None)]:
        bundle = zip_of({"record.json": json.dumps(record("training", params=params, files="../../etc",
                                                          summary={"state": "completed", "bytes": "lots",
                                                                   "rmse": "low", "agreement": {"x": "y"}})).encode(),
                         **model_members(meta=meta)})
        imported = import_bundle(User("bob"), "b.zip", bundle, LIMIT)
        assert imported["params"]["dataset"]["arrays"] == kept
        assert imported["files"].startswith("history/imports/bob/") and imported["kind"] == "training"
        assert imported["summary"]["rmse"] == 0.2 and "bytes" not in imported["summary"]
        assert imported["summary"]["agreement"] == {}
        written = json.loads((data_dir() / imported["files"] / "model" / "model.json").read_text())
        assert written["data_folder"] is None and written["dataset"]["arrays"] is None
        assert written["test_index"] is None  # the bundle holds no training arrays to index
        assert not any("alice" in json.dumps(value) for value in (written, imported["summary"]))


def test_a_bundle_with_its_training_arrays_keeps_its_test_index(data):
    meta = small_meta(test_index=[0, 4])
    bundle = zip_of({"record.json": json.dumps(record("import")).encode(), **model_members(meta=meta),
                     "data/nr_train.npy": npy_bytes(np.ones((5, 2, SMALL_Q.size), np.float32)),
                     "data/sld_train.npy": npy_bytes(np.ones((5, 2, SMALL_Z.size), np.float32))})
    imported = import_bundle(User("bob"), "b.zip", bundle, LIMIT)
    assert ModelMeta.read(data_dir() / imported["files"] / "model").test_index == [0, 4]
    assert imported["kind"] == "import"  # no metrics or history: not comparable as a training run


def test_the_zip_listing_refuses_a_file_and_a_folder_of_one_name():
    for members in ({"model.json": small_meta(), "model.pt": b"x", "data/x": b"1", "data/x/y": b"2"},
                    {"model.json": small_meta(), "model.pt": b"x", "a\\b": b"1", "a/b/c": b"2"}):
        with pytest.raises(UploadError, match="is both a file and a folder"):
            validate_upload("m.zip", zip_of(members), "model", LIMIT)
    ok = io.BytesIO()
    with zipfile.ZipFile(ok, "w") as archive:  # a folder entry beside its files is fine
        archive.writestr("m/", b"")
        archive.writestr("m/model.json", small_meta())
        archive.writestr("m/model.pt", torch_bytes(small_state()))
    assert validate_upload("m.zip", ok.getvalue(), "model", LIMIT).role == "model"
