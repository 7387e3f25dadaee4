"""Built-in films and the default training prior (pyreflect's 5-layer prior)."""

from __future__ import annotations

from reflect_core.physics.film import Film, Layer

DEFAULT_FILM = Film(
    name="pyreflect 5-layer prior",
    layers=(
        Layer("substrate", 2.07, 0.0, 0.0, 1.35),
        Layer("siox", 3.47, 0.0, 12.17, 2.05),
        Layer("layer_1", 3.96, 0.0, 53.79, 20.61),
        Layer("layer_2", 2.37, 0.0, 178.66, 57.26),
        Layer("layer_3", 3.85, 0.0, 79.63, 21.86),
        Layer("layer_4", 3.24, 0.0, 67.49, 17.57),
        Layer("layer_5", 2.67, 0.0, 72.61, 76.63),
        Layer("air", 0.0, 0.0, 0.0, 0.0),
    ),
)

# pyreflect's layer_bound form: layer index (substrate = 0), parameter, [lo, hi].
DEFAULT_BOUNDS = (
    {"i": 0, "par": "roughness", "bounds": [1.177, 1.5215]},
    {"i": 1, "par": "sld", "bounds": [3.47, 3.47]},
    {"i": 1, "par": "thickness", "bounds": [9.7216, 14.624]},
    {"i": 1, "par": "roughness", "bounds": [1.108, 2.998]},
    {"i": 2, "par": "sld", "bounds": [3.7235, 4.197]},
    {"i": 2, "par": "thickness", "bounds": [8.717, 98.867]},
    {"i": 2, "par": "roughness", "bounds": [2.2571, 38.969]},
    {"i": 3, "par": "sld", "bounds": [1.6417, 3.1033]},
    {"i": 3, "par": "thickness", "bounds": [117.4, 239.91]},
    {"i": 3, "par": "roughness", "bounds": [19.32, 95.202]},
    {"i": 4, "par": "sld", "bounds": [3.0246, 4.6755]},
    {"i": 4, "par": "thickness", "bounds": [64.482, 94.768]},
    {"i": 4, "par": "roughness", "bounds": [15.713, 28.007]},
    {"i": 5, "par": "sld", "bounds": [1.501, 4.9837]},
    {"i": 5, "par": "thickness", "bounds": [51.655, 83.334]},
    {"i": 5, "par": "roughness", "bounds": [9.7741, 25.373]},
    {"i": 6, "par": "sld", "bounds": [0.85516, 4.4906]},
    {"i": 6, "par": "thickness", "bounds": [58.479, 86.738]},
    {"i": 6, "par": "roughness", "bounds": [43.155, 110.11]},
)

PRESETS: dict[str, Film] = {
    DEFAULT_FILM.name: DEFAULT_FILM,
    "Si / SiO2 / polymer (dPS) / air": Film(
        name="Si / SiO2 / polymer (dPS) / air",
        layers=(
            Layer("Si", 2.07, 0.0, 0.0, 3.0),
            Layer("SiO2", 3.47, 0.0, 15.0, 3.0),
            Layer("dPS", 6.4, 0.0, 300.0, 5.0),
            Layer("air", 0.0),
        ),
    ),
    "Si / Au / polymer (PS) / D2O (beam through Si)": Film(
        name="Si / Au / polymer (PS) / D2O (beam through Si)",
        beam_from="substrate",
        layers=(
            Layer("Si", 2.07, 0.0, 0.0, 3.0),
            Layer("Cr adhesion", 3.03, 0.0, 20.0, 4.0),
            Layer("Au", 4.66, 0.016, 150.0, 5.0),
            Layer("PS", 1.41, 0.0, 200.0, 8.0),
            Layer("D2O", 6.36),
        ),
    ),
    "Si / Ti / H2O (negative SLD, beam through Si)": Film(
        name="Si / Ti / H2O (negative SLD, beam through Si)",
        beam_from="substrate",
        layers=(
            Layer("Si", 2.07, 0.0, 0.0, 3.0),
            Layer("SiO2", 3.47, 0.0, 12.0, 3.0),
            Layer("Ti", -1.95, 0.0, 100.0, 5.0),
            Layer("H2O", -0.56),
        ),
    ),
    "Bare Si / air (Fresnel)": Film(
        name="Bare Si / air (Fresnel)",
        layers=(Layer("Si", 2.07, 0.0, 0.0, 3.0), Layer("air", 0.0)),
    ),
}
