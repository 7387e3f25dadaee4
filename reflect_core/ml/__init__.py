"""NR → SLD networks: the training spec, model metadata, networks, training, evaluation,
prediction and the pipeline that runs a spec end to end.

Torch-free, safe to import anywhere: ``spec`` (``TrainSpec``), ``meta`` (``ModelMeta``, the only
reader and writer of ``model.json``), ``settings``. The rest loads torch: ``models``,
``preprocess``, ``training``, ``evaluation``, ``predict``, ``model_store``, ``pipeline``,
``estimates``; import those modules directly where they are needed.
"""

from reflect_core.ml.meta import ModelLoadError, ModelMeta
from reflect_core.ml.spec import SpecError, TrainSpec

__all__ = ["ModelLoadError", "ModelMeta", "SpecError", "TrainSpec"]
