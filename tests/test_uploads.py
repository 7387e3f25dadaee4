"""Uploads: every bad file is refused with its name and a reason, nothing in a file runs,
nothing refused is written, and good files of every role pass."""

import functools
import io
import json
import os
import pickle
import stat
import tempfile
import zipfile

import numpy as np
import pytest
import torch
from numpy.lib import format as npy_format

from reflect_core import uploads
from reflect_core.formats.curves import Curve
from reflect_core.ml.model_store import load_model
from reflect_core.ml.models import build_model
from reflect_core.ml.preprocess import Normalizer
from reflect_core.ml.settings import settings_from_dict
from reflect_core.physics.film import Film, Layer
from reflect_core.physics.simulate import PYREFLECT_NQ, PYREFLECT_QMAX, PYREFLECT_QMIN
from reflect_core.store.user_files import safe_filename, save_accepted
from reflect_core.uploads import (
    UploadError,
    arrays,
    common,
    import_pyreflect_model,
    pyreflect,
    unpack_model_zip,
    validate_upload,
)

LIMIT = 50_000_000
Q = np.geomspace(PYREFLECT_QMIN, PYREFLECT_QMAX, PYREFLECT_NQ)  # pyreflect generator's grid
Z = np.linspace(0.0, 450.0, 900)
NEEDS_PYREFLECT = pytest.mark.skipif(not uploads.pyreflect_available(), reason="pyreflect is not installed")


# --- builders: every file is made here, at test time ---------------------------------------------------------


