"""Package names that load their module on first use (PEP 562), so importing one light module
of a package does not import its heavy siblings (numba, torch) through the package's __init__."""

from __future__ import annotations

import importlib


def lazy_names(package: str, homes: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that returns ``name`` from ``package.homes[name]``."""

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__
