"""Zip archives of run and model directories, built in memory for download."""

from __future__ import annotations

import io
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
