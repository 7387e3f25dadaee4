"""Measured curves: text columns (.txt, .dat, .csv) and ORSO files (.ort).

Guards against: files that are not UTF-8 text, ORSO headers read any way but
``yaml.safe_load`` (through orsopy), more than ``MAX_DATASETS`` data sets in one file (and, for
``measured_curve``, more than one), columns other than Qz and R first, unknown Q units, NaN or
infinite values, Q ≤ 0, negative resolutions, curves with fewer than 2 points or no R, Q in
nm⁻¹, and R in %, counts or log10 R.

The ``Curve`` returned is the one the app keeps (``store.user_files`` writes it in the
canonical form and never re-reads the upload): Q in Å⁻¹, dQ as FWHM in Å⁻¹, dR as 1σ.
ORSO's Qz in 1/nm is converted, its extra columns are ignored, and its 1-sigma
resolutions are turned into FWHM, for each of its data sets (``measured_curves``: each with
a label from its header). Repeated Q values are kept: reduced data from overlapping angle
segments has them.
"""

from __future__ import annotations

import io
import math
from pathlib import PurePosixPath

import numpy as np

from reflect_core.formats.curves import Curve, CurveError, parse_curve
from reflect_core.uploads.common import Accepted, UploadError, check_basics, check_q_units, error, short

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
ORSO_Q_UNITS = {"1/angstrom": 1.0, "1/nm": 0.1}  # factor to Å⁻¹
R_MAX_PLAUSIBLE = 2.0  # R is 1 at total reflection; far above means % or counts
R_PERCENT_MAX = 150.0  # up to about 100 (plus noise) looks like %, beyond that like counts
LOG_R_MIN = -20.0  # log10 R of real data lies between about -10 and 0; ln R down to about -25
MAX_DATASETS = 20  # ORSO data sets kept from one file (spin states, contrasts, temperatures); each is a stored curve
MAX_LABEL_CHARS = 80


def r_units_problem(r: np.ndarray, negatives_allowed: bool) -> str | None:
    """Why R does not look like a linear reflectivity (a fraction, 1 at total reflection), or None.

    Measured R may dip a little below 0 where a background was subtracted
    (``negatives_allowed``), but not at most points; synthetic R never does."""
    r = np.asarray(r, dtype=float)
    negative = int(np.sum(r < 0))
    if negative and (not negatives_allowed or negative > r.size / 2 or not np.any(r > 0)):
        looks = ("it looks like log10 R" if np.min(r) >= LOG_R_MIN and np.max(r) <= 0.5
                 else "linear R is not negative at most points")
        return (f"R is negative at {negative:,} of {r.size:,} points (from {np.min(r):.4g} to {np.max(r):.4g}): "
                f"{looks}; expected linear reflectivity (not log10 R)")
    if not np.any(r > 0):
        return "R has no positive value; expected linear reflectivity"
    top = float(np.max(r))
    if top > R_MAX_PLAUSIBLE:
        looks = "R in %" if top <= R_PERCENT_MAX else "counts"
        return (f"R goes up to {top:.4g}, which looks like {looks}; expected reflectivity as a fraction "
                f"(1 at total reflection), not % or counts")
    return None


def measured_curve(filename: str, data: bytes, suffix: str) -> tuple[Curve, str]:
    """A measured curve, sorted by Q: (curve, description). An ORSO file must hold one data set."""
    text = _decoded(filename, data)
    if suffix != ".ort":
        curve = _checked(filename, _text_curve(filename, text))
    else:
        datasets = _orso_datasets(filename, text)
        if len(datasets) != 1:
            raise error(filename, f"holds {len(datasets)} data sets (e.g. spin states); upload one per file")
        curve = _checked(filename, _orso_curve(filename, datasets[0]))
    return curve, _description(curve)


def measured_curves(filename: str, data: bytes, suffix: str) -> list[tuple[Curve, str]]:
    """Every data set of a measured-curve file, each checked and sorted as ``measured_curve`` does:
    (curve, label). A text file holds one (labelled by the file's stem); an ORSO file 1 to
    ``MAX_DATASETS``, each labelled from its header (sample name and data set). A refusal names
    the file and, when it holds several, the data set."""
    text = _decoded(filename, data)
    stem = PurePosixPath(filename.replace("\\", "/")).stem or "curve"
    if suffix != ".ort":
        return [(_checked(filename, _text_curve(filename, text)), stem[:MAX_LABEL_CHARS])]
    datasets = _orso_datasets(filename, text)
    if not datasets or len(datasets) > MAX_DATASETS:
        raise error(filename, f"holds {len(datasets)} data sets; 1 to {MAX_DATASETS} can be kept from one file")
    found = []
    for k, dataset in enumerate(datasets):
        where = filename if len(datasets) == 1 else f"{filename} (data set {k + 1} of {len(datasets)})"
        found.append((_checked(where, _orso_curve(where, dataset)), _orso_label(dataset, k, len(datasets), stem)))
    return found


