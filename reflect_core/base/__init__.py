"""The floor every wing stands on: the error base, atomic files and the data directory,
settings parsing, the progress/pause protocol of long tasks, and which optional engines exist.

Modules: ``errors``, ``storage``, ``settings_check``, ``job_protocol``, ``engines``.
"""

from reflect_core.base.errors import AccessError, InvalidInput, LimitError, NotFound, ReflectError
from reflect_core.base.storage import StorageError, atomic_write_bytes, atomic_write_json, data_dir, read_json

__all__ = ["AccessError", "InvalidInput", "LimitError", "NotFound", "ReflectError", "StorageError",
           "atomic_write_bytes", "atomic_write_json", "data_dir", "read_json"]
