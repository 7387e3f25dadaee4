"""One entry for every upload: ``validate_upload`` runs the checks all roles share, then
the checks of the upload's kind, on the bytes in memory.

Guards against: anything being kept or run before every check for its role has passed;
nothing here writes a file.
"""

from __future__ import annotations

from reflect_core.uploads import arrays, curves, films, model_zip, pyreflect
from reflect_core.uploads.common import Accepted, check_basics


def validate_upload(filename: str, data: bytes, role: str, max_bytes: int) -> Accepted:
    """Every check for ``role`` on the bytes in memory; UploadError on the first that fails."""
    suffix = check_basics(filename, data, role, max_bytes)
    parsers = {
        "nr": lambda: arrays.nr_curves(filename, data),
        "sld": lambda: arrays.sld_profiles(filename, data),
        "curve": lambda: curves.measured_curve(filename, data, suffix),
        "film": lambda: films.film_json(filename, data),
        "model": lambda: model_zip.model_zip(filename, data, max_bytes),
        "pyreflect_weights": lambda: pyreflect.pyreflect_weights(filename, data, max_bytes),
        "pyreflect_stats": lambda: pyreflect.pyreflect_stats(filename, data, suffix),
    }
    content, description = parsers[role]()
    return Accepted(role, filename, content, description)