def npy(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def object_npy(payload) -> bytes:
    """What np.save(allow_pickle=True) writes for one Python object, as pyreflect saves its stats."""
    holder = np.empty((), dtype=object)
    holder[()] = payload
    return npy(holder, allow_pickle=True)


def npy_with_header(header: bytes, version=(1, 0), length_bytes=2) -> bytes:
    return npy_format.MAGIC_PREFIX + bytes(version) + len(header).to_bytes(length_bytes, "little") + header


def nr_array(n=4, q=Q) -> np.ndarray:
    nr = np.empty((n, 2, q.size), np.float32)
    nr[:, 0] = q
    nr[:, 1] = np.minimum(1.0, 1e-7 * q ** -4.0) * np.linspace(0.5, 1.0, n)[:, None]
    return nr


def sld_array(n=4) -> np.ndarray:
    sld = np.empty((n, 2, Z.size), np.float32)
    sld[:, 0] = Z
    sld[:, 1] = np.where(Z < 100, 2.07, 4.0)
    return sld


def changed(array: np.ndarray, fn) -> bytes:
    array = array.copy()
    fn(array)
    return npy(array)


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def zip_of(members: dict, **infos) -> bytes:
    """A zip of name → bytes; ``infos`` name → ZipInfo for members that need special headers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(infos.get(name, name), content)
    return buffer.getvalue()


def patched_central_directory(data: bytes, offset: int, value: int, size: int) -> bytes:
    """Overwrite a field of the (first) central-directory entry, as a hand-crafted zip would have it."""
    at = data.index(b"PK\x01\x02") + offset
    return data[:at] + value.to_bytes(size, "little") + data[at + size:]


SMALL = {"arch": "compact_cnn", "layers": 2, "channels": 4, "hidden": 8, "dropout": 0.0}
SMALL_Q, SMALL_Z = np.geomspace(0.01, 0.2, 40), np.linspace(0.0, 300.0, 50)


@functools.lru_cache(maxsize=None)
def small_state() -> dict:
    torch.manual_seed(0)
    return build_model(settings_from_dict(SMALL), SMALL_Q.size, SMALL_Z.size).state_dict()


def small_meta(**changes) -> bytes:
    meta = {"model": SMALL, "q": SMALL_Q.tolist(), "z": SMALL_Z.tolist(), "dq": 0.03,
            "normalization": Normalizer(-8.0, 0.0, -1.0, 7.0, 0.01, 0.2, 0.0, 300.0).to_dict(), **changes}
    return json.dumps(meta).encode()


def model_zip(meta: bytes | None = None, weights: bytes | None = None, prefix: str = "") -> bytes:
    weights = weights or torch_bytes(small_state())
    return zip_of({f"{prefix}model.json": meta or small_meta(), f"{prefix}model.pt": weights})


def symlink_zip() -> bytes:
    link = zipfile.ZipInfo("model.pt")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_of({"model.json": small_meta(), "model.pt": b"/etc/passwd"}, **{"model.pt": link})


def encrypted_zip() -> bytes:
    return patched_central_directory(model_zip(), 8, 0x1, 2)  # general-purpose flag bit 0: encrypted


def lying_zip() -> bytes:
    return patched_central_directory(model_zip(), 24, 10, 4)  # model.json says it unpacks to 10 bytes


class Reduces:
    """Pickles as ``func(*args)``: what a hostile file runs when it is unpickled."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def orso_text(unit="1/angstrom", datasets=1, resolution_is=None) -> str:
    from orsopy import fileio
    from orsopy.fileio import orso

    q = np.geomspace(0.01, 0.2, 20)
    table = np.column_stack([q, np.minimum(1, 1e-7 * q ** -4), 1e-8 * q ** -4, 0.02 * q])
    found = []
    for k in range(datasets):
        info = orso.Orso.empty()
        info.data_set = k
        info.columns = [fileio.Column("Qz", unit), fileio.Column("R"), fileio.ErrorColumn("R"),
                        fileio.ErrorColumn("Qz", value_is=resolution_is)]
        found.append(orso.OrsoDataset(info, table))
    buffer = io.StringIO()
    orso.save_orso(found, buffer)
    return buffer.getvalue()


def film_json(**layer_changes) -> bytes:
    layers = [{"name": "Si", "sld": 2.07, "roughness": 3}, {"name": "film", "sld": 4.0, "thickness": 100,
                                                            "roughness": 5, **layer_changes}, {"name": "air", "sld": 0}]
    return json.dumps({"name": "test", "layers": layers}).encode()


STATS = {"nr": {"x": {"min": 0.0081, "max": 0.1975}, "y": {"min": -8.0, "max": 0.0}},
         "sld": {"x": {"min": 0.0, "max": 640.0}, "y": {"min": -0.5, "max": 6.4}}}


def stats_with(path: str, value) -> dict:
    stats = json.loads(json.dumps(STATS))
    *parents, last = path.split(".")
    node = stats
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return stats


def pyreflect_shaped_state(fill=lambda shape: torch.zeros(shape, dtype=torch.float16)) -> dict:
    """pyreflect's CNN(12) state dict: the real names and shapes (155 M parameters), in half
    precision to keep the file at 310 MB (a file that stores fewer numbers than its shapes
    declare, e.g. stride-0 views, is refused)."""
    from pyreflect.models.cnn import CNN

    with torch.device("meta"):
        net = CNN(layers=12, dropout_prob=0.5)
    state = {}
    for name, tensor in net.state_dict().items():
        if tensor.dtype == torch.int64:
            state[name] = torch.zeros((), dtype=torch.int64)
        elif name.endswith("running_var"):
            state[name] = fill(tensor.shape).fill_(1.0)
        else:
            state[name] = fill(tensor.shape)
    return state


def stats_npz(**changes) -> bytes:
    """pyreflect's stats as an .npz of eight numbers, ``nr_x_min`` … ``sld_y_max`` (None drops one)."""
    numbers = {f"{part}_{axis}_{bound}": np.float64(value) for part, axes in STATS.items()
               for axis, bounds in axes.items() for bound, value in bounds.items()}
    numbers = {key: value for key, value in {**numbers, **changes}.items() if value is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **numbers)
    return buffer.getvalue()


def shared_storage() -> dict:
    """The small model's state dict with two tensors of one shape on one storage."""
    state = dict(small_state())
    first, second = [key for key, value in state.items() if value.shape == (8,)][:2]
    state[second] = state[first]
    return state


# --- the corpus of bad files ---------------------------------------------------------------------------------

BAD = [
    # (id, role, file name, bytes maker, words the message must contain[, max_bytes])
    ("nr-wrong-extension", "nr", "curves.txt", lambda: npy(nr_array()), "must be a .npy file"),
    ("nr-no-extension", "nr", "curves", lambda: npy(nr_array()), "without an extension"),
    ("nr-empty", "nr", "empty.npy", lambda: b"", "empty"),
    ("nr-oversized", "nr", "big.npy", lambda: npy(nr_array()), "over the 1,000-byte limit", 1000),
    ("nr-text-not-npy", "nr", "text.npy", lambda: b"Q R\n0.01 1\n", "not a .npy file"),
    ("nr-plain-pickle", "nr", "pickle.npy", lambda: pickle.dumps(nr_array()), "not a .npy file"),
    ("nr-truncated-data", "nr", "cut.npy", lambda: npy(nr_array())[:-1000], "truncated"),
    ("nr-truncated-header", "nr", "cut.npy", lambda: npy(nr_array())[:9], "truncated"),
    ("nr-pickled-object-array", "nr", "obj.npy", lambda: npy(np.array([{"Q": 1}], dtype=object), allow_pickle=True),
     "pickled object array"),
    ("nr-object-dtype-numbers", "nr", "obj.npy", lambda: npy(nr_array().astype(object), allow_pickle=True),
     "Python objects"),
    ("nr-huge-header", "nr", "huge.npy", lambda: npy_with_header(b" " * 200_000, (2, 0), 4), "header claims"),
    ("nr-garbled-header", "nr", "garbled.npy", lambda: npy_with_header(b"{'descr': <f8 ((((" + b" " * 45 + b"\n"),
     "header is unreadable"),
    ("nr-unknown-version", "nr", "v9.npy", lambda: npy_with_header(b"{}" + b" " * 61 + b"\n", (9, 0)),
     "unsupported .npy format version 9.0"),
    ("nr-integers", "nr", "int.npy", lambda: npy(nr_array().astype(np.int64)), "floating-point"),
    ("nr-complex", "nr", "complex.npy", lambda: npy(nr_array().astype(np.complex64)), "floating-point"),
    ("nr-nan", "nr", "nan.npy", lambda: changed(nr_array(), lambda a: a.__setitem__((1, 1, 5), np.nan)), "NaN"),
    ("sld-inf", "sld", "inf.npy", lambda: changed(sld_array(), lambda a: a.__setitem__((0, 1, 0), np.inf)),
     "NaN or infinite"),
    ("nr-2d", "nr", "flat.npy", lambda: npy(nr_array()[0]), "shape (N, 2, points) with rows [Q, R]"),
    ("nr-three-rows", "nr", "rows.npy", lambda: npy(np.ones((4, 3, 308), np.float32)), "shape (N, 2, points)"),
    ("sld-2d", "sld", "flat.npy", lambda: npy(sld_array()[:, 1]), "shape (N, 2, points) with rows [z, SLD]"),
    ("sld-one-point", "sld", "point.npy", lambda: npy(sld_array()[:, :, :1]), "shape (N, 2, points)"),
    ("nr-q-zero", "nr", "q0.npy", lambda: changed(nr_array(), lambda a: a.__setitem__((slice(None), 0, 0), 0.0)),
     "Q must be > 0"),
    ("nr-two-q-grids", "nr", "grids.npy", lambda: changed(nr_array(), lambda a: a.__setitem__((2, 0), Q * 1.1)),
     "one Q grid"),
    ("sld-per-profile-z", "sld", "z.npy", lambda: changed(sld_array(), lambda a: a.__setitem__((1, 0), Z * 2)),
     "resample them onto one grid"),
    ("nr-q-in-inverse-nm", "nr", "nm.npy", lambda: npy(nr_array(q=Q * 10)), "Q looks like it is not in Å⁻¹"),
    ("nr-log10-r", "nr", "log.npy", lambda: changed(nr_array(), lambda a: a.__setitem__((slice(None), 1),
                                                                                       np.log10(a[:, 1]))),
     "not log10 R"),
    ("nr-r-in-percent", "nr", "pct.npy", lambda: changed(nr_array(), lambda a: a.__setitem__((slice(None), 1),
                                                                                            a[:, 1] * 100)),
     "not % or counts"),
    ("sld-in-inverse-angstrom2", "sld", "si.npy", lambda: changed(sld_array(), lambda a: a.__setitem__(
        (slice(None), 1), a[:, 1] * 1e-6)), "SLD looks like it is in Å⁻², expected 10⁻⁶ Å⁻²"),
    ("curve-wrong-extension", "curve", "curve.npy", lambda: b"0.01 1\n", ".txt, .dat, .csv or .ort"),
    ("curve-not-utf8", "curve", "curve.txt", lambda: b"0.01 \xff\xfe 1\n", "not UTF-8"),
    ("curve-not-numbers", "curve", "curve.dat", lambda: b"# Q R\n0.01 abc\n", "not numbers"),
    ("curve-ragged", "curve", "curve.csv", lambda: b"0.01,1\n0.02,0.5,0.1\n", "columns"),
    ("curve-q-only", "curve", "curve.txt", lambda: b"0.01\n0.02\n", "only a Q column"),
    ("curve-nan", "curve", "curve.txt", lambda: b"0.01 1\n0.02 nan\n", "non-finite"),
    ("curve-no-data", "curve", "curve.txt", lambda: b"# only a comment\n", "no data lines"),
    ("curve-one-point", "curve", "curve.txt", lambda: b"0.01 1\n", "at least 2"),
    ("curve-q-in-inverse-nm", "curve", "curve.txt", lambda: b"0.1 1\n1.5 1e-6\n", "Q looks like it is not in Å⁻¹"),
    ("orso-not-orso", "curve", "curve.ort", lambda: b"# hello\n0.01 1\n", "not a readable ORSO file"),
    ("orso-broken-yaml", "curve", "curve.ort", lambda: orso_text().replace("# columns:", "# columns: [{", 1).encode(),
     "not a readable ORSO file"),
    ("orso-unknown-q-unit", "curve", "curve.ort", lambda: orso_text(unit="1/m").encode(), "Qz column is in '1/m'"),
    ("orso-two-data-sets", "curve", "curve.ort", lambda: orso_text(datasets=2).encode(), "2 data sets"),
    ("film-wrong-extension", "film", "film.yaml", film_json, "must be a .json file"),
    ("film-invalid-json", "film", "film.json", lambda: b'{"layers": [', "not valid JSON"),
    ("film-not-utf8", "film", "film.json", lambda: b'{"name": "\x80\x81"}', "not valid JSON"),
    ("film-json-list", "film", "film.json", lambda: b"[1, 2, 3]", "must be a JSON object"),
    ("film-no-layers", "film", "film.json", lambda: b'{"name": "x"}', "'layers' list"),
    ("film-negative-thickness", "film", "film.json", lambda: film_json(thickness=-5), "'thickness': value must be ≥ 0"),
    ("film-sld-not-a-number", "film", "film.json", lambda: film_json(sld="high"), "expected a number"),
    ("film-sld-in-inverse-angstrom2", "film", "film.json",
     lambda: json.dumps({"layers": [{"sld": 2.07e-6}, {"sld": 4e-6, "thickness": 50}, {"sld": 0}]}).encode(),
     "SLD looks like it is in Å⁻²"),
    ("film-deeply-nested", "film", "film.json", lambda: b"[" * 100_000, "nested too deeply"),
    ("model-wrong-extension", "model", "model.tar", model_zip, "must be a .zip file"),
    ("model-not-a-zip", "model", "model.zip", lambda: b"PK\x03\x04 not really", "not a readable zip file"),
    ("model-zip-bomb", "model", "bomb.zip", lambda: zip_of({"model.json": b"0" * 20_000_000}),
     "unpacks to 20,000,000 bytes, over the 1,000,000-byte limit", 1_000_000),
    ("model-dotdot-member", "model", "model.zip", lambda: zip_of({"model.json": small_meta(), "../model.pt": b"x"}),
     "'..' path component"),
    ("model-absolute-member", "model", "model.zip", lambda: zip_of({"/etc/model.json": b"{}"}), "absolute path"),
    ("model-symlink-member", "model", "model.zip", symlink_zip, "symbolic link"),
    ("model-encrypted-member", "model", "model.zip", encrypted_zip, "encrypted"),
    ("model-too-many-members", "model", "model.zip", lambda: zip_of({f"f{k}": b"" for k in range(1001)}),
     "1,001 members, over the limit"),
    ("model-lying-sizes", "model", "model.zip", lying_zip, "damaged"),
    ("model-no-weights", "model", "model.zip", lambda: zip_of({"model.json": small_meta()}),
     "one model.json and one model.pt"),
    ("model-split-folders", "model", "model.zip",
     lambda: zip_of({"a/model.json": small_meta(), "b/model.pt": torch_bytes(small_state())}), "same folder"),
    ("model-meta-not-json", "model", "model.zip", lambda: model_zip(meta=b"{arch: cnn"),
     "model.json is not valid JSON"),
    ("model-meta-no-q", "model", "model.zip", lambda: model_zip(meta=small_meta(q=None).replace(b'"q": null, ', b"")),
     "lacks the field 'q'"),
    ("model-meta-unknown-arch", "model", "model.zip", lambda: model_zip(meta=small_meta(model={"arch": "transformer"})),
     "model.arch"),
    ("model-weights-a-list", "model", "model.zip", lambda: model_zip(weights=torch_bytes([torch.zeros(3)])),
     "holds a list, not a state dict"),
    ("model-weights-a-checkpoint", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({"model": small_state(), "epoch": 3})), "not a state dict"),
    ("model-weights-meta-tensors", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({k: v.to("meta") for k, v in small_state().items()})), "on meta"),
    ("model-weights-plain-pickle", "model", "model.zip", lambda: model_zip(weights=pickle.dumps(small_state())),
     "not a PyTorch weights file"),
    ("model-weights-call-a-function", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({"w": Reduces(os.getcwd)})), "asks to load posix.getcwd"),
    ("model-weights-wrong-shape", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes(build_model(settings_from_dict({**SMALL, "hidden": 16}), 40, 50)
                                           .state_dict())), "do not fit the compact_cnn"),
    ("model-weights-missing-a-tensor", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({k: v for k, v in small_state().items() if k != "head.4.bias"})),
     "missing head.4.bias"),
    ("model-weights-nan", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({k: v.clone().fill_(float("nan")) for k, v in small_state().items()})),
     "NaN or infinite"),
    ("model-weights-expanded", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({k: torch.zeros(1).expand(v.shape) for k, v in small_state().items()})),
     "is a view, not a tensor of its own"),
    ("model-weights-non-contiguous", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({**small_state(), "head.1.weight": small_state()["head.1.weight"].t()
                                            .contiguous().t()})), "is a view"),
    ("model-weights-offset-view", "model", "model.zip",
     lambda: model_zip(weights=torch_bytes({**small_state(), "head.4.bias": torch.zeros(60)[10:]})), "is a view"),
    ("model-weights-shared-storage", "model", "model.zip", lambda: model_zip(weights=torch_bytes(shared_storage())),
     "share one storage"),
    ("model-declares-too-many-parameters", "model", "model.zip",
     lambda: model_zip(meta=small_meta(model={**SMALL, "layers": 1, "channels": 512, "hidden": 8192})),
     "declare 84,306,994 parameters for 40 Q / 50 z points, over the limit of 50,000,000"),
    ("model-pyreflect-arch-on-40-q", "model", "model.zip",
     lambda: model_zip(meta=small_meta(model={"arch": "pyreflect_cnn"})), "pyreflect"),
    ("pyreflect-wrong-extension", "pyreflect_weights", "cnn.npy", lambda: torch_bytes({}), "must be a .pth or .pt"),
    ("pyreflect-weights-text", "pyreflect_weights", "cnn.pth", lambda: b"weights", "not a PyTorch weights"),
    ("pyreflect-weights-of-another-net", "pyreflect_weights", "cnn.pth", lambda: torch_bytes(small_state()),
     "does not look like pyreflect's CNN"),
    ("pyreflect-weights-wrong-shapes", "pyreflect_weights", "cnn.pth",
     lambda: torch_bytes(pyreflect_shaped_state(lambda shape: torch.zeros((1,) * len(shape)))),
     "do not fit the pyreflect_cnn"),
    ("pyreflect-weights-expanded", "pyreflect_weights", "cnn.pth",
     lambda: torch_bytes(pyreflect_shaped_state(lambda shape: torch.zeros(1).expand(shape))), "is a view"),
    ("stats-wrong-extension", "pyreflect_stats", "stats.pkl", lambda: object_npy(STATS), "must be a .json or .npz"),
    ("stats-pyreflects-pickled-npy", "pyreflect_stats", "stats.npy", lambda: object_npy(STATS),
     "python -m reflect_core import-pyreflect WEIGHTS.pth STATS.npy --user NAME"),
    ("stats-pickle-calls-a-function", "pyreflect_stats", "stats.npy", lambda: object_npy({"nr": Reduces(os.getcwd)}),
     "this server never loads a pickle"),
    ("stats-npz-object-array", "pyreflect_stats", "stats.npz",
     lambda: stats_npz(nr_x_min=np.array([Reduces(os.getcwd)], dtype=object)), "other than plain numbers"),
    ("stats-npz-missing-number", "pyreflect_stats", "stats.npz", lambda: stats_npz(sld_y_max=None),
     "no 'sld_y_max'"),
    ("stats-npz-an-array", "pyreflect_stats", "stats.npz", lambda: stats_npz(nr_y_min=np.zeros(3)),
     "nr_y_min must be one number"),
    ("stats-npz-not-a-zip", "pyreflect_stats", "stats.npz", lambda: npy(np.zeros(3)), "not a readable .npz"),
    ("stats-npz-bomb", "pyreflect_stats", "stats.npz", lambda: zip_of({"nr_x_min.npy": b"0" * 2_000_000}),
     "over the 1,000,000-byte limit"),
    ("stats-json-invalid", "pyreflect_stats", "stats.json", lambda: b"{nr:", "not valid JSON"),
    ("stats-json-nested", "pyreflect_stats", "stats.json", lambda: b'{"nr": ' * 70 + b"1" + b"}" * 70,
     "nested too deeply"),
    ("stats-json-5000-digits", "pyreflect_stats", "stats.json",
     lambda: json.dumps(stats_with("nr.y.max", 0)).replace('"max": 0}', '"max": ' + "9" * 5000 + "}", 1).encode(),
     "not valid JSON"),
    ("stats-json-huge-integer", "pyreflect_stats", "stats.json", lambda: json.dumps(stats_with("nr.y.max", 10 ** 400))
     .encode(), "nr.y.max must be a finite number"),
    ("stats-json-no-sld", "pyreflect_stats", "stats.json", lambda: json.dumps(stats_with("sld", None)).encode(),
     "no 'sld.x.min'"),
    ("stats-json-string", "pyreflect_stats", "stats.json",
     lambda: json.dumps(stats_with("nr.y.max", "0")).encode(), "nr.y.max must be a finite number"),
    ("stats-json-min-above-max", "pyreflect_stats", "stats.json",
     lambda: json.dumps(stats_with("sld.x.min", 900.0)).encode(), "sld.x: max (640) must be above min (900)"),
    ("stats-q-in-inverse-nm", "pyreflect_stats", "stats.json",
     lambda: json.dumps(stats_with("nr.x.max", 1.975)).encode(), "Q looks like it is not in Å⁻¹"),
    ("stats-sld-in-inverse-angstrom2", "pyreflect_stats", "stats.npz",
     lambda: stats_npz(sld_y_min=0.0, sld_y_max=6.4e-6), "Å⁻²"),
]


