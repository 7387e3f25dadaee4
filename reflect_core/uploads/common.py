"""What every kind of upload shares: the refusal (``UploadError``), the role table, the
size, emptiness and extension checks, units that give away a wrong scale, JSON parsed with a
bound on its nesting, NumPy's .npy header read without loading anything, and zip archives
read only after their listing passes.

Guards against: oversized or empty files, wrong file types, JSON nested deep enough to
exhaust the parser or whoever walks it later, integers too long for Python to convert,
.npy headers that claim huge sizes or hide pickles, and zip bombs, path traversal ('..',
absolute paths, empty or '.' components), symbolic links, encrypted or duplicated members,
a file and a folder of one name, and members that lie about their size. Refusals name the
file as the user called it, never a path on the server.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.lib import format as npy_format

from reflect_core.base.errors import InvalidInput
from reflect_core.base.json_depth import json_depth

ROLES = {  # role → (what it is, in words; accepted extensions)
    "nr": ("an NR training-curves file", (".npy",)),
    "sld": ("an SLD training-profiles file", (".npy",)),
    "curve": ("a measured curve", (".txt", ".dat", ".csv", ".ort")),
    "film": ("a film", (".json",)),
    "model": ("a model", (".zip",)),
    "pyreflect_weights": ("a pyreflect weights file", (".pth", ".pt")),
    "pyreflect_stats": ("a pyreflect normalisation-stats file", (".json", ".npz")),
}
STATS_KEYS = "nr_x_min, nr_x_max, nr_y_min, nr_y_max, sld_x_min, …, sld_y_max"
REFUSED_EXTENSIONS = {  # (role, extension) → why, and what to do instead
    ("pyreflect_stats", ".npy"): (
        "pyreflect saves its stats as a pickled .npy, and this server never loads a pickle (unpickling can run "
        "code or crash it). Upload them as .json ({\"nr\": {\"x\": {\"min\", \"max\"}, \"y\": {…}}, \"sld\": {…}}) "
        f"or .npz (numbers named {STATS_KEYS}), or import the model on the server with "
        "`python -m reflect_core import-pyreflect WEIGHTS.pth STATS.npy --user NAME`, which reads the .npy in an "
        "isolated process"),
}

MAX_ZIP_MEMBERS = 1000
MAX_NPY_HEADER = 10_000  # numpy's own limit for headers it parses safely
MAX_JSON_DEPTH = 64  # nesting of any uploaded JSON; what this app writes nests under 10 levels
Q_MAX_PLAUSIBLE = 1.0  # Å⁻¹: NR hardly ever goes past 0.5 Å⁻¹; the same grid in nm⁻¹ is 10× larger
SLD_SI_MAX = 1e-3  # every |SLD| below this (not all zero) means Å⁻², not 10⁻⁶ Å⁻²


class UploadError(InvalidInput):
    """An upload that is refused; the message names the file and the reason."""


def error(filename: str, reason: str) -> UploadError:
    return UploadError(f"{filename}: {reason}")


def short(exc: BaseException) -> str:
    """A library's exception on one short line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


@dataclass(frozen=True)
class Accepted:
    """An upload that passed every check: what it holds, and a line for the UI."""

    role: str
    filename: str
    content: object  # ndarray, Curve, Film, model.json dict, weights summary or stats dict, by role
    description: str


