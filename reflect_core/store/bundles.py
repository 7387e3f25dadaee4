"""Zip archives of run and model directories, built in memory for download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path


def directory_size(path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def zip_directory(path, prefix: str | None = None) -> bytes:
    """Every file under ``path``, stored under ``prefix/`` (default: the folder's name)."""
    path = Path(path)
    prefix = prefix or path.name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                archive.write(file, f"{prefix}/{file.relative_to(path)}")
    return buffer.getvalue()


BUNDLE_RECORD = "record.json"
BUNDLE_FIGURES = "figures.html"
# A record's folder parts: a trained model, its training arrays, an analysis's curve and CSVs.
FOLDER_PARTS = ("model", "data", "results")
FIGURES_ESTIMATE = 4_800_000  # plotly.js is embedded once so the page opens offline


def bundle_parts(record: dict, files_dir: Path | None) -> dict[str, int]:
    """Exportable parts of a record and their sizes in bytes (before compression)."""
    parts = {BUNDLE_RECORD: len(json.dumps(record)), BUNDLE_FIGURES: FIGURES_ESTIMATE}
    if files_dir is not None:
        for name in FOLDER_PARTS:
            if (files_dir / name).is_dir():
                parts[name] = directory_size(files_dir / name)
    return parts


def build_bundle(record: dict, files_dir: Path | None, parts: set[str], figures_html: str | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(BUNDLE_RECORD, json.dumps(record, indent=1))
        if BUNDLE_FIGURES in parts and figures_html:
            archive.writestr(BUNDLE_FIGURES, figures_html)
        for name in FOLDER_PARTS:
            if name in parts and files_dir is not None and (files_dir / name).is_dir():
                for file in sorted((files_dir / name).rglob("*")):
                    if file.is_file():
                        archive.write(file, f"{name}/{file.relative_to(files_dir / name)}")
    return buffer.getvalue()