def validate_curves(filename: str, data: bytes, max_bytes: int) -> Accepted:
    """``validate_upload(..., "curve", ...)`` for a file of one or several data sets: the same basic checks,
    then ``measured_curves``; ``content`` is the list of (curve, label)."""
    found = measured_curves(filename, data, check_basics(filename, data, "curve", max_bytes))
    if len(found) == 1:
        return Accepted("curve", filename, found, _description(found[0][0]))
    parts = "; ".join(f"{label}: {_description(curve).removeprefix('measured curve: ')}" for curve, label in found)
    return Accepted("curve", filename, found, f"{len(found)} measured curves (one per data set): {parts}")


def _decoded(filename: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # spreadsheets often start CSV files with a byte-order mark
    except UnicodeDecodeError:
        raise error(filename, "not a text file (it is not UTF-8)") from None


def _checked(filename: str, curve: Curve) -> Curve:
    """The checks every measured curve passes, whatever its format; the curve sorted by Q."""
    if curve.r is None:
        raise error(filename, "has only a Q column; a measured curve needs Q and R (optionally dR and dQ)")
    if curve.q.size < 2:
        raise error(filename, f"has {curve.q.size} data point; a curve needs at least 2")
    check_q_units(filename, curve.q)
    if problem := r_units_problem(curve.r, negatives_allowed=True):
        raise error(filename, problem)
    return curve.sorted()


def _description(curve: Curve) -> str:
    extras = [name for name, column in (("dR", curve.dr), ("dQ", curve.dq)) if column is not None]
    return (f"measured curve: {curve.q.size} points, Q {curve.q.min():.4g}–{curve.q.max():.4g} Å⁻¹"
            + (f", with {' and '.join(extras)}" if extras else ""))


def _text_curve(filename: str, text: str) -> Curve:
    try:
        return parse_curve(text, filename)
    except CurveError as exc:
        raise UploadError(str(exc)) from None  # parse_curve's message already names the file


def _orso_datasets(filename: str, text: str) -> list:
    try:
        from orsopy.fileio import orso
    except ImportError:
        raise error(filename, "reading ORSO .ort files needs orsopy, which is not installed") from None
    try:
        return orso.load_orso(io.StringIO(text))  # YAML header through yaml.safe_load
    except Exception as exc:  # noqa: BLE001 - orsopy raises many kinds on malformed files; each means unreadable
        raise error(filename, f"not a readable ORSO file ({short(exc)})") from None


def _orso_label(dataset, k: int, count: int, stem: str) -> str:
    """The sample's name (else the file's stem), and for a file of several data sets the data set's
    name or number from the header (else its place in the file)."""
    sample = getattr(getattr(getattr(dataset.info, "data_source", None), "sample", None), "name", None)
    label = " ".join(str(sample).split()) if sample not in (None, "") else stem
    if count > 1:
        named = getattr(dataset.info, "data_set", None)
        label += f" [{' '.join(str(named).split()) if named not in (None, '') else k + 1}]"
    return label[:MAX_LABEL_CHARS]


def _orso_curve(filename: str, dataset) -> Curve:
    """Qz, R and, found by name, sR and sQz (any further columns are ignored), with Qz in Å⁻¹,
    sQz as FWHM and sR as 1σ."""
    columns, table = dataset.info.columns, np.asarray(dataset.data, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] < 2 or len(columns) < 2:
        raise error(filename, "has no data rows with Qz and R")
    names = [getattr(column, "name", None) for column in columns[:table.shape[1]]]
    if names[:2] != ["Qz", "R"]:
        raise error(filename, f"its first columns must be Qz and R (ORSO standard), got {names[0]} and {names[1]}")
    unit = getattr(columns[0], "unit", None)
    if unit not in ORSO_Q_UNITS:
        raise error(filename, f"its Qz column is in {unit!r}; expected one of {', '.join(ORSO_Q_UNITS)}")
    used = {name: k for k, name in reversed(list(enumerate(names))) if name in ("Qz", "R", "sR", "sQz")}
    if not np.all(np.isfinite(table[:, list(used.values())])):
        raise error(filename, "contains NaN or infinite values")
    q = table[:, 0] * ORSO_Q_UNITS[unit]
    if np.any(q <= 0):
        raise error(filename, f"Qz must be > 0; {int(np.sum(q <= 0))} rows have Qz ≤ 0")
    dr = dq = None
    if "sR" in used:
        column = columns[used["sR"]]
        dr = table[:, used["sR"]] / (FWHM_PER_SIGMA if getattr(column, "value_is", None) == "FWHM" else 1.0)
    if "sQz" in used:
        dq = _orso_fwhm(filename, columns[used["sQz"]], table[:, used["sQz"]] * ORSO_Q_UNITS[unit])
    return Curve(q=q, r=table[:, 1].copy(), dr=dr, dq=dq)


def _orso_fwhm(filename: str, column, values: np.ndarray) -> np.ndarray:
    """ORSO resolution columns are 1-sigma unless they say FWHM; ours are FWHM."""
    if np.any(values < 0):
        raise error(filename, "its sQz (resolution) column has negative values")
    return values if getattr(column, "value_is", None) == "FWHM" else values * FWHM_PER_SIGMA