def _case(case):
    case_id, role, filename, make, reason, *max_bytes = case
    # the checks after the extension need pyreflect's CNN class
    marks = NEEDS_PYREFLECT if role == "pyreflect_weights" and filename.endswith(".pth") else ()
    return pytest.param(role, filename, make, reason, max_bytes[0] if max_bytes else LIMIT, id=case_id, marks=marks)


def test_corpus_is_large():
    assert len(BAD) >= 30


@pytest.mark.parametrize("role, filename, make, reason, max_bytes", [_case(c) for c in BAD])
def test_bad_upload_is_refused_with_name_and_reason(role, filename, make, reason, max_bytes, tmp_path, monkeypatch):
    data = make()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(UploadError) as refused:
        validate_upload(filename, data, role, max_bytes)
    message = str(refused.value)
    assert message.startswith(filename), message
    assert reason in message, message
    assert list(tmp_path.iterdir()) == []  # nothing of a refused file is written, not even a temporary


def test_size_is_checked_before_any_parsing(monkeypatch):
    def must_not_parse(*args):
        raise AssertionError("parsed an oversized file")

    monkeypatch.setattr(arrays, "nr_curves", must_not_parse)
    with pytest.raises(UploadError, match="over the 10-byte limit"):
        validate_upload("x.npy", b"0" * 11, "nr", 10)


