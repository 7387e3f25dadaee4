"""requirements.txt installs on Community Cloud what the tests here run against.

Cloud installs requirements.txt with uv on Python 3.12 (3.11 selectable). torch must be PyPI-free
there: PyPI's Linux x86_64 wheel is the CUDA build (~2.7 GB with its nvidia wheels), so the file names
PyTorch's CPU wheel for each supported Python directly (uv and pip read a direct reference the same way,
whereas an extra index changes which index uv asks first for every package). That server cannot be
reached from here, so these tests check the file itself: every line pinned, the right wheel chosen for
each platform and Python, the same torch version everywhere, and pins equal to what this venv runs.
"""

from __future__ import annotations

import importlib.metadata
import urllib.parse
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
SUPPORTED = ("3.11", "3.12")


def requirements() -> list[Requirement]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def environment(python: str, system: str = "linux", machine: str = "x86_64") -> dict:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": system,
            "platform_machine": machine, "platform_system": {"linux": "Linux", "darwin": "Darwin"}.get(system, system),
            "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "extra": ""}


def torch_lines_for(env: dict) -> list[Requirement]:
    return [r for r in requirements() if r.name == "torch" and (r.marker is None or r.marker.evaluate(env))]


def test_every_requirement_is_pinned_to_one_version_or_one_file():
    for req in requirements():
        pinned = len(req.specifier) == 1 and next(iter(req.specifier)).operator == "=="
        assert pinned or req.url, f"{req} is not pinned"


@pytest.mark.parametrize("python", SUPPORTED)
def test_linux_x86_64_gets_the_cpu_wheel_of_its_own_python(python):
    (req,) = torch_lines_for(environment(python))
    assert req.url and req.url.startswith("https://download.pytorch.org/whl/cpu/")
    name, version, _, tags = parse_wheel_filename(urllib.parse.unquote(req.url.rsplit("/", 1)[1]))
    assert name == "torch" and version.local == "cpu"
    cp = "cp" + python.replace(".", "")
    assert {(t.interpreter, t.abi) for t in tags} == {(cp, cp)}
    assert all(t.platform.startswith("manylinux") and t.platform.endswith("_x86_64") for t in tags)


@pytest.mark.parametrize("env", [environment("3.12", "darwin", "arm64"), environment("3.12", "win32", "AMD64"),
                                 environment("3.13")])
def test_other_platforms_and_pythons_get_exactly_one_plain_pin(env):
    (req,) = torch_lines_for(env)
    assert req.url is None and str(req.specifier).startswith("==")


def test_one_torch_version_everywhere_and_it_is_the_one_tested_here():
    versions = set()
    for req in (r for r in requirements() if r.name == "torch"):
        if req.url:
            versions.add(parse_wheel_filename(urllib.parse.unquote(req.url.rsplit("/", 1)[1]))[1].public)
        else:
            versions.add(Version(next(iter(req.specifier)).version).public)
    assert versions == {Version(importlib.metadata.version("torch")).public}


def test_pins_are_what_this_environment_runs():
    for req in requirements():
        if req.url is None and (req.marker is None or req.marker.evaluate()):
            assert importlib.metadata.version(req.name) == next(iter(req.specifier)).version, req.name


def test_pyreflect_stays_optional():
    names = {canonicalize_name(r.name) for r in requirements()}
    assert "pyreflect-nr" not in names and "refl1d" not in names
