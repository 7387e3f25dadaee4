"""Named training recipes: data size, network and schedule chosen from measurements on the default
prior (bench/bench_training.py --recipe NAME), kept as train specs in ``examples/recipes/NAME.json``
so the command line takes them as they are (``train examples/recipes/quick.json``). A recipe sets no
prior, Q grid or noise: those come from the film and the measurement a model is for."""

from __future__ import annotations

import json
from pathlib import Path

from reflect_core.ml.spec import TrainSpec

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "recipes"
ABOUT = {  # what each is for, and what it measured here (bench/bench_training.py, the default prior)
    "quick": "a first look: about 1 min on 2 CPU cores",
    "standard": "a model to analyse with: about 5 min on 2 CPU cores",
    "gpu": "for a Modal GPU: 200,000 curves, a wider network (hours on a CPU)",
}


def recipe(name: str) -> dict:
    """The recipe's spec (JSON form), checked; ValueError for a name that is not one."""
    if name not in ABOUT:
        raise ValueError(f"no recipe {name!r}; there are {', '.join(ABOUT)}")
    raw = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    TrainSpec.parse(raw)  # a recipe that does not parse is a bug here, not the user's
    return raw
