"""pyreflect's pickled normalisation stats (``np.save(path, stats_dict, allow_pickle=True)``)
read as JSON numbers, in a child process and nowhere else.

Never imported: the command line runs this file as a script, ``python -I -S pyreflect_pickle.py
MEMORY_BYTES CPU_SECONDS < stats.npy > stats.json`` (``uploads.pickled_stats`` starts it and
words what comes back). It is the only code in the project that unpickles, so it is built to
fail safely three times over:

* it uses the standard library only (no numpy: nothing in C sees the file's values except
  CPython's own unpickler). The globals a numpy pickle names are stand-ins written here:
  ``numpy.dtype`` records its spec and byte order, ``_reconstruct`` gives an empty holder that
  keeps the one object of a 0-d object array, ``scalar`` decodes its bytes with ``struct``,
  ``_codecs.encode`` turns protocol 2's latin-1 text back into bytes; any other global is refused;
* before it reads a byte of input it limits itself (``resource.setrlimit``): address space,
  CPU seconds, no files opened or written, no processes started, no core dump;
* the parent waits a bounded time and treats a crash, a kill or a timeout as a refusal.

Output, on stdout: ``{"stats": {...plain numbers...}}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import ast
import io
import json
import math
import pickle
import resource
import struct
import sys

MAGIC = b"\x93NUMPY"
MAX_INPUT = 10_000_000
MAX_HEADER = 10_000
MAX_DEPTH = 16  # pyreflect's stats nest 3 levels
NUMBER_SPECS = {"f2": "e", "f4": "f", "f8": "d", "i4": "i", "i8": "q", "u4": "I", "u8": "Q"}
OBJECT_SPECS = {"O8", "O4"}
BYTE_ORDERS = {"<": "<", ">": ">", "|": "<", "=": "="}


class Refused(Exception):
    """The file is not pyreflect's stats, or asks for something they never need."""


def limit_resources(memory_bytes: int, cpu_seconds: int) -> None:
    """From here on: ``memory_bytes`` of address space, ``cpu_seconds`` of CPU, no byte written to
    a file, no file opened beyond stdin, stdout and stderr, no process started (where the user is
    not root), no core dump."""
    for limit, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_NOFILE, 3), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, 0)):
        resource.setrlimit(limit, (value, value))


# --- stand-ins for the numpy globals a stats pickle names ------------------------------------------------------------


class Dtype:
    """``numpy.dtype(spec, align, copy)`` and its ``__setstate__``, as data."""

    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or spec not in NUMBER_SPECS.keys() | OBJECT_SPECS:
            raise Refused(f"numpy.dtype({str(spec)[:20]!r})")
        self.spec, self.order = spec, None

    def __setstate__(self, state):
        # numpy writes (version, byte order, subarray, names, fields, item size, alignment, flags[, metadata])
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4)
                or state[1] not in BYTE_ORDERS or state[2:5] != (None, None, None) or state[5:7] != (-1, -1)
                or (len(state) == 9 and state[8] is not None)):
            raise Refused(f"a numpy.dtype({self.spec!r}) with unusual fields")
        self.order = BYTE_ORDERS[state[1]]


class Holder:
    """What ``_reconstruct(ndarray, (0,), b'b')`` gives: filled by BUILD with one pickled object."""

    def __setstate__(self, state):
        if (not isinstance(state, tuple) or len(state) != 5 or state[0] != 1 or state[1] != ()
                or not isinstance(state[2], Dtype) or state[2].spec not in OBJECT_SPECS
                or not isinstance(state[4], list) or len(state[4]) != 1):
            raise Refused("a numpy array other than one 0-d object array")
        self.item = state[4][0]


NDARRAY = object()  # numpy.ndarray as a pickle names it


def reconstruct(subtype, shape, typecode):
    if subtype is not NDARRAY or shape != (0,) or typecode != b"b":
        raise Refused("numpy _reconstruct with unusual arguments")
    return Holder()


def scalar(dtype, raw):
    if (not isinstance(dtype, Dtype) or dtype.spec not in NUMBER_SPECS or dtype.order is None
            or not isinstance(raw, bytes) or len(raw) != struct.calcsize(NUMBER_SPECS[dtype.spec])):
        raise Refused("a numpy scalar that is not a plain number")
    return struct.unpack(dtype.order + NUMBER_SPECS[dtype.spec], raw)[0]


def latin1(text, encoding):
    """``_codecs.encode(text, 'latin1')``: how pickle protocol 2 writes bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode with unusual arguments")
    return text.encode("latin1")


GLOBALS = {("numpy", "dtype"): Dtype, ("numpy", "ndarray"): NDARRAY, ("_codecs", "encode"): latin1}
for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    GLOBALS[module, "_reconstruct"] = reconstruct
    GLOBALS[module, "scalar"] = scalar


class StatsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return GLOBALS[(module, name)]
        except KeyError:
            raise Refused(f"{str(module)[:60]}.{str(name)[:60]}") from None


# --- the file ------------------------------------------------------------------------------------------------------


def pickle_bytes(data: bytes) -> bytes:
    """The pickle after an .npy header that declares one Python object ('|O', shape ())."""
    if not data.startswith(MAGIC) or len(data) < 10:
        raise Refused("not a .npy file (it does not start with NumPy's header)")
    length_bytes = {1: 2, 2: 4, 3: 4}.get(data[6])
    if length_bytes is None:
        raise Refused(f"unsupported .npy format version {data[6]}")
    size = int.from_bytes(data[8:8 + length_bytes], "little")
    if size > MAX_HEADER:
        raise Refused(f"its .npy header claims {size:,} bytes")
    start = 8 + length_bytes
    try:
        header = ast.literal_eval(data[start:start + size].decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise Refused("its .npy header is unreadable") from None
    if not isinstance(header, dict) or header.get("descr") != "|O" or header.get("shape") != ():
        raise Refused(f"not a pickled dict: it holds an array ({str(header)[:80]})")
    return data[start + size:]


def plain(value, depth: int = 0):
    """The unpickled value as JSON: dicts of text keys and finite numbers."""
    if depth > MAX_DEPTH:
        raise Refused("nested too deeply")
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Refused("a dict with keys that are not text")
        return {key: plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise Refused("a value that is not a finite number")
        return number
    raise Refused(f"a {type(value).__name__} where only dicts and numbers belong")


def read_stats(data: bytes) -> dict:
    holder = StatsUnpickler(io.BytesIO(pickle_bytes(data))).load()
    if not isinstance(holder, Holder):
        raise Refused("the pickle does not hold a numpy object array")
    return plain(holder.item)


def main(argv: list[str]) -> int:
    limit_resources(int(argv[1]), int(argv[2]))
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    try:
        if len(data) > MAX_INPUT:
            raise Refused(f"over {MAX_INPUT:,} bytes")
        result = {"stats": read_stats(data)}
    except Refused as exc:
        result = {"error": f"refused: {exc}"}
    except MemoryError:
        result = {"error": "its pickle needs more memory than the reader allows"}
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways; each means unreadable
        result = {"error": f"its pickle is unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