def test_zip_listing_is_checked_before_any_member_is_read(monkeypatch):
    def must_not_read(*args):
        raise AssertionError("decompressed a member of a refused zip")

    monkeypatch.setattr(common, "_read_member", must_not_read)
    for data in (zip_of({"model.json": b"0" * 2_000_000}), zip_of({"../model.pt": b"x"}), symlink_zip()):
        with pytest.raises(UploadError):
            validate_upload("m.zip", data, "model", 1_000_000)


def test_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown upload role") as raised:
        validate_upload("x.npy", b"x", "weights", LIMIT)
    assert not isinstance(raised.value, UploadError)


# --- hostile pickles never run ---------------------------------------------------------------------------------


def creates_file(path) -> Reduces:
    return Reduces(open, str(path), "w")


def test_hostile_payloads_are_live(tmp_path):
    """The payloads below do create their file when loaded the unsafe way, so the tests that
    show the file never appears mean something."""
    markers = [tmp_path / name for name in ("pickle", "torch", "numpy")]
    pickle.loads(pickle.dumps(creates_file(markers[0])))
    torch.load(io.BytesIO(torch_bytes(creates_file(markers[1]))), weights_only=False)
    np.load(io.BytesIO(object_npy({"nr": creates_file(markers[2])})), allow_pickle=True)
    assert all(marker.exists() for marker in markers)


