"""A corpus of hostile and legitimate files for every upload and import route, made by code
(nothing binary is committed). ``cases(canary)`` returns ``Case``s; a payload that would run
code writes the file ``canary``, so a test can tell that nothing ran.

Run as a script to write the corpus to a folder: ``python tests/hostile_corpus.py OUT``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Routes: an upload role of the Models page, or an import of the History page.
ROUTES = ("nr", "sld", "curve", "film", "model", "pyreflect_weights", "pyreflect_stats", "bundle", "json")
Q = np.geomspace(0.0081, 0.1975, 60)


@dataclass(frozen=True)
class Case:
    route: str
    name: str
    data: bytes
    accept: bool  # a legitimate control (True) or a file that must be refused (False)
    why: str


class Payload:
    """Unpickling this runs ``os.system``: it must never be unpickled."""

    def __init__(self, canary: str):
        self.canary = canary

    def __reduce__(self):
        return os.system, (f"touch {self.canary}",)


class OpenPayload:
    def __init__(self, canary: str):
        self.canary = canary

    def __reduce__(self):
        return open, (self.canary, "w")


class BadDtype:
    """Unpickles to an object dtype whose item size is 1 byte: building an array from it
    makes numpy read raw bytes as object pointers (the kind of file that segfaulted the server)."""

    def __reduce__(self):
        return np.dtype, ("O8", False, True), (3, "|", None, None, None, 1, 1, 63)


class BadArray:
    def __reduce__(self):
        from numpy.core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (4,), BadDtype(), False, b"\x41" * 4)


def npy_object(obj) -> bytes:
    """An object .npy holding ``obj`` pickled: a header numpy writes, then the pickle."""
    return npy_raw("{'descr': '|O', 'fortran_order': False, 'shape': (), }") + pickle.dumps(obj, protocol=2)


def npy(array, version=(1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), version=version, allow_pickle=True)
    return buffer.getvalue()


def npy_raw(header: str, body: bytes = b"", version: int = 1) -> bytes:
    """A .npy file with a hand-written header (padded as numpy pads it)."""
    head = header.encode("latin1")
    size_fmt = "<H" if version == 1 else "<I"
    prefix = b"\x93NUMPY" + bytes([version, 0])
    pad = 64 - (len(prefix) + struct.calcsize(size_fmt) + len(head) + 1) % 64
    head = head + b" " * pad + b"\n"
    return prefix + struct.pack(size_fmt, len(head)) + head + body


def curves(n=8, q=Q, r_scale=1.0):
    r = np.stack([np.clip(1e-7 + (0.0081 / q) ** 4, None, 1.0)] * n) * r_scale
    out = np.empty((n, 2, q.size), np.float32)
    out[:, 0], out[:, 1] = q, r
    return out


def profiles(n=8, m=50):
    z = np.linspace(-20, 300, m)
    out = np.empty((n, 2, m), np.float32)
    out[:, 0], out[:, 1] = z, 2.07 + np.tanh(z / 30)[None] * np.linspace(0.5, 1.5, n)[:, None]
    return out


def zipped(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


FILM = {"layers": [{"name": "Si", "sld": 2.07, "isld": 0.0, "thickness": 0.0, "roughness": 3.0},
                   {"name": "polymer", "sld": 1.2, "isld": 0.0, "thickness": 300.0, "roughness": 5.0},
                   {"name": "air", "sld": 0.0, "isld": 0.0, "thickness": 0.0, "roughness": 0.0}]}


def film_with(**change) -> bytes:
    layers = [dict(layer) for layer in FILM["layers"]]
    layers[1].update(change)
    return json.dumps({"layers": layers}).encode()


def text_curve(rows, header="# Q R dR dQ\n") -> bytes:
    return (header + "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in rows)).encode()


CURVE_ROWS = [(q, 1e-7 + (0.0081 / q) ** 4 if q > 0.0081 else 1.0, 1e-3, 0.02 * q) for q in Q]


def orso(rows, q_unit="1/angstrom", extra="", fifth=False) -> bytes:
    """An ORSO file as orsopy writes it (Qz, R, sR, sQz as a 1-σ resolution; optionally a fifth
    column), with ``extra`` lines put into its YAML header."""
    import tempfile

    from orsopy.fileio import orso as orso_io

    header = orso_io.Orso.empty()
    header.columns = [orso_io.Column("Qz", q_unit), orso_io.Column("R"), orso_io.ErrorColumn("R"),
                      orso_io.ErrorColumn("Qz", error_type="resolution", value_is="sigma")]
    if fifth:
        header.columns.append(orso_io.Column("lambda", "angstrom"))
    data = np.array([row[:4] + ((5.0,) if fifth else ()) for row in rows], dtype=float)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "curve.ort"
        orso_io.save_orso([orso_io.OrsoDataset(header, data)], str(path))
        first, rest = path.read_text().split("\n", 1)
    return (first + "\n" + extra + rest).encode()


def array_cases(role: str, canary: str) -> list[Case]:
    good = curves() if role == "nr" else profiles()
    shape = good.shape
    c = [Case(role, f"{role}_control.npy", npy(good), True, "a legitimate float32 array"),
         Case(role, f"{role}_control_float64.npy", npy(good.astype(np.float64)), True, "float64 is fine"),
         Case(role, f"{role}_control_bigendian.npy", npy(good.astype(">f8")), True, "big-endian floats"),
         Case(role, f"{role}_pickle_payload.npy", npy(np.array([Payload(canary)], dtype=object)), False,
              "an object array: unpickling would run os.system"),
         Case(role, f"{role}_pickle_open.npy", npy(np.array([OpenPayload(canary), 1], dtype=object)), False,
              "an object array that opens a file"),
         Case(role, f"{role}_raw_pickle.npy", pickle.dumps(Payload(canary)), False, "a bare pickle named .npy"),
         Case(role, f"{role}_dtype_setstate.npy", npy_object(BadArray()), False, "a corrupted object dtype"),
         Case(role, f"{role}_nan.npy", npy(np.where(np.arange(good.size).reshape(shape) == 5, np.nan, good)), False,
              "NaN"),
         Case(role, f"{role}_inf.npy", npy(np.where(np.arange(good.size).reshape(shape) == 5, np.inf, good)), False,
              "inf"),
         Case(role, f"{role}_2d.npy", npy(good[:, 1]), False, "wrong number of dimensions"),
         Case(role, f"{role}_three_rows.npy", npy(np.concatenate([good, good[:, :1]], axis=1)), False,
              "3 rows instead of 2"),
         Case(role, f"{role}_complex.npy", npy(good.astype(np.complex64)), False, "complex numbers"),
         Case(role, f"{role}_strings.npy", npy(np.full(shape, "1.0")), False, "strings"),
         Case(role, f"{role}_int.npy", npy(np.ones(shape, np.int64)), False, "integers where floats belong"),
         Case(role, f"{role}_empty_file.npy", b"", False, "an empty file"),
         Case(role, f"{role}_zero_curves.npy", npy(np.zeros((0, 2, shape[2]), np.float32)), False, "no curves"),
         Case(role, f"{role}_not_npy.npy", b"PK\x03\x04 this is not an array" * 10, False, "not a .npy"),
         Case(role, f"{role}_truncated.npy", npy(good)[:-100], False, "data cut short"),
         Case(role, f"{role}_trailing_bytes.npy", npy(good) + b"\x00" * 4096, False, "bytes after the data"),
         Case(role, f"{role}_claims_1e12.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, "
                                                       "'shape': (1000000, 2, 1000000), }", b"\x00" * 64), False,
              "a header claiming 2e12 values over 64 bytes"),
         Case(role, f"{role}_negative_shape.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, "
                                                          "'shape': (-1, 2, 10), }"), False, "a negative shape"),
         Case(role, f"{role}_header_code.npy", npy_raw("__import__('os').system('touch " + canary + "')"), False,
              "a header that is code"),
         Case(role, f"{role}_huge_header.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), "
                                                       "'x': '" + "A" * 200_000 + "'}", b"\x00" * 16, version=2),
              False, "a 200 kB header"),
         Case(role, f"{role}_fortran.npy", npy(np.asfortranarray(good)), True, "Fortran order is still an array"),
         Case(role, f"{role}_wrong_ext.txt", npy(good), False, "wrong extension"),
         Case(role, f"{role}_float16.npy", npy(good.astype(np.float16)), True, "half precision"),
         Case(role, f"{role}_structured.npy", npy(np.zeros(shape[0], dtype=[("q", "f4"), ("r", "f4")])), False,
              "a structured array"),
         Case(role, f"{role}_version3.npy", npy(good, version=(3, 0)), False,
              "npy format 3.0 (numpy writes it only for UTF-8 field names: never for a plain float array)"),
         ]
    if role == "nr":
        bad_q = good.copy()
        bad_q[:, 0] = -bad_q[:, 0]
        dup = good.copy()
        dup[:, 0, 1] = dup[:, 0, 0]
        desc = good.copy()
        desc[:, 0] = desc[:, 0, ::-1]
        c += [Case(role, "nr_negative_q.npy", npy(bad_q), False, "Q < 0"),
              Case(role, "nr_duplicate_q.npy", npy(dup), False, "a duplicate Q on the grid"),
              Case(role, "nr_decreasing_q.npy", npy(desc), False, "a decreasing Q grid"),
              Case(role, "nr_q_in_nm.npy", npy(curves(q=Q * 10)), False, "Q in 1/nm"),
              Case(role, "nr_percent.npy", npy(curves(r_scale=100)), False, "R in %"),
              Case(role, "nr_counts.npy", npy(curves(r_scale=1e5)), False, "R in counts"),
              Case(role, "nr_grid_differs.npy", npy(np.stack([curves(1)[0], curves(1, q=Q * 1.1)[0]])), False,
                   "two different Q grids")]
    else:
        si = good * np.array([1.0, 1e-6])[None, :, None]
        c += [Case(role, "sld_si_units.npy", npy(si.astype(np.float32)), False, "SLD in Å⁻² (×1e-6 too small)")]
    return c


def curve_cases(canary: str) -> list[Case]:
    rows = CURVE_ROWS
    c = [Case("curve", "control_4col.txt", text_curve(rows), True, "Q R dR dQ"),
         Case("curve", "control_2col.dat", text_curve([r[:2] for r in rows], header="# Q R\n"), True, "Q R"),
         Case("curve", "control_3col.csv", ("Q,R,dR\n" + "".join(f"{q},{r},{dr}\n" for q, r, dr, _ in rows)).encode(),
              True, "CSV with a header line"),
         Case("curve", "control_crlf.txt", text_curve(rows).replace(b"\n", b"\r\n"), True, "Windows line ends"),
         Case("curve", "control_repeated_q.txt", text_curve(rows + rows[10:20]), True,
              "overlapping angle segments repeat Q, as real data does"),
         Case("curve", "control_negative_r.txt", text_curve([rows[0], (rows[1][0], -1e-6, 1e-3, 1e-4)] + rows[2:]),
              True, "a few negative R after background subtraction, as real data has"),
         Case("curve", "control_bom.txt", b"\xef\xbb\xbf" + text_curve(rows), True, "a UTF-8 BOM"),
         Case("curve", "control_orso.ort", orso(rows), True, "ORSO as orsopy writes it"),
         Case("curve", "control_orso_nm.ort", orso([(q * 10, r, dr, dq * 10) for q, r, dr, dq in rows],
                                                   "1/nm"), True,
              "ORSO in 1/nm"),
         Case("curve", "control_orso_5col.ort",
              orso(rows, fifth=True), True, "ORSO with a fifth column"),
         Case("curve", "binary.txt", os.urandom(4000), False, "random bytes"),
         Case("curve", "utf16.txt", text_curve(rows).decode().encode("utf-16"), False, "UTF-16"),
         Case("curve", "empty.txt", b"", False, "empty"),
         Case("curve", "comments_only.txt", b"# nothing\n# here\n", False, "no data"),
         Case("curve", "one_point.txt", text_curve(rows[:1]), False, "one point"),
         Case("curve", "nan.txt", text_curve(rows[:5] + [(0.05, float("nan"), 1e-3, 1e-3)] + rows[6:]), False, "NaN"),
         Case("curve", "inf.txt", text_curve(rows[:5] + [(0.05, float("inf"), 1e-3, 1e-3)] + rows[6:]), False, "inf"),
         Case("curve", "negative_q.txt", text_curve([(-q, r, dr, dq) for q, r, dr, dq in rows]), False, "Q < 0"),
         Case("curve", "zero_q.txt", text_curve([(0.0, 1.0, 1e-3, 1e-4)] + rows), False, "Q = 0"),
         Case("curve", "percent.txt", text_curve([(q, r * 100, dr, dq) for q, r, dr, dq in rows]), False, "R in %"),
         Case("curve", "counts.txt", text_curve([(q, r * 1e6, dr, dq) for q, r, dr, dq in rows]), False,
              "R in counts"),
         Case("curve", "log10.txt", text_curve([(q, np.log10(r), dr, dq) for q, r, dr, dq in rows]), False,
              "log10 R"),
         Case("curve", "q_in_nm.txt", text_curve([(q * 10, r, dr, dq) for q, r, dr, dq in rows]), False,
              "Q in 1/nm in a text file"),
         Case("curve", "ragged.txt", b"0.01 1 0.1\n0.02 0.5\n0.03 0.1 0.01 0.001 9 9\n", False, "ragged columns"),
         Case("curve", "many_columns.txt", (" ".join(["0.01"] * 5000) + "\n").encode() * 3, False, "5000 columns"),
         Case("curve", "long_number.txt", ("0." + "1" * 50_000 + " 0.5\n0.02 0.1\n0.03 0.01\n").encode(), True,
              "a 50,000-digit decimal is still the number 0.111…"),
         Case("curve", "huge_int.txt", ("1" * 5000 + " 0.5\n0.02 0.1\n0.03 0.01\n").encode(), False,
              "a 5000-digit integer"),
         Case("curve", "negative_dr.txt", text_curve([(q, r, -dr, dq) for q, r, dr, dq in rows]), False, "dR < 0"),
         Case("curve", "negative_dq.txt", text_curve([(q, r, dr, -dq) for q, r, dr, dq in rows]), False, "dQ < 0"),
         Case("curve", "two_header_lines.txt", b"Q R\nx y\n" + text_curve(rows, header=""), False,
              "two lines of words"),
         Case("curve", "curve.exe", text_curve(rows), False, "wrong extension"),
         Case("curve", "orso_python_tag.ort", orso(rows, extra="# evil: !!python/object/apply:os.system ['touch "
                                                  + canary + "']\n"), False,
              "YAML that would run os.system"),
         Case("curve", "orso_billion_laughs.ort",
              orso(rows, extra="".join(f"# l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" if i else
                                 "# l0: &l0 [lol]\n" for i in range(9))), True,
              "9⁹ YAML aliases: references, never expanded, so harmless"),
         Case("curve", "orso_bad_unit.ort", orso(rows, "furlongs"), False,
              "ORSO Q in an unknown unit"),
         Case("curve", "orso_no_columns.ort", b"# # ORSO reflectivity data file | 1.0 standard | YAML encoding\n"
                                              b"# data_source: 3\n0.01 1\n0.02 0.5\n", False, "a broken ORSO header"),
         Case("curve", "orso_nested.ort", orso(rows, extra="# deep: " + nested(5000) + "\n"), False,
              "deeply nested YAML"),
         Case("curve", "long_line.txt", b"0.01 " + b"9" * 2_000_000 + b"\n", False, "a 2 MB line"),
         ]
    return c


def film_cases(canary: str) -> list[Case]:
    layers = [{"name": f"l{i}", "sld": 1.0, "isld": 0.0, "thickness": 10.0, "roughness": 1.0} for i in range(500)]
    export = {"params": {"layers": FILM["layers"]}, "result": {}}
    c = [Case("film", "control.json", json.dumps(FILM).encode(), True, "a film"),
         Case("film", "control_export.json", json.dumps(export).encode(), True, "a pyreflect-interface export"),
         Case("film", "control_negative_sld.json", film_with(sld=-0.56), True, "H2O has negative SLD"),
         Case("film", "nested.json", nested(100_000).encode(), False, "JSON nested 100,000 deep"),
         Case("film", "nested_objects.json", ('{"a":' * 5000 + "1" + "}" * 5000).encode(), False,
              "objects nested 5000 deep"),
         Case("film", "huge_int.json", film_with(thickness="HUGE").replace(b'"HUGE"', b"9" * 5000), False,
              "a 5000-digit integer"),
         Case("film", "nan.json", film_with(sld=float("nan")), False, "NaN"),
         Case("film", "infinity.json", film_with(roughness=float("inf")), False, "Infinity"),
         Case("film", "thick.json", film_with(thickness=3e7), False, "3 mm thick"),
         Case("film", "rough.json", film_with(roughness=1e9), False, "absurd roughness"),
         Case("film", "sld_huge.json", film_with(sld=1e12), False, "absurd SLD"),
         Case("film", "negative_thickness.json", film_with(thickness=-5.0), False, "negative thickness"),
         Case("film", "500_layers.json", json.dumps({"layers": layers}).encode(), False, "500 layers"),
         Case("film", "string_number.json", film_with(sld="2.07"), True, "a number written as text is that number"),
         Case("film", "bool_number.json", film_with(thickness=True), False, "a boolean as a number"),
         Case("film", "list.json", b"[1, 2, 3]", False, "not an object"),
         Case("film", "no_layers.json", b'{"layers": []}', False, "no layers"),
         Case("film", "one_layer.json", json.dumps({"layers": FILM["layers"][:1]}).encode(), False, "one layer"),
         Case("film", "not_utf8.json", b'{"layers": "\xff\xfe"}', False, "not UTF-8"),
         Case("film", "long_name.json", film_with(name="x" * 1_000_000), False, "a 1 MB layer name"),
         Case("film", "extra_keys.json", film_with(evil="__import__('os')"), True,
              "unknown keys are ignored as data (pyreflect exports carry extra fields)"),
         Case("film", "pickle.json", pickle.dumps(Payload(canary)), False, "a pickle named .json"),
         Case("film", "film.yaml", json.dumps(FILM).encode(), False, "wrong extension"),
         Case("film", " .json", json.dumps(FILM).encode(), True, "a name that is only a space: still a film"),
         Case("film", "beam_bogus.json", json.dumps({**FILM, "beam_from": "side"}).encode(), False, "bad beam side"),
         Case("film", "too_big.json", b'{"layers": [' + b" " * 2_000_000 + b"]}", False, "over the size limit"),
         ]
    return c


def tiny_model_dir_members(meta_change: dict | None = None, weights: bytes | None = None) -> dict:
    """model.json + model.pt of a real, tiny compact CNN (built here, on 60 Q and 50 z points)."""
    import torch

    from reflect_core.ml.models import build_model
    from reflect_core.ml.settings import ModelSettings

    settings = ModelSettings(layers=1, channels=4, hidden=8)
    torch.manual_seed(0)
    model = build_model(settings, Q.size, 50)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    meta = {"schema": 2, "source": {"kind": "training"}, "model": settings.to_dict(), "q": Q.tolist(),
            "z": np.linspace(-20, 300, 50).tolist(), "dq": 0.03, "beam_from": "ambient",
            "normalization": {"log_r_min": -8.0, "log_r_max": 0.0, "sld_min": 0.0, "sld_max": 6.4, "q_min": 0.0081,
                              "q_max": 0.1975, "z_min": -20.0, "z_max": 300.0, "r_floor": 1e-10},
            "metrics": None, "history": None, "parameters": sum(p.numel() for p in model.parameters()),
            "versions": {}}
    meta.update(meta_change or {})
    return {"model/model.json": json.dumps(meta), "model/model.pt": weights if weights is not None
            else buffer.getvalue()}


def torch_file(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def expanded_state(settings_shapes: dict) -> bytes:
    """A state dict whose tensors are views of one element (stride 0): tiny file, huge declared size."""
    import torch

    return torch_file({name: torch.zeros(1).expand(*shape) for name, shape in settings_shapes.items()})


def model_cases(canary: str) -> list[Case]:
    import torch

    good = tiny_model_dir_members()
    state = torch.load(io.BytesIO(good["model/model.pt"]), weights_only=True)
    bigger = {k: tuple(v.shape) for k, v in state.items()}
    wide = {"model": {"arch": "compact_cnn", "layers": 1, "channels": 4, "hidden": 60_000}}
    wide_shapes = {k: (tuple(v) if "weight" not in k or len(v) != 2 else (v[0] if v[0] != 8 else 60_000, v[1]))
                   for k, v in bigger.items()}
    c = [Case("model", "control.zip", zipped(good), True, "a tiny model"),
         Case("model", "control_flat.zip", zipped({k.split("/")[1]: v for k, v in good.items()}), True,
              "model files at the top of the zip"),
         Case("model", "control_schema1.zip", zipped(tiny_model_dir_members({"schema": None})
                                                     | {"model/model.json": json.dumps(
                                                         {k: v for k, v in json.loads(good["model/model.json"]).items()
                                                          if k not in ("schema", "source", "beam_from")})}), True,
              "model.json from before schema 2"),
         Case("model", "weights_pickle.zip", zipped(tiny_model_dir_members(weights=pickle.dumps(Payload(canary)))),
              False, "weights that are a pickle running os.system"),
         Case("model", "weights_torch_payload.zip", zipped(tiny_model_dir_members(weights=torch_file(
             {"x": Payload(canary)}))), False, "a torch file with a code payload"),
         Case("model", "expanded_tensor.zip", zipped(tiny_model_dir_members(
             wide, weights=expanded_state(wide_shapes))), False, "zero-stride tensors claiming 1e8 parameters"),
         Case("model", "declares_420M.zip", zipped(tiny_model_dir_members(
             {"model": {"arch": "compact_cnn", "layers": 1, "channels": 4, "hidden": 65536}})), False,
              "settings that declare hundreds of millions of parameters"),
         Case("model", "declares_3e12.zip", zipped(tiny_model_dir_members(
             {"model": {"arch": "compact_cnn", "layers": 64, "channels": 1024, "hidden": 65536}})), False,
              "settings that declare 3e12 parameters"),
         Case("model", "shared_storage.zip", zipped(tiny_model_dir_members(weights=torch_file(
             dict(zip(state, [torch.zeros(1000)[: v.numel()].view(v.shape) for v in state.values()],
                      strict=True))))), False, "every tensor a view of one storage"),
         Case("model", "wrong_shapes.zip", zipped(tiny_model_dir_members(weights=torch_file(
             {k: torch.zeros(3) for k in state}))), False, "weights of another network"),
         Case("model", "no_weights.zip", zipped({"model/model.json": good["model/model.json"]}), False, "no model.pt"),
         Case("model", "no_meta.zip", zipped({"model/model.pt": good["model/model.pt"]}), False, "no model.json"),
         Case("model", "two_models.zip", zipped({**good, "b/model.json": good["model/model.json"],
                                                 "b/model.pt": good["model/model.pt"]}), False, "two models"),
         Case("model", "traversal.zip", zipped({"../../evil/model.json": good["model/model.json"],
                                                "../../evil/model.pt": good["model/model.pt"]}), False, "../ paths"),
         Case("model", "absolute.zip", zipped({"/tmp/model.json": good["model/model.json"],
                                               "/tmp/model.pt": good["model/model.pt"]}), False, "absolute paths"),
         Case("model", "file_and_folder.zip", zipped({**good, "data/x": b"1", "data/x/y": b"2"}), False,
              "a member that is a file and a folder"),
         Case("model", "zip_bomb.zip", zipped({**good, "model/pad.bin": b"\0" * 400_000_000}), False,
              "400 MB of zeros in a small zip"),
         Case("model", "many_members.zip", zipped({**good, **{f"x/{i}": b"" for i in range(5000)}}), False,
              "5000 members"),
         Case("model", "not_zip.zip", os.urandom(5000), False, "random bytes"),
         Case("model", "empty.zip", b"", False, "empty"),
         Case("model", "meta_nested.zip", zipped({**good, "model/model.json": nested(100_000)}), False,
              "model.json nested 100,000 deep"),
         Case("model", "meta_list.zip", zipped({**good, "model/model.json": "[1]"}), False, "model.json is a list"),
         Case("model", "meta_no_dq.zip", zipped(tiny_model_dir_members({"dq": None})), False, "no dq"),
         Case("model", "meta_string_prior.zip", zipped(tiny_model_dir_members({"prior": "lots"})), False,
              "prior is text"),
         Case("model", "meta_string_metrics.zip", zipped(tiny_model_dir_members({"metrics": "good"})), False,
              "metrics is text"),
         Case("model", "meta_string_parameters.zip", zipped(tiny_model_dir_members({"parameters": "many"})), False,
              "parameters is text"),
         Case("model", "meta_nan_norm.zip", zipped(tiny_model_dir_members(
             {"normalization": {**json.loads(good["model/model.json"])["normalization"], "sld_max": float("nan")}})),
              False, "NaN in the normalisation"),
         Case("model", "meta_q_nm.zip", zipped(tiny_model_dir_members({"q": (Q * 10).tolist()})), False, "Q in 1/nm"),
         Case("model", "meta_huge_int.zip", zipped({**good, "model/model.json": good["model/model.json"].replace(
             '"dq": 0.03', '"dq": ' + "9" * 5000)}), False, "a 5000-digit dq"),
         Case("model", "meta_data_folder.zip", zipped(tiny_model_dir_members({"data_folder": "/etc"})), True,
              "a path in model.json is dropped, not followed"),
         Case("model", " .zip", zipped(good), True, "a name that is only a space"),
         Case("model", "stored_not_deflated.zip", zipped(good, compression=zipfile.ZIP_STORED), True,
              "an uncompressed zip"),
         ]
    return c


def stats_cases(canary: str) -> list[Case]:
    stats = {"nr": {"x": {"min": 0.0081, "max": 0.1975}, "y": {"min": -8.0, "max": 0.0}},
             "sld": {"x": {"min": 0.0, "max": 640.0}, "y": {"min": -0.5, "max": 6.4}}}
    npz = io.BytesIO()
    np.savez(npz, **{f"{part}_{axis}_{end}": np.float64(stats[part][axis][end])
                     for part in stats for axis in ("x", "y") for end in ("min", "max")})
    c = [Case("pyreflect_stats", "control_stats.json", json.dumps(stats).encode(), True, "stats as JSON"),
         Case("pyreflect_stats", "control_stats.npz", npz.getvalue(), True, "stats as .npz"),
         Case("pyreflect_stats", "pyreflect_pickled.npy", npy(np.array(stats, dtype=object)), False,
              "pyreflect's pickled dict: converted by the command line only"),
         Case("pyreflect_stats", "payload.npy", npy(np.array(Payload(canary), dtype=object)), False,
              "a pickle that runs os.system"),
         Case("pyreflect_stats", "crafted.npy", npy_object(Payload(canary)), False,
              "a hand-made object .npy with a payload"),
         Case("pyreflect_stats", "dtype_setstate.npy", npy_object({"nr": BadArray()}), False,
              "an object dtype with a 1-byte item size: raw bytes read as pointers"),
         Case("pyreflect_stats", "nested.json", nested(100_000).encode(), False, "JSON nested 100,000 deep"),
         Case("pyreflect_stats", "nan.json", json.dumps({**stats, "nr": {"x": {"min": float("nan"), "max": 1},
                                                                          "y": stats["nr"]["y"]}}).encode(), False,
              "NaN"),
         Case("pyreflect_stats", "missing.json", b'{"nr": {}}', False, "fields missing"),
         Case("pyreflect_stats", "inverted.json", json.dumps({**stats, "sld": {"x": {"min": 5, "max": 1},
                                                                               "y": stats["sld"]["y"]}}).encode(),
              False, "min above max"),
         Case("pyreflect_stats", "npz_pickle.npz", zipped({"nr_x_min.npy": npy(np.array([Payload(canary)],
                                                                                      dtype=object))}), False,
              "an .npz holding an object array"),
         Case("pyreflect_stats", "stats.pkl", pickle.dumps(stats), False, "a pickle file"),
         ]
    for i, junk in enumerate([os.urandom(64), os.urandom(264), b"\x93NUMPY\x01\x00" + os.urandom(300)]):
        c.append(Case("pyreflect_stats", f"random_{i}.npy", junk, False, "random bytes"))
    return c


def weights_cases(canary: str) -> list[Case]:
    import torch

    return [Case("pyreflect_weights", "payload.pth", pickle.dumps(Payload(canary)), False, "a bare pickle"),
            Case("pyreflect_weights", "torch_payload.pth", torch_file({"w": Payload(canary)}), False,
                 "a torch file with a code payload"),
            Case("pyreflect_weights", "random.pth", os.urandom(10_000), False, "random bytes"),
            Case("pyreflect_weights", "empty.pth", b"", False, "empty"),
            Case("pyreflect_weights", "tiny_state.pth", torch_file({"w": torch.zeros(3)}), False,
                 "not pyreflect's CNN"),
            Case("pyreflect_weights", "expanded.pth", torch_file({"w": torch.zeros(1).expand(20000, 20000)}), False,
                 "a zero-stride tensor claiming 4e8 values"),
            Case("pyreflect_weights", "weights.exe", torch_file({"w": torch.zeros(3)}), False, "wrong extension")]


def record(kind="film", **change) -> dict:
    base = {"id": "0123456789ab", "owner": "mallory", "name": "imported", "kind": kind, "created": 1.7e9,
            "updated": 1.7e9, "params": {"film": FILM} if kind == "film" else {}, "summary": {}, "files": None,
            "run_id": None}
    base.update(change)
    return base


def bundle_cases(canary: str) -> list[Case]:
    model = {f"model/{k.split('/')[1]}": v for k, v in tiny_model_dir_members().items()}
    rec = json.dumps(record())
    c = [Case("bundle", "control_film.zip", zipped({"record.json": rec}), True, "a film record"),
         Case("bundle", "control_model.zip", zipped({"record.json": json.dumps(record("import")), **model}), True,
              "an imported model"),
         Case("bundle", "no_record.zip", zipped({"x.txt": "hello"}), False, "not a bundle"),
         Case("bundle", "record_nested.zip", zipped({"record.json": nested(100_000)}), False, "deeply nested JSON"),
         Case("bundle", "record_list.zip", zipped({"record.json": "[]"}), False, "record is a list"),
         Case("bundle", "bad_kind.zip", zipped({"record.json": json.dumps(record(kind="exploit"))}), False,
              "an unknown kind"),
         Case("bundle", "summary_bytes_text.zip", zipped({"record.json": json.dumps(record(summary={"bytes": "lots",
                                                                                               "rmse": "low"}))}),
              True, "odd summary values are imported and must still render"),
         Case("bundle", "files_traversal.zip", zipped({"record.json": json.dumps(record(files="../../etc"))}), True,
              "a files path in the record is replaced, never followed"),
         Case("bundle", "member_traversal.zip", zipped({"record.json": rec, "model/../../../x": b"1"}), False,
              "a ../ member"),
         Case("bundle", "model_pickle.zip", zipped({"record.json": json.dumps(record("import")),
                                                    "model/model.json": model["model/model.json"],
                                                    "model/model.pt": pickle.dumps(Payload(canary))}), False,
              "model weights that are a code payload"),
         Case("bundle", "model_420M.zip", zipped({"record.json": json.dumps(record("import")),
                                                  **{f"model/{k.split('/')[1]}": v for k, v in tiny_model_dir_members(
                                                      {"model": {"arch": "compact_cnn", "layers": 1, "channels": 4,
                                                                 "hidden": 65536}}).items()}}), False,
              "a model declaring hundreds of millions of parameters"),
         Case("bundle", "model_unbuildable.zip", zipped({"record.json": json.dumps(record("import")),
                                                         **{f"model/{k.split('/')[1]}": v for k, v in
                                                            tiny_model_dir_members(
                                                                {"model": {"arch": "pyreflect_cnn"}}).items()}}),
              False, "a pyreflect CNN on 60 Q points cannot be built"),
         Case("bundle", "model_data_folder.zip", zipped({"record.json": json.dumps(record("import")),
                                                         **{f"model/{k.split('/')[1]}": v for k, v in
                                                            tiny_model_dir_members({"data_folder": "/etc",
                                                                                    "test_index": [0, 1]}).items()}}),
              True, "a model.json path is dropped"),
         Case("bundle", "file_and_folder.zip", zipped({"record.json": rec, "data/x": b"1", "data/x/y": b"2"}), False,
              "a member that is a file and a folder"),
         Case("bundle", "bomb.zip", zipped({"record.json": rec, "results/big": b"\0" * 400_000_000}), False,
              "400 MB of zeros"),
         Case("bundle", " .zip", zipped({"record.json": rec}), True, "a name that is only a space"),
         Case("bundle", "random.zip", os.urandom(3000), False, "random bytes"),
         Case("bundle", "training_record_no_model.zip", zipped({"record.json": json.dumps(record(
             "training", params={"dataset": {"n": 10}}, summary={"state": "completed"}))}), True,
              "a training record without its model still renders"),
         ]
    return c


def json_cases(canary: str) -> list[Case]:
    export = {"params": {"layers": FILM["layers"]}, "result": {"sld": [[0, 1], [2, 3]]}}
    return [Case("json", "control_record.json", json.dumps(record()).encode(), True, "a film record"),
            Case("json", "control_export.json", json.dumps(export).encode(), True, "a pyreflect-interface export"),
            Case("json", "nested.json", nested(100_000).encode(), False, "deeply nested"),
            Case("json", "huge_int.json", json.dumps(record()).replace('"created": 1700000000.0',
                                                                      '"created": ' + "9" * 5000).encode(), False,
                 "a 5000-digit number"),
            Case("json", "not_utf8.json", b"\xff\xfe{}", False, "not UTF-8"),
            Case("json", "pickle.json", pickle.dumps(Payload(canary)), False, "a pickle"),
            Case("json", "export_bad_layers.json", json.dumps({"params": {"layers": "x"}, "result": {}}).encode(),
                 False, "layers is text"),
            Case("json", "record_params_list.json", json.dumps(record(params=[1, 2])).encode(), False,
                 "params is a list"),
            Case("json", "record_files.json", json.dumps(record(files="/etc")).encode(), True,
                 "a JSON record's files path is dropped"),
            Case("json", "summary_text.json", json.dumps(record(summary={"bytes": "lots"})).encode(), True,
                 "odd summary values render"),
            Case("json", "empty.json", b"", False, "empty"),
            Case("json", "long_name.json", json.dumps(record(name="n" * 100_000)).encode(), True,
                 "a 100 kB name is cut to the 80-character limit")]


def cases(canary: str) -> list[Case]:
    return (array_cases("nr", canary) + array_cases("sld", canary) + curve_cases(canary) + film_cases(canary)
            + model_cases(canary) + stats_cases(canary) + weights_cases(canary) + bundle_cases(canary)
            + json_cases(canary))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for case in cases(str(out / "EXECUTED")):
        folder = out / case.route
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (case.name.strip() or "blank")).write_bytes(case.data)
    print(f"wrote {len(cases(''))} files under {out}")
