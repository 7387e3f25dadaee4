"""Synthetic training data: a prior (a film plus bounds) and N curves with their SLD profiles.

Modules: ``prior``, ``generate``.
"""

from reflect_core.data.generate import DatasetConfig, DatasetError, dataset_from_dict, generate
from reflect_core.data.prior import Prior, PriorError

__all__ = ["DatasetConfig", "DatasetError", "Prior", "PriorError", "dataset_from_dict", "generate"]
