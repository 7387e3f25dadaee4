"""Files users bring: measured curves (text with Q, R, dR, dQ columns), ``.npy`` arrays in
pyreflect's layout, and film JSON files, each read once into a checked object.

Modules: ``curves``, ``arrays``, ``films``.
"""

from reflect_core.formats.curves import Curve, CurveError, parse_curve, read_curve

__all__ = ["Curve", "CurveError", "parse_curve", "read_curve"]
