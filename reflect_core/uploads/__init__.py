"""The boundary for untrusted bytes: every uploaded file is checked here before anything is kept."""

from reflect_core.uploads.checks import pyreflect_available, validate_upload  # noqa: F401