def test_weights_that_would_create_a_file_never_do(tmp_path):
    marker = tmp_path / "pwned"
    weights = torch_bytes(creates_file(marker))
    in_state_dict = torch_bytes({"features.0.weight": creates_file(marker)})
    attempts = [("model.zip", model_zip(weights=weights), "model"),
                ("model.zip", model_zip(weights=in_state_dict), "model")]
    if uploads.pyreflect_available():
        attempts.append(("cnn.pth", weights, "pyreflect_weights"))
    for filename, data, role in attempts:
        with pytest.raises(UploadError, match=r"asks to load (io|builtins)\.open when unpickled; refused"):
            validate_upload(filename, data, role, LIMIT)
        assert not marker.exists()
    with pytest.raises(UploadError, match=r"(io|builtins)\.open"):
        unpack_model_zip("model.zip", model_zip(weights=weights), tmp_path / "model", LIMIT)
    assert not marker.exists() and not (tmp_path / "model").exists()


def test_stats_that_would_create_a_file_never_do(tmp_path):
    """Uploads refuse every pickled .npy unread; the command line's isolated reader refuses the globals."""
    from reflect_core.uploads.pickled_stats import stats_from_pickled_npy

    marker = tmp_path / "pwned"
    for payload in (creates_file(marker), {"nr": {"x": {"min": creates_file(marker)}}}, [creates_file(marker)]):
        with pytest.raises(UploadError, match="this server never loads a pickle"):
            validate_upload("stats.npy", object_npy(payload), "pyreflect_stats", LIMIT)
        with pytest.raises(UploadError, match=r"stats.npy: refused: (io|builtins)\.open"):
            stats_from_pickled_npy("stats.npy", object_npy(payload))
        assert not marker.exists()