def check_basics(filename: str, data: bytes, role: str, max_bytes: int) -> str:
    """The checks every role shares (known role, size, not empty, extension); returns the
    lower-case extension. An unknown role is a programming error (ValueError), not an UploadError."""
    if role not in ROLES:
        raise ValueError(f"unknown upload role {role!r}; one of {', '.join(ROLES)}")
    label, extensions = ROLES[role]
    if len(data) > max_bytes:
        raise error(filename, f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
    if not data:
        raise error(filename, "the file is empty")
    suffix = PurePosixPath(filename).suffix.lower()
    if (role, suffix) in REFUSED_EXTENSIONS:
        raise error(filename, REFUSED_EXTENSIONS[role, suffix])
    if suffix not in extensions:
        allowed = extensions[0] if len(extensions) == 1 else f"{', '.join(extensions[:-1])} or {extensions[-1]}"
        raise error(filename, f"{label} must be a {allowed} file, not {suffix or 'a file without an extension'}")
    return suffix


# --- units ---------------------------------------------------------------------------------------------------------


def check_q_units(filename: str, q: np.ndarray) -> None:
    top = float(np.max(q))
    if top > Q_MAX_PLAUSIBLE:
        raise error(filename, f"Q looks like it is not in Å⁻¹: it goes up to {top:.4g}, and neutron reflectivity "
                              f"hardly ever goes past 0.5 Å⁻¹ (is it in nm⁻¹?)")


def check_sld_units(filename: str, sld: np.ndarray) -> None:
    top = float(np.max(np.abs(sld)))
    if 0 < top < SLD_SI_MAX:
        raise error(filename, f"SLD looks like it is in Å⁻², expected 10⁻⁶ Å⁻² units (the largest |SLD| is "
                              f"{top:.3g}; silicon is 2.07)")


# --- JSON ----------------------------------------------------------------------------------------------------------


def load_json(filename: str, data: bytes | str, what: str = "the file", max_depth: int = MAX_JSON_DEPTH):
    """Parsed JSON, or UploadError: not JSON, nested over ``max_depth`` levels (a RecursionError
    in the parser is the same refusal), or an integer past Python's digit limit."""
    try:
        value = json.loads(data)
    except RecursionError:
        value = None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also an integer of over 4300 digits
        raise error(filename, f"{what} is not valid JSON ({' '.join(str(exc).split())[:160]})") from None
    else:
        if json_depth(value) <= max_depth:
            return value
    raise error(filename, f"{what} is JSON nested too deeply (more than {max_depth} levels); refused")


# --- .npy headers, never unpickled ---------------------------------------------------------------------------------


def npy_header(filename: str, data: bytes) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran order, dtype, offset of the numbers), from numpy's own safe header parser."""
    if not data.startswith(npy_format.MAGIC_PREFIX):
        raise error(filename, "not a .npy file (it does not start with NumPy's header)")
    if len(data) < 12:
        raise error(filename, "is truncated: too short to hold a .npy header")
    readers = {(1, 0): (npy_format.read_array_header_1_0, 2), (2, 0): (npy_format.read_array_header_2_0, 4)}
    version = (data[6], data[7])
    if version not in readers:
        raise error(filename, f"unsupported .npy format version {version[0]}.{version[1]}")
    reader, length_bytes = readers[version]
    header_bytes = int.from_bytes(data[8:8 + length_bytes], "little")
    if header_bytes > MAX_NPY_HEADER:
        raise error(filename, f"its .npy header claims {header_bytes:,} bytes; real ones are a few hundred, "
                              f"so it is refused")
    stream = io.BytesIO(data)
    stream.seek(8)
    try:
        shape, fortran, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)
    except Exception as exc:  # noqa: BLE001 - numpy's parser raises several kinds on garbage; each means unreadable
        raise error(filename, f"its .npy header is unreadable ({short(exc)})") from None
    return shape, fortran, dtype, stream.tell()


# --- zip archives --------------------------------------------------------------------------------------------------


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member may not be read, or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    parts = re.split(r"[\\/]", name.rstrip("/\\"))
    if ".." in parts:
        return "has a '..' path component"
    if "" in parts or "." in parts:
        return "has an empty or '.' path component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def check_zip_listing(filename: str, infos: list, max_bytes: int, max_members: int, what: str = "the zip") -> None:
    """Every check that needs only the listing: run before any member is decompressed."""
    if len(infos) > max_members:
        raise error(filename, f"{what} has {len(infos):,} members, over the limit of {max_members:,}")
    for info in infos:
        reason = _unsafe_member(info)
        if reason:
            raise error(filename, f"{what} member {info.filename!r} {reason}; refused")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise error(filename, f"{what} holds two members with the same name")
    files = {info.filename.replace("\\", "/") for info in infos if not info.is_dir()}
    folders = {str(parent) for name in files | {n.replace("\\", "/").rstrip("/") for n in names}
               for parent in PurePosixPath(name).parents}
    clash = sorted(files & folders)
    if clash:
        raise error(filename, f"{what} member {clash[0]!r} is both a file and a folder; refused")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > max_bytes:
        raise error(filename, f"{what} unpacks to {unpacked:,} bytes, over the {max_bytes:,}-byte limit "
                              f"(a zip bomb?)")


def _read_member(filename: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)  # never more than the listing promised
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise error(filename, f"zip member {info.filename!r} is damaged ({exc})") from None
    if len(content) != info.file_size:
        raise error(filename, f"zip member {info.filename!r} holds {len(content):,} bytes, not the "
                              f"{info.file_size:,} its listing says")
    return content


def safe_zip_members(filename: str, data: bytes, max_bytes: int) -> dict[str, bytes]:
    """Every file in a zip, name → bytes; members are read only after the whole listing passes
    (member count, unpacked total within ``max_bytes``, relative paths without '..', no links,
    no encryption)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise error(filename, f"not a readable zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
        check_zip_listing(filename, infos, max_bytes, MAX_ZIP_MEMBERS)
        return {info.filename: _read_member(filename, archive, info) for info in infos if not info.is_dir()}


# --- a model directory, whole or not at all ------------------------------------------------------------------------


class AlreadyExists(UploadError, FileExistsError):
    """The target of an upload exists already (uploads never overwrite); the message shows no path."""


@contextmanager
def new_directory(out_dir: Path):
    """A temporary folder beside ``out_dir`` that becomes ``out_dir`` only if the block succeeds;
    if it fails, nothing is left, not even the parent folders it had to create."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise AlreadyExists(f"{out_dir.name} already exists; uploads never overwrite")
    created = [parent for parent in [out_dir.parent, *out_dir.parent.parents] if not parent.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        yield tmp
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first; only if still empty (another upload may have used one)
            try:
                folder.rmdir()
            except OSError:
                break
        raise
