"""Reading measured curves and Q lists from text files.

Format (DESIGN.md): ``#`` comments, whitespace- or comma-separated columns, and at
most one line of column names before the data (the CSVs this app writes have one);
1 column = Q; 2–3 = Q, R[, dR]; 4 = Q, R, dR, dQ (FWHM, Å⁻¹). Q in Å⁻¹. A UTF-8
byte-order mark (spreadsheets write one) is read past.

The canonical form (``canonical_text`` / ``parse_canonical``) is the one the app writes
for a curve it has validated: a marker line, then named columns ``Q,R[,dR][,dQ_FWHM]``
in Å⁻¹ (dQ as FWHM), numbers to full double precision. Every stored curve is read back
from it, never re-parsed from the original upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from reflect_core.base.errors import InvalidInput
from reflect_core.base.storage import read_bounded

MAX_CURVE_BYTES = 20_000_000
ORSO_MAGIC = "# # ORSO"  # the first line of every ORSO text file


class CurveError(InvalidInput):
    """A curve file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Curve:
    q: np.ndarray
    r: np.ndarray | None = None
    dr: np.ndarray | None = None
    dq: np.ndarray | None = None  # FWHM, Å⁻¹

    def sorted(self) -> "Curve":
        order = np.argsort(self.q, kind="stable")
        pick = lambda a: None if a is None else a[order]  # noqa: E731
        return Curve(self.q[order], pick(self.r), pick(self.dr), pick(self.dq))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_curve(raw: bytes | str, name: str = "curve") -> Curve:
    if len(raw) > MAX_CURVE_BYTES:
        raise CurveError(f"{name}: {len(raw):,} bytes is over the {MAX_CURVE_BYTES:,}-byte limit")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")  # a byte-order mark before the data is not part of it
        except UnicodeDecodeError:
            raise CurveError(f"{name}: not a text file (it is not UTF-8)") from None
    raw = raw.removeprefix("\ufeff")
    if raw[:100].lstrip().startswith(ORSO_MAGIC):
        raise CurveError(f"{name}: an ORSO file, whose units and resolution kind are in its header: give it the .ort "
                         f"extension and upload it, so that they are read (as plain columns Q could be in 1/nm and "
                         f"dQ a 1-sigma width)")
    rows, header_seen = [], False
    for number, line in enumerate(io.StringIO(raw), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.replace(",", " ").split()
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            if not rows and not header_seen and not any(_is_number(f) for f in fields):
                header_seen = True  # one column-name line, as spreadsheets and our own CSVs write
                continue
            raise CurveError(f"{name}, line {number}: not numbers: {text[:60]!r}") from None
        if len(rows[-1]) != len(rows[0]):
            raise CurveError(
                f"{name}, line {number}: {len(rows[-1])} columns, but the first data line has {len(rows[0])}"
            )
    if not rows:
        raise CurveError(f"{name}: no data lines")
    data = np.array(rows)
    n_cols = data.shape[1]
    if n_cols > 4:
        raise CurveError(f"{name}: {n_cols} columns; expected 1 to 4 (Q, R, dR, dQ)")
    if not np.all(np.isfinite(data)):
        bad = int(np.argmax(~np.all(np.isfinite(data), axis=1)))
        raise CurveError(f"{name}: non-finite value (NaN or inf) in data row {bad + 1}")
    q = data[:, 0]
    if np.any(q <= 0):
        raise CurveError(f"{name}: Q must be > 0 Å⁻¹; {int(np.sum(q <= 0))} rows have Q ≤ 0")
    for k, label in ((2, "dR (an uncertainty)"), (3, "dQ (FWHM)")):
        if n_cols > k and np.any(data[:, k] < 0):
            raise CurveError(f"{name}: {label} must be ≥ 0; {int(np.sum(data[:, k] < 0))} rows are negative")
    column = lambda k: data[:, k] if n_cols > k else None  # noqa: E731
    return Curve(q=q, r=column(1), dr=column(2), dq=column(3))


def read_curve(path) -> Curve:
    try:
        raw = read_bounded(path, MAX_CURVE_BYTES)
    except OSError as exc:
        raise CurveError(f"cannot read {path}: {exc.strerror}") from None
    return parse_curve(raw, str(path))


CANONICAL_MARK = "# reflect_core curve v1: Q and dQ_FWHM in 1/angstrom, dQ as FWHM"
CANONICAL_COLUMNS = ("Q", "R", "dR", "dQ_FWHM")


def canonical_text(curve: Curve) -> str:
    """A validated curve in the app's own stored form (see the module's docstring)."""
    named = [(n, a) for n, a in zip(CANONICAL_COLUMNS, (curve.q, curve.r, curve.dr, curve.dq)) if a is not None]
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([np.asarray(a, float) for _, a in named]), delimiter=",", fmt="%.17g",
               header=CANONICAL_MARK + "\n" + ",".join(n for n, _ in named), comments="")
    return buffer.getvalue()


def is_canonical(raw: bytes | str) -> bool:
    head = raw[:len(CANONICAL_MARK) + 1]
    return (head.decode("utf-8", "replace") if isinstance(head, bytes) else head).startswith(CANONICAL_MARK)