# --- good files of every role ----------------------------------------------------------------------------------


def test_nr_and_sld_arrays_are_accepted():
    nr = validate_upload("nr_train.npy", npy(nr_array(5)), "nr", LIMIT)
    assert nr.content.shape == (5, 2, 308) and np.array_equal(nr.content, nr_array(5))
    assert nr.description == "5 NR curves on 308 Q points, 0.008101–0.1976 Å⁻¹"
    sld = validate_upload("sld_train.npy", npy(np.asfortranarray(sld_array(5).astype(np.float64))), "sld", LIMIT)
    assert np.array_equal(sld.content, sld_array(5)) and sld.description.startswith("5 SLD profiles on 900 z points")


@pytest.mark.parametrize("filename, text", [
    ("curve.txt", "# Q R dR\n0.02 0.5 0.01\n0.01 1 0.01\n0.03 0.1 0.01\n"),
    ("curve.csv", "\ufeff0.01,1\n0.02,0.5\n"),
    ("curve.dat", "0.01 1 0.1 0.0003\n0.02 0.5 0.05 0.0006\n"),
])
def test_text_curves_are_accepted(filename, text):
    accepted = validate_upload(filename, text.encode(), "curve", LIMIT)
    assert isinstance(accepted.content, Curve) and np.all(np.diff(accepted.content.q) > 0)
    assert accepted.content.r[0] == 1.0
    assert accepted.description.startswith("measured curve:")


