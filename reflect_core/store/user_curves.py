"""Each user's measured curves, in their one canonical form (``user_files`` keeps the rest of a
user's uploads, the quota and the names).

A measured curve is ``uploads/<user>/curves/<name>/``: ``curve.csv``, the validated ``Curve`` in
``formats.curves``' canonical form (Q and dQ FWHM in Å⁻¹), which every reader loads
(``load_curve``), and ``original<ext>``, the upload as it came, kept only for download and
provenance. A curve kept before this layout (a plain file in ``curves/``) is moved into one when
the curves are listed, and parsed once with the upload parser when it is first loaded.

A file of several data sets (an ORSO file with spin states or contrasts, at most
``uploads.curves.MAX_DATASETS``) is kept as one curve per data set, ``<stem>-1<ext>``,
``<stem>-2<ext>``, …, whole or not at all; each folder also holds ``dataset.json`` (the data set's
place in the file and its label), and the original is written once and hard-linked into the other
folders where the file system allows (``usage_bytes`` counts a linked file once).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from reflect_core.accounts.access import User
from reflect_core.accounts.limits import Limits
from reflect_core.base.errors import InvalidInput, NotFound, ReflectError
from reflect_core.base.storage import atomic_write_bytes, atomic_write_json, read_bounded
from reflect_core.formats.curves import Curve, CurveError, canonical_text, parse_canonical
from reflect_core.store.history import clean_name
from reflect_core.store.user_files import (
    MAX_ORIGINAL_BYTES,
    STORED_NAME,
    check_quota,
    claim_free_name,
    safe_filename,
    upload_dir,
)
from reflect_core.uploads import validate_upload
from reflect_core.uploads.curves import measured_curve, measured_curves, validate_curves

CURVE_FILE, ORIGINAL_STEM, DATASET_FILE, LABEL_FILE = "curve.csv", "original", "dataset.json", "label.json"


def save_curve(user: User, filename: str, data: bytes, curve: Curve | None = None,
               limits: Limits | None = None) -> str:
    """Keep an accepted measured curve: ``curve`` is what the upload check returned (parsed
    here from ``data`` when not given), written in the canonical form beside the original.
    Returns the name it is kept (and listed, and loaded) under."""
    if curve is None:
        curve = validate_upload(filename, data, "curve", MAX_ORIGINAL_BYTES).content
    canonical = canonical_text(curve).encode()
    if limits is not None:
        check_quota(user, limits, len(data) + len(canonical), filename)
    return _keep_curve(upload_dir(user, "curves"), safe_filename(filename), data, canonical)


def save_curves(user: User, filename: str, data: bytes, found: list[tuple[Curve, str]] | None = None,
                limits: Limits | None = None) -> list[str]:
    """Keep every data set of an accepted measured-curve file as its own curve: ``found`` is what
    ``uploads.curves.validate_curves`` returned (parsed here when not given). One data set is kept as
    ``save_curve`` keeps it; several as ``<stem>-1<ext>``, ``<stem>-2<ext>``, …, all or none.
    Returns the names, in the file's order."""
    if found is None:
        found = validate_curves(filename, data, MAX_ORIGINAL_BYTES).content
    if len(found) == 1:
        return [save_curve(user, filename, data, found[0][0], limits)]
    canonicals = [canonical_text(curve).encode() for curve, _ in found]
    if limits is not None:  # the original is stored once (linked), each data set's canonical form once
        check_quota(user, limits, len(data) + sum(len(c) for c in canonicals), filename)
    folder = upload_dir(user, "curves")
    stem, suffix = os.path.splitext(safe_filename(filename))
    kept: list[str] = []
    try:
        for k, ((_, label), canonical) in enumerate(zip(found, canonicals)):
            info = {"source": filename, "data_set": k, "data_sets": len(found), "label": label}
            original = folder / kept[0] / _original_name(suffix) if kept else data
            kept.append(_keep_curve(folder, f"{stem}-{k + 1}{suffix}", original, canonical, info))
    except BaseException:
        for name in kept:
            shutil.rmtree(folder / name, ignore_errors=True)
        raise
    return kept


def _original_name(suffix: str) -> str:
    return ORIGINAL_STEM + suffix.lower()[:16]


def _keep_curve(folder: Path, name: str, original: bytes | Path, canonical: bytes | None,
                info: dict | None = None) -> str:
    """Build the curve's folder under a temporary name, then give it a free name in one step.
    ``original`` as a path is moved in (a file kept before this layout) or, with ``info`` (another
    data set of one upload), linked (copied where links are not possible); as bytes it is written."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".new-"))
    moved = tmp / _original_name(os.path.splitext(name)[1])
    move = isinstance(original, Path) and info is None
    try:
        if move:
            os.replace(original, moved)  # one process wins a legacy file; the others find it gone
        elif isinstance(original, Path):
            try:
                os.link(original, moved)
            except OSError:
                shutil.copy2(original, moved)  # its time too: the data sets list together
        else:
            atomic_write_bytes(moved, original)
        if canonical is not None:
            atomic_write_bytes(tmp / CURVE_FILE, canonical)
        if info is not None:
            atomic_write_json(tmp / DATASET_FILE, info)
        target = claim_free_name(folder, name, directory=True)
        os.replace(tmp, target)  # onto the empty folder just claimed: atomic
        return target.name
    except BaseException:
        if move and moved.exists():
            os.replace(moved, original)  # never lose a kept file
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _migrate_plain_files(folder: Path) -> None:
    """Curves kept as plain files (before the canonical form) each get their folder; they are
    parsed when first loaded."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        try:
            _keep_curve(folder, safe_filename(path.name), path, None)
        except FileNotFoundError:
            continue  # another process moved it first


