"""Measured curves: text columns (.txt, .dat, .csv) and ORSO files (.ort).

Guards against: files that are not UTF-8 text, ORSO headers read any way but
``yaml.safe_load`` (through orsopy), several data sets in one file, columns other than
Qz and R first, unknown Q units, NaN or infinite values, Q ≤ 0, negative resolutions,
curves with fewer than 2 points or no R, and Q in nm⁻¹; ORSO's 1-sigma resolutions are
turned into the FWHM the rest of the app uses.
"""

from __future__ import annotations

import io
import math

import numpy as np

from reflect_core.formats.curves import Curve, CurveError, parse_curve
from reflect_core.uploads.common import UploadError, check_q_units, error, short

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
ORSO_Q_UNITS = {"1/angstrom": 1.0, "1/nm": 0.1}  # factor to Å⁻¹


def measured_curve(filename: str, data: bytes, suffix: str) -> tuple[Curve, str]:
    """A measured curve, sorted by Q: (curve, description)."""
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often start CSV files with a byte-order mark
    except UnicodeDecodeError:
        raise error(filename, "not a text file (it is not UTF-8)") from None
    curve = _orso_curve(filename, text) if suffix == ".ort" else _text_curve(filename, text)
    if curve.r is None:
        raise error(filename, "has only a Q column; a measured curve needs Q and R (optionally dR and dQ)")
    if curve.q.size < 2:
        raise error(filename, f"has {curve.q.size} data point; a curve needs at least 2")
    check_q_units(filename, curve.q)
    extras = [name for name, column in (("dR", curve.dr), ("dQ", curve.dq)) if column is not None]
    return curve.sorted(), (f"measured curve: {curve.q.size} points, Q {curve.q.min():.4g}–{curve.q.max():.4g} Å⁻¹"
                            + (f", with {' and '.join(extras)}" if extras else ""))


def _text_curve(filename: str, text: str) -> Curve:
    try:
        return parse_curve(text, filename)
    except CurveError as exc:
        raise UploadError(str(exc)) from None  # parse_curve's message already names the file


def _orso_curve(filename: str, text: str) -> Curve:
    """The first four ORSO columns (Qz, R, sR, sQz), with Qz in Å⁻¹ and sQz as FWHM."""
    try:
        from orsopy.fileio import orso
    except ImportError:
        raise error(filename, "reading ORSO .ort files needs orsopy, which is not installed") from None
    try:
        datasets = orso.load_orso(io.StringIO(text))  # YAML header through yaml.safe_load
    except Exception as exc:  # noqa: BLE001 - orsopy raises many kinds on malformed files; each means unreadable
        raise error(filename, f"not a readable ORSO file ({short(exc)})") from None
    if len(datasets) != 1:
        raise error(filename, f"holds {len(datasets)} data sets (e.g. spin states); upload one per file")
    columns, table = datasets[0].info.columns, np.asarray(datasets[0].data, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] < 2 or len(columns) < 2:
        raise error(filename, "has no data rows with Qz and R")
    if (columns[0].name, columns[1].name) != ("Qz", "R"):
        raise error(filename, f"its first columns must be Qz and R (ORSO standard), got "
                              f"{columns[0].name} and {columns[1].name}")
    unit = getattr(columns[0], "unit", None)
    if unit not in ORSO_Q_UNITS:
        raise error(filename, f"its Qz column is in {unit!r}; expected one of {', '.join(ORSO_Q_UNITS)}")
    table = table[:, :min(4, table.shape[1], len(columns))]
    if not np.all(np.isfinite(table)):
        raise error(filename, "contains NaN or infinite values")
    q = table[:, 0] * ORSO_Q_UNITS[unit]
    if np.any(q <= 0):
        raise error(filename, f"Qz must be > 0; {int(np.sum(q <= 0))} rows have Qz ≤ 0")
    dr = table[:, 2] if table.shape[1] > 2 else None
    dq = _orso_fwhm(filename, columns[3], table[:, 3] * ORSO_Q_UNITS[unit]) if table.shape[1] > 3 else None
    return Curve(q=q, r=table[:, 1], dr=dr, dq=dq)


def _orso_fwhm(filename: str, column, values: np.ndarray) -> np.ndarray:
    """ORSO resolution columns are 1-sigma unless they say FWHM; ours are FWHM."""
    if np.any(values < 0):
        raise error(filename, "its sQz (resolution) column has negative values")
    return values if getattr(column, "value_is", None) == "FWHM" else values * FWHM_PER_SIGMA