@pytest.mark.parametrize("unit, resolution_is, q_factor, dq_factor", [
    ("1/angstrom", None, 1.0, 2 * np.sqrt(2 * np.log(2))),  # ORSO resolutions are 1-sigma unless they say FWHM
    ("1/nm", "FWHM", 0.1, 1.0),
])
def test_orso_curves_are_accepted_in_our_units(unit, resolution_is, q_factor, dq_factor):
    curve = validate_upload("run.ort", orso_text(unit, resolution_is=resolution_is).encode(), "curve", LIMIT).content
    q = np.geomspace(0.01, 0.2, 20)
    np.testing.assert_allclose(curve.q, q * q_factor)
    np.testing.assert_allclose(curve.dq, 0.02 * q * q_factor * dq_factor)
    np.testing.assert_allclose(curve.dr, 1e-8 * q ** -4)


def test_films_are_accepted():
    film = Film((Layer("Si", 2.07, roughness=3), Layer("polymer", 1.5, thickness=120, roughness=8), Layer("air", 0.0)))
    accepted = validate_upload("film.json", film.to_json().encode(), "film", LIMIT)
    assert accepted.content == film
    assert accepted.description == "film: 3 layers, 120 Å between substrate and ambient"
    export = {"params": {"layers": [layer for layer in json.loads(film.to_json())["layers"]]}, "result": {}}
    assert validate_upload("pyreflect_export.json", json.dumps(export).encode(), "film", LIMIT).content == film


@pytest.mark.parametrize("prefix", ["", "my_model/"])
def test_model_zip_is_accepted_and_unpacks_to_a_loadable_model(prefix, tmp_path):
    data = model_zip(prefix=prefix)
    accepted = validate_upload("model.zip", data, "model", LIMIT)
    assert accepted.content.model.to_dict() == SMALL
    assert accepted.description.startswith("compact_cnn model: ") and "40 Q points" in accepted.description
    model_dir = unpack_model_zip("model.zip", data, tmp_path / "models" / "m1", LIMIT)
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "model.pt"]
    assert [p.name for p in model_dir.parent.iterdir()] == ["m1"]  # no temporary folder left behind
    model, meta = load_model(model_dir)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, small_state()[name])
    with pytest.raises(FileExistsError):
        unpack_model_zip("model.zip", data, model_dir, LIMIT)


PYREFLECT_SAVED_STATS = object_npy({part: {axis: {k: np.float32(v) for k, v in b.items()} for axis, b in axes.items()}
                                     for part, axes in STATS.items()})  # as pyreflect's preprocess saves it


