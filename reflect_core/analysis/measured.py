"""Analyses of measured curves: a model's predicted profile, the reflectivity it
implies at the data's own Q points and resolution, how well that matches the data,
and saving all of it as an "analysis" history record."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reflect_core.accounts.access import User, validate_username
from reflect_core.analysis.fit.stats import chi2_reduced
from reflect_core.analysis.prior_check import PriorCheck, check_prior
from reflect_core.base.errors import ReflectError
from reflect_core.base.storage import atomic_write_bytes, data_dir
from reflect_core.formats.curves import (
    Curve,
    CurveError,
    canonical_text,
    csv_text,
    is_canonical,
    parse_canonical,
    parse_curve,
)
from reflect_core.ml.evaluation import LOG_FLOOR, recomputed_nr
from reflect_core.ml.model_store import load_model
from reflect_core.ml.predict import apply_model, curves_on_model_grid
from reflect_core.ml.uncertainty import BandError, band_of
from reflect_core.physics.film import Film
from reflect_core.physics.simulate import CurveSettings, film_reflectivity
from reflect_core.store import history
from reflect_core.store.bundles import FOLDER_PARTS
from reflect_core.uploads.curves import measured_curve

RESULTS = FOLDER_PARTS[2]  # the record's folder part that holds the measured curve and the CSVs
PROFILE_FILE, RECOMPUTED_FILE = "profile.csv", "recomputed.csv"
BAND_COLUMNS = ("lo68", "hi68", "lo95", "hi95")
MEASURED_STEM = "measured"


@dataclass(frozen=True)
class Analysis:
    z: np.ndarray  # Å
    sld: np.ndarray  # 10⁻⁶ Å⁻²
    q: np.ndarray  # the data's Q, Å⁻¹
    r: np.ndarray  # R recomputed from the profile at q
    agreement: dict
    notes: tuple[str, ...] = ()  # how the curve was brought onto the model's Q grid (cropped, padded)
    prior: PriorCheck | None = None  # whether the curve lies among the model's training curves
    band: dict | None = None  # the network's uncertainty band on z: lo68, hi68, lo95, hi95 (ml.uncertainty)


def has_own_resolution(curve: Curve) -> bool:
    """True when the file gives a usable per-point dQ (the instrument's resolution)."""
    return curve.dq is not None and bool(np.all(curve.dq > 0))


def recompute_at_data(z: np.ndarray, sld: np.ndarray, curve: Curve, model_dq: float, beam_from: str) -> np.ndarray:
    """R of a profile at the data's Q points, smeared with the data's own dQ column
    when it has one, else with the model's dQ/Q."""
    own_dq = curve.dq if has_own_resolution(curve) else None
    return recomputed_nr(z, np.asarray(sld)[None], curve.q, model_dq, beam_from, dq_abs=own_dq)[0]


def film_at_data(film: Film, curve: Curve, dq: float, scale: float = 1.0, background: float = 0.0) -> np.ndarray:
    """R of a film at the data's Q points, smeared with the data's own dQ column when it has one,
    else with dQ/Q = ``dq`` (FWHM); the film's own scale and background applied."""
    own_dq = curve.dq if has_own_resolution(curve) else None
    return film_reflectivity(film, curve.q, CurveSettings(dq=dq, scale=scale, background=background), dq_abs=own_dq)


def scale_and_background(r: np.ndarray, r_calc: np.ndarray, dr: np.ndarray) -> tuple[float, float] | None:
    """Weighted least squares of r ≈ scale·r_calc + background (weights 1/dR²), with
    background ≥ 0 (refitted as scale alone when the free fit goes negative); None
    when no positive scale fits. Both are linear, so this is exact, not iterative."""
    w = 1.0 / dr**2
    sw, sc, sr = w.sum(), (w * r_calc).sum(), (w * r).sum()
    scc, scr = (w * r_calc**2).sum(), (w * r_calc * r).sum()
    det = sw * scc - sc**2
    scale, background = ((sw * scr - sc * sr) / det, (scc * sr - sc * scr) / det) if det > 0 else (0.0, -1.0)
    if background < 0:
        scale, background = scr / scc, 0.0
    return (float(scale), float(background)) if scale > 0 else None


def agreement(curve: Curve, r_calc: np.ndarray) -> dict:
    """How far the recomputed curve is from the data.

    Median |Δlog10 R| over points with R > 0 (both floored at 1e-10, as the test
    metrics are), and, when the data has uncertainties, the reduced χ² over points
    with dR > 0: once as computed (a value far above 1 says the profile does not
    explain the data, whatever the network's test score), and once with the best
    scale and background, as refnx and refl1d fit them (the networks never see
    either, so a normalisation error or a flat background alone should not count).
    """
    r = np.asarray(curve.r, dtype=float)
    positive = r > 0
    decades = np.abs(np.log10(np.clip(r_calc[positive], LOG_FLOOR, None))
                     - np.log10(np.clip(r[positive], LOG_FLOOR, None)))
    out = {"points": int(r.size), "points_positive": int(positive.sum()),
           "median_decades": float(np.median(decades)) if decades.size else None, "chi2_reduced": None,
           "scale": None, "background": None, "chi2_reduced_scaled": None}
    if curve.dr is not None:
        used = curve.dr > 0
        r, r_calc, dr = r[used], r_calc[used], curve.dr[used]
        out["points_with_dr"] = int(used.sum())
        out["chi2_reduced"] = chi2_reduced(r, r_calc, dr, 0)  # a plain prediction: p = 0
        fitted = scale_and_background(r, r_calc, dr) if r.size > 2 else None
        if fitted is not None:
            scale, background = fitted
            out.update(scale=scale, background=background,
                       chi2_reduced_scaled=chi2_reduced(r, scale * r_calc + background, dr, 2))
    return out


def analyse(z: np.ndarray, sld: np.ndarray, curve: Curve, model_dq: float, beam_from: str = "ambient") -> Analysis:
    curve = curve.sorted()
    if curve.r is None:
        raise CurveError("this curve holds only Q values: an analysis needs R")
    r_calc = recompute_at_data(z, sld, curve, model_dq, beam_from)
    return Analysis(np.asarray(z, float), np.asarray(sld, float), curve.q, r_calc, agreement(curve, r_calc))


def analyse_with_model(model_dir, curve: Curve) -> Analysis:
    """The model's profile for a measured curve (resampled onto its Q grid, with what was
    cropped or padded said in ``notes``) and how well that profile explains the data."""
    curve = curve.sorted()
    if curve.r is None:
        raise CurveError("this curve holds only Q values: an analysis needs R")
    model, meta = load_model(model_dir)
    matched = curves_on_model_grid(np.stack([np.stack([curve.q, curve.r])]), meta.q, meta.dq, resample=True)
    sld = apply_model(model, meta, matched.r)[0]
    try:
        stored = band_of(meta.metrics, meta.z.size)
    except BandError:  # a damaged band in model.json: the profile still stands (pages say why it has none)
        stored = None
    band = None if stored is None else stored.bounds(sld[1])
    return replace(analyse(sld[0], sld[1], curve, meta.dq, meta.beam_from), notes=matched.notes,
                   prior=check_prior(model_dir, matched.r[0]), band=band)


def profile_csv(analysis: Analysis) -> str:
    """z and the predicted SLD, with the network's uncertainty band beside them when it has one."""
    columns, values = ["z (Å)", "SLD (1e-6 Å^-2)"], [analysis.z, analysis.sld]
    if analysis.band is not None:
        columns += [f"{key} (1e-6 Å^-2)" for key in BAND_COLUMNS]
        values += [analysis.band[key] for key in BAND_COLUMNS]
    return csv_text(columns, values)


def save_analysis(user: User, name: str, analysis: Analysis, measured_name: str, measured: Curve,
                  model_record: dict) -> dict:
    """Keep the measured curve (in the canonical form, as ``measured.csv``), the predicted
    profile and the recomputed curve, and add an "analysis" record pointing at them
    (deleting the record deletes them)."""
    relative = f"history/analyses/{validate_username(user.name)}/{secrets.token_hex(6)}"
    folder = data_dir() / relative / RESULTS
    folder.mkdir(parents=True)
    atomic_write_bytes(folder / f"{MEASURED_STEM}.csv", canonical_text(measured.sorted()).encode())
    atomic_write_bytes(folder / PROFILE_FILE, profile_csv(analysis).encode())
    atomic_write_bytes(folder / RECOMPUTED_FILE,
                       csv_text(["Q (Å^-1)", "R recomputed"], [analysis.q, analysis.r]).encode())
    params = {"model_record": model_record["id"], "model_name": model_record["name"], "curve": measured_name}
    summary = {"agreement": analysis.agreement}
    if analysis.prior is not None and analysis.prior.outside_fraction is not None:
        summary["prior_outside_fraction"] = analysis.prior.outside_fraction
    return history.add(user, "analysis", name, params, summary, files=relative)


def load_saved(files_dir: Path) -> tuple[Curve, Analysis] | None:
    """The measured curve and the analysis kept in a record's folder, or None when the
    folder is missing or its files do not parse (an edited or partial import)."""
    folder = Path(files_dir) / RESULTS
    measured = sorted(folder.glob(f"{MEASURED_STEM}.*"))
    try:
        curve = _saved_curve(measured[0])
        profile = np.loadtxt(folder / PROFILE_FILE, delimiter=",", skiprows=1, ndmin=2)
        recomputed = np.loadtxt(folder / RECOMPUTED_FILE, delimiter=",", skiprows=1, ndmin=2)
    except (IndexError, OSError, ValueError, ReflectError):
        return None
    if (profile.shape[1] not in (2, 2 + len(BAND_COLUMNS)) or recomputed.shape != (curve.q.size, 2)
            or curve.r is None or not np.allclose(recomputed[:, 0], curve.q, rtol=1e-8)):
        return None
    band = dict(zip(BAND_COLUMNS, profile[:, 2:].T)) if profile.shape[1] > 2 else None
    return curve, Analysis(profile[:, 0], profile[:, 1], recomputed[:, 0], recomputed[:, 1],
                           agreement(curve, recomputed[:, 1]), band=band)


def _saved_curve(path: Path) -> Curve:
    """The canonical form; a record saved before it keeps the original upload, read with the upload parser."""
    raw = path.read_bytes()
    if is_canonical(raw):
        return parse_canonical(raw, path.name).sorted()
    if path.suffix.lower() == ".ort":
        return measured_curve(path.name, raw, ".ort")[0]
    return parse_curve(raw, path.name).sorted()
