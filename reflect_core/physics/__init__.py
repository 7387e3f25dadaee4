"""Neutron reflectometry physics: films, the Parratt kernel, resolution smearing, SLD
profiles and presets (no files, no torch).

Modules: ``film``, ``kernel``, ``resolution``, ``reflectivity``, ``profile``, ``simulate``
(one film with user settings), ``presets``, ``refnx_bridge`` (cross-checks against refnx),
``warmup`` (compiling the kernels in the background). The names below load on first use, so
importing ``physics.film`` alone (as the torch-side estimate does) does not load numba (~110 MB).
"""

from reflect_core.base.lazy import lazy_names

_HOMES = {"Film": "film", "FilmError": "film", "Layer": "film", "film_from_dict": "film", "PYREFLECT_DQ": "simulate",
          "CurveSettings": "simulate", "film_profile": "simulate", "film_reflectivity": "simulate"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