@pytest.mark.parametrize("filename, data", [("stats.json", json.dumps(STATS).encode()), ("stats.npz", stats_npz())])
def test_pyreflect_stats_are_accepted(filename, data):
    accepted = validate_upload(filename, data, "pyreflect_stats", LIMIT)
    assert accepted.content["sld"]["x"] == {"min": 0.0, "max": 640.0}
    np.testing.assert_allclose(accepted.content["nr"]["x"]["max"], 0.1975, rtol=1e-6)
    assert accepted.description.startswith("pyreflect normalisation stats: Q 0.0081–0.1975 Å⁻¹")


def test_pyreflects_pickled_stats_are_converted_only_by_the_isolated_reader():
    from reflect_core.uploads.pickled_stats import stats_from_pickled_npy

    with pytest.raises(UploadError, match="stats.npy: pyreflect saves its stats as a pickled .npy"):
        validate_upload("stats.npy", PYREFLECT_SAVED_STATS, "pyreflect_stats", LIMIT)
    stats = stats_from_pickled_npy("stats.npy", PYREFLECT_SAVED_STATS)
    assert stats["sld"]["x"] == {"min": 0.0, "max": 640.0}
    np.testing.assert_allclose(stats["nr"]["x"]["max"], 0.1975, rtol=1e-6)
    assert stats_from_pickled_npy("plain.npy", object_npy(STATS)) == STATS


@functools.lru_cache(maxsize=1)
def pyreflect_weights_bytes() -> bytes:
    """pyreflect's CNN(12) weights, stored whole (310 MB in half precision): made once per session."""
    return torch_bytes(pyreflect_shaped_state(lambda shape: torch.full(shape, 0.001, dtype=torch.float16)))


@NEEDS_PYREFLECT
def test_pyreflect_weights_are_accepted_and_imported(tmp_path):
    weights = pyreflect_weights_bytes()
    accepted = validate_upload("cnn.pth", weights, "pyreflect_weights", 400_000_000)
    assert accepted.content == {"layers": 12, "parameters": 155_285_778}
    model_dir = import_pyreflect_model(weights, STATS, tmp_path / "imported", filename="cnn.pth",
                                       max_bytes=400_000_000)
    model, meta = load_model(model_dir)
    normalizer = meta.normalization
    assert meta.model.arch == "pyreflect_cnn" and meta.model.layers == 12
    np.testing.assert_allclose(meta.q, Q)
    np.testing.assert_allclose(meta.z, np.linspace(0.0, 640.0, 900))
    assert normalizer == Normalizer(log_r_min=-8.0, log_r_max=0.0, sld_min=-0.5, sld_max=6.4, q_min=0.0081,
                                    q_max=0.1975, z_min=0.0, z_max=640.0)
    with torch.no_grad():
        profile = model(torch.from_numpy(normalizer.nr(nr_array(1)[:, 1])))
    assert profile.shape == (1, 900) and torch.all(torch.isfinite(profile))


def test_import_says_pyreflect_is_needed(monkeypatch, tmp_path):
    monkeypatch.setattr(pyreflect, "pyreflect_available", lambda: False)
    with pytest.raises(UploadError, match="pyreflect weights need pyreflect installed"):
        import_pyreflect_model(b"anything", STATS, tmp_path / "m", filename="cnn.pth")
    with pytest.raises(UploadError, match="cnn.pth: pyreflect weights need pyreflect"):
        validate_upload("cnn.pth", torch_bytes({}), "pyreflect_weights", LIMIT)
    assert not (tmp_path / "m").exists()


# --- keeping accepted files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("given, kept", [
    ("curve.txt", "curve.txt"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\nr train.npy", "nr_train.npy"),
    (".hidden.npy", "hidden.npy"),
    ("..", "upload"),
    ("résumé;rm -rf.json", "r_sum_rm_-rf.json"),
    ("x" * 300 + ".npy", "x" * 100 + ".npy"),
])
def test_safe_filename(given, kept):
    assert safe_filename(given) == kept


def test_save_accepted_never_overwrites_and_leaves_no_temporary(tmp_path):
    user_dir = tmp_path / "uploads" / "alice"
    first = save_accepted(user_dir, "../nr_train.npy", b"one")
    second = save_accepted(user_dir, "nr_train.npy", b"two")
    third = save_accepted(user_dir, "sub/nr_train.npy", b"three")
    assert [first.name, second.name, third.name] == ["nr_train.npy", "nr_train-1.npy", "nr_train-2.npy"]
    assert [p.read_bytes() for p in (first, second, third)] == [b"one", b"two", b"three"]
    assert sorted(p.name for p in user_dir.iterdir()) == ["nr_train-1.npy", "nr_train-2.npy", "nr_train.npy"]