def parse_canonical(raw: bytes | str, name: str = "curve") -> Curve:
    """A curve the app wrote with ``canonical_text``; CurveError (naming ``name``) when it is damaged."""
    def damaged(reason: str) -> CurveError:
        return CurveError(f"{name}: the stored curve is damaged ({reason})")

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise damaged("not UTF-8") from None
    lines = text.splitlines()
    if len(lines) < 2 or lines[0] != CANONICAL_MARK:
        raise damaged("no marker line")
    names = lines[1].split(",")
    if names[:2] != ["Q", "R"] or len(set(names)) != len(names) or not set(names) <= set(CANONICAL_COLUMNS):
        raise damaged(f"unexpected columns {lines[1][:60]!r}")
    try:
        data = np.loadtxt(io.StringIO("\n".join(lines[2:])), delimiter=",", ndmin=2)
    except ValueError as exc:
        raise damaged(str(exc)[:80]) from None
    if data.shape[0] < 2 or data.shape[1] != len(names):
        raise damaged(f"{data.shape[0]} rows of {data.shape[1]} columns, expected at least 2 of {len(names)}")
    if not np.all(np.isfinite(data)) or np.any(data[:, 0] <= 0):
        raise damaged("non-finite values or Q ≤ 0")
    columns = {n: data[:, k].copy() for k, n in enumerate(names)}
    if "dQ_FWHM" in columns and np.any(columns["dQ_FWHM"] < 0):
        raise damaged("negative dQ")
    return Curve(columns["Q"], columns["R"], columns.get("dR"), columns.get("dQ_FWHM"))


def matching_grid(curve: Curve) -> dict:
    """Synthetic-data Q settings that cover a measured curve without leaving it: its Q
    range, as many log-spaced points as it has distinct Q values, and its median dQ/Q
    when it has a dQ column (None otherwise), so a model trained on them can read it."""
    q = np.unique(curve.q)
    dq = None
    if curve.dq is not None and np.any(curve.dq > 0):
        dq = float(np.median(curve.dq[curve.dq > 0] / curve.q[curve.dq > 0]))
    return {"qmin": float(q[0]), "qmax": float(q[-1]), "nq": int(max(q.size, 2)), "dq": dq}


FLOOR_FRACTION = 0.1  # the highest-Q tenth of a curve (at least 5 points) is its background floor


def noise_level(curve: Curve) -> dict | None:
    """The counting level and background of a measured curve, for synthetic data like it (None without
    dR). Counting statistics give dR² = (R + b)/N₀ for N₀ counts at R = 1, so N₀ ≈ median(R/dR²) over
    the points with R, dR > 0 (one number: real data mix angles of different intensity, whose spread
    the caller may show); the background b is the median R of the highest-Q tenth, the floor a
    reflectivity curve falls onto, 0 when that is not positive (over-subtracted data). Both come with
    their spread (10th to 90th percentile, the background's clipped at 0), for training over it."""
    if curve.dr is None or curve.r is None:
        return None
    curve = curve.sorted()
    usable = (curve.r > 0) & (curve.dr > 0)
    if usable.sum() < 5:
        return None
    counts = curve.r[usable] / curve.dr[usable] ** 2
    tail = curve.r[-max(5, int(FLOOR_FRACTION * curve.r.size)):]
    return {"counts_at_unity": float(np.median(counts)), "counts_spread": (float(np.percentile(counts, 10)),
                                                                           float(np.percentile(counts, 90))),
            "background": max(float(np.median(tail)), 0.0),
            "background_spread": (max(float(np.percentile(tail, 10)), 0.0), max(float(np.percentile(tail, 90)), 0.0))}


def q_grid(qmin: float, qmax: float, n: int, spacing: str = "log") -> np.ndarray:
    """Q values in Å⁻¹; the default synthetic grid is pyreflect's (``physics.simulate.PYREFLECT_Q*``)."""
    if not (np.isfinite(qmin) and np.isfinite(qmax)) or qmin <= 0 or qmax <= qmin:
        raise InvalidInput(f"need 0 < Q min < Q max, got Q min {qmin:g}, Q max {qmax:g} Å⁻¹")
    if int(n) < 2:
        raise InvalidInput(f"need at least 2 Q points, got {n}")
    if spacing == "log":
        return np.geomspace(qmin, qmax, int(n))
    if spacing == "linear":
        return np.linspace(qmin, qmax, int(n))
    raise InvalidInput(f"spacing must be 'log' or 'linear', got {spacing!r}")


def csv_text(header: list[str], columns: list[np.ndarray], comments: list[str] = ()) -> str:
    """Plain comma-separated columns with one header line, readable by any spreadsheet; ``comments``
    go first as ``#`` lines (what the data is: units, resolution, the film), which readers skip."""
    buffer = io.StringIO()
    # A comment may hold a user's text (a film's name): a line break in it would start a data line.
    buffer.writelines("# " + " ".join(str(line).splitlines()) + "\n" for line in comments)
    table = np.column_stack(columns)
    np.savetxt(buffer, table, delimiter=",", header=",".join(header), comments="", fmt="%.10g")
    return buffer.getvalue()
