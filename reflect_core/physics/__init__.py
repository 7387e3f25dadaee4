"""Neutron reflectometry physics: films, the Parratt kernel, resolution smearing, SLD
profiles and presets (no files, no torch).

Modules: ``film``, ``kernel``, ``resolution``, ``reflectivity``, ``profile``, ``simulate``
(one film with user settings), ``presets``, ``refnx_bridge`` (cross-checks against refnx).
"""

from reflect_core.physics.film import Film, FilmError, Layer, film_from_dict
from reflect_core.physics.simulate import PYREFLECT_DQ, CurveSettings, film_profile, film_reflectivity

__all__ = ["PYREFLECT_DQ", "CurveSettings", "Film", "FilmError", "Layer", "film_from_dict", "film_profile",
           "film_reflectivity"]