def _uploaded_at(folder: Path) -> float:
    originals = sorted(folder.glob(ORIGINAL_STEM + "*"))
    return (originals[0] if originals else folder).stat().st_mtime


def curves(user: User) -> list[str]:
    """The names of the user's measured curves, newest first (the data sets of one file in the file's
    order; unreadable ones included: ``load_curve`` says why)."""
    folder = upload_dir(user, "curves")
    _migrate_plain_files(folder)
    found = []
    for path in folder.iterdir():
        try:
            if STORED_NAME.fullmatch(path.name) and path.is_dir() and any(path.iterdir()):  # empty: being claimed
                found.append((_uploaded_at(path), -(_dataset_info(path) or {}).get("data_set", 0), path.name))
        except OSError:
            continue  # deleted while listing
    return [name for *_, name in sorted(found, reverse=True)]


def _curve_folder(user: User, name: str) -> Path:
    if not isinstance(name, str) or not STORED_NAME.fullmatch(name):
        raise InvalidInput(f"{name!r} is not the name of a stored curve")
    folder = upload_dir(user, "curves") / name
    if not folder.is_dir():
        raise NotFound(f"{user.name} has no measured curve {name!r}")
    return folder


def _dataset_info(folder: Path) -> dict | None:
    """Which data set of its upload a curve is (``dataset.json``), or None for a file of one."""
    try:
        info = json.loads((folder / DATASET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(info, dict) and isinstance(info.get("data_set"), int) and isinstance(info.get("label"), str)
    return info if ok else None


def load_curve(user: User, name: str) -> Curve:
    """A stored measured curve, from its canonical form (Q and dQ FWHM in Å⁻¹, sorted by Q).
    A curve kept before the canonical form is parsed once with the upload parser and its
    canonical form written. CurveError or UploadError (naming the curve) when it cannot be read."""
    folder = _curve_folder(user, name)
    try:
        return parse_canonical((folder / CURVE_FILE).read_bytes(), name)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CurveError(f"{name}: cannot be read ({exc.strerror})") from None
    original = original_file(user, name)
    if original is None:
        raise CurveError(f"{name}: no curve data is stored")
    try:
        data = read_bounded(original, MAX_ORIGINAL_BYTES)
    except OSError as exc:
        raise CurveError(f"{name}: cannot be read ({exc.strerror})") from None
    info = _dataset_info(folder)
    if info is None:
        curve, _ = measured_curve(name, data, original.suffix.lower())
    else:
        found = measured_curves(name, data, original.suffix.lower())
        if not 0 <= info["data_set"] < len(found):
            raise CurveError(f"{name}: its file holds {len(found)} data sets, not data set {info['data_set'] + 1}")
        curve = found[info["data_set"]][0]
    atomic_write_bytes(folder / CURVE_FILE, canonical_text(curve).encode())
    return curve


def curve_label(user: User, name: str) -> str:
    """What the curve is: the label its owner gave it, else its data set's label (sample and data set,
    from the file's header) for one of several data sets of a file, else its name. The stored name
    follows in brackets: it is what the curve is known by (overlays, fits, history)."""
    try:
        folder = _curve_folder(user, name)
    except ReflectError:  # gone or not a stored name: the name itself says what it is
        return str(name)
    given = _given_label(folder)
    info = _dataset_info(folder)
    label = given or (info["label"] if info else None)
    return name if label is None else f"{label} ({name})"


def _given_label(folder: Path) -> str | None:
    try:
        label = json.loads((folder / LABEL_FILE).read_text(encoding="utf-8")).get("label")
    except (OSError, ValueError, AttributeError):
        return None
    return label if isinstance(label, str) and label.strip() else None


def rename_curve(user: User, name: str, label: str) -> str:
    """Give a stored curve a label of its owner's (its stored name stays, so overlays, fits and history
    records that name it still find it); an empty label takes the given one away. The label shown."""
    folder = _curve_folder(user, name)
    if isinstance(label, str) and not label.strip():
        (folder / LABEL_FILE).unlink(missing_ok=True)
    else:
        atomic_write_json(folder / LABEL_FILE, {"label": clean_name(label)})
    return curve_label(user, name)


def original_file(user: User, name: str) -> Path | None:
    """The curve's file as it was uploaded (for download and provenance, never for reading the curve)."""
    originals = sorted(_curve_folder(user, name).glob(ORIGINAL_STEM + "*"))
    return originals[0] if originals else None


def delete_curve(user: User, name: str) -> None:
    shutil.rmtree(_curve_folder(user, name))
