"""The boundary for untrusted bytes: every uploaded file is checked here before anything is kept.

``validate_upload`` parses an upload in memory and returns what it holds (``Accepted``), or
raises ``UploadError`` naming the file and the reason; nothing is written until it passes
(keeping it is ``store.user_files``'s job). No upload can run code here, and nothing here
unpickles: .npy arrays are read without pickle; pyreflect's pickled .npy stats are refused
(they come as .json or .npz; the command line converts the .npy in a separate, limited
process, ``pickled_stats``); torch weights load with ``weights_only=True``, must store every
number they declare, stay within a parameter limit counted from the settings before they are
read, and fit the declared network; JSON nests at most ``MAX_JSON_DEPTH`` levels; zip members
are listed and checked (count, unpacked size, paths, links, a file and a folder of one name)
before any is read.

One module per kind: ``arrays`` (NR/SLD training arrays), ``curves`` (measured curves),
``films`` (film JSON), ``model_zip`` (our model directories), ``pyreflect`` (pyreflect
weights and stats); ``weights`` (torch state dicts) and ``common`` serve several of them.
"""

from reflect_core.uploads.common import Accepted, UploadError, safe_zip_members
from reflect_core.uploads.model_zip import unpack_model_zip
from reflect_core.uploads.pyreflect import check_pyreflect_stats, import_pyreflect_model, pyreflect_available
from reflect_core.uploads.validate import validate_upload

__all__ = ["Accepted", "UploadError", "check_pyreflect_stats", "import_pyreflect_model", "pyreflect_available",
           "safe_zip_members", "unpack_model_zip", "validate_upload"]
