"""NR → SLD networks: the training spec, model metadata, networks, training, evaluation,
prediction and the pipeline that runs a spec end to end.

Torch-free to import, so pages can use them without loading torch (~190 MB): ``spec``
(``TrainSpec``), ``meta`` (``ModelMeta``, the only reader and writer of ``model.json``),
``settings``, ``preprocess``, ``evaluation``, ``costs``, ``builtin``, and ``model_store``,
``predict`` and ``estimates``, which import torch only inside the functions that load, save, run
or time a network. ``models``, ``training``, ``device`` and ``pipeline`` load torch on import.
The names below load on first use: the process that times a network imports ``settings`` and
``models`` without the dataset side (``spec`` → physics, numba: ~110 MB).
"""

from reflect_core.base.lazy import lazy_names

_HOMES = {"ModelLoadError": "meta", "ModelMeta": "meta", "SpecError": "spec", "TrainSpec": "spec"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
