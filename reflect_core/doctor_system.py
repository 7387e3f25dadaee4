"""What the machine under the app has: Python, the torch build, the data directory and its disk.

Never imports torch (the sidebar asks on every rerun, and a broken torch must still be reported):
the build is read from the installed files. No network.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_PYTHONS = ((3, 11), (3, 12))
TORCH_PIN = "2.13.0"  # requirements.txt and scripts/setup.sh
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DISK_WARN_BYTES = 1_000_000_000   # a local training set may take up to 4 GB (README, Limits)
DISK_ERROR_BYTES = 100_000_000    # below this, history and run files fail to write
GB = 1e9


@dataclass(frozen=True)
class Check:
    name: str
    status: str       # "ok", "warning", "missing" (optional and absent) or "error" (the app cannot work)
    found: str
    action: str = ""  # a command or a setting name; empty when there is nothing to do


def shown_path(path: Path, cwd: Path | None = None) -> str:
    """Relative to the working folder when it is inside it (shorter, and no home directory on screen)."""
    path = Path(os.path.abspath(path))
    try:
        inside = path.relative_to(Path(os.path.abspath(cwd or Path.cwd())))
        return f"./{inside}" if inside.parts else "."
    except ValueError:
        return str(path)


def python_check(version=None) -> Check:
    version = tuple((version or sys.version_info)[:3])
    text = ".".join(map(str, version))
    supported = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_PYTHONS)
    if version[:2] in SUPPORTED_PYTHONS:
        return Check("Python", "ok", f"{text} (supported: {supported})")
    return Check("Python", "warning", f"{text} is untested (supported: {supported})",
                 "make the virtualenv with python3.11: `PYTHON=python3.11 scripts/setup.sh`")


# --- torch ---------------------------------------------------------------------------------------

def _normalized(name: str | None) -> str:
    return re.sub(r"[-_.]+", "-", (name or "").lower())


def nvidia_libraries() -> tuple[list[str], int]:
    """The nvidia-* distributions (CUDA libraries a CUDA torch pulls in) and their bytes on disk,
    summed from their RECORD files (no walk over the files)."""
    names, total = [], 0
    for dist in importlib.metadata.distributions():
        name = _normalized(dist.metadata["Name"])
        if name.startswith("nvidia-"):
            names.append(name)
            total += sum(f.size or 0 for f in dist.files or ())
    return sorted(set(names)), total


def _version_py_field(text: str, field: str) -> str | None:
    """``cuda = '12.8'`` or ``cuda: Optional[str] = None`` in torch/version.py → '12.8' or None."""
    match = re.search(rf"^{field}\s*(?::[^=\n]*)?=\s*(.+)$", text, re.MULTILINE)
    value = match.group(1).strip().strip("'\"") if match else "None"
    return None if value == "None" else value


def torch_build() -> dict | None:
    """{"version", "cuda", "rocm"} of the installed torch, or None when it is not installed."""
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    version = dist.version
    try:
        text = Path(dist.locate_file("torch/version.py")).read_text(encoding="utf-8")
    except OSError:
        text = ""
    cuda, rocm = _version_py_field(text, "cuda"), _version_py_field(text, "hip")
    label = version.partition("+")[2]
    if not text and label.startswith("cu"):  # no version.py to read: the wheel's local label tells
        cuda = f"{label[2:-1]}.{label[-1]}"
    return {"version": version, "cuda": cuda, "rocm": rocm, "known": bool(text or label)}


def nvidia_gpu_present() -> bool:
    """The NVIDIA driver's view, without CUDA: a GPU directory under /proc or a device node."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def torch_check(build=None, libraries=None, gpu=None) -> Check:
    build = torch_build() if build is None else build
    if not build:
        return Check("torch", "error", "not installed: training, prediction and the Analyse page need it",
                     f"`pip install torch=={TORCH_PIN} --index-url {CPU_INDEX}` (the CPU build), or "
                     "`scripts/setup.sh`")
    names, size = nvidia_libraries() if libraries is None else libraries
    gpu = nvidia_gpu_present() if gpu is None else gpu
    version = build["version"]
    packages = f"{len(names)} package{'s' if len(names) != 1 else ''}"
    extra = f" and {size / GB:.1f} GB of NVIDIA libraries ({packages})" if names else ""
    cpu_build = (f"`pip uninstall -y torch {' '.join(names)} && pip install torch=={version.partition('+')[0]} "
                 f"--index-url {CPU_INDEX}`")
    if build["cuda"] and not gpu:
        return Check("torch", "warning", f"{version}, a CUDA {build['cuda']} build{extra}, but this machine has "
                     "no NVIDIA GPU: the CPU build computes the same here without those libraries",
                     f"install the CPU build: {cpu_build}")
    if build["cuda"]:
        return Check("torch", "ok", f"{version}, a CUDA {build['cuda']} build, NVIDIA GPU present")
    if build["rocm"]:
        return Check("torch", "ok", f"{version}, a ROCm {build['rocm']} build")
    if not build["known"]:
        return Check("torch", "warning", f"{version}, build unknown (no torch/version.py)",
                     f"reinstall it: `pip install --force-reinstall torch=={version.partition('+')[0]} "
                     f"--index-url {CPU_INDEX}`")
    if names:
        return Check("torch", "warning", f"{version}, a CPU build{extra} that it never uses",
                     f"remove them: `pip uninstall -y {' '.join(names)}`")
    gpu_note = " (an NVIDIA GPU is present: a CUDA build would train on it)" if gpu else ""
    return Check("torch", "ok", f"{version}, a CPU build{gpu_note}")


# --- data directory and disk -------------------------------------------------------------------------

def data_path() -> Path:
    """The data directory as base.storage.data_dir names it, without creating it (a check in another
    folder must not leave a ./data behind)."""
    return Path(os.environ.get("REFLECT_DATA_DIR") or "./data")


def _existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists: where the app would create it."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def data_checks(cwd: Path | None = None) -> list[Check]:
    """Whether the data directory (or, before the app first made it, the folder that will hold it)
    can be written, by creating and deleting a temporary file, and how much room its disk has."""
    path = data_path()
    where, todo = shown_path(path, cwd), "set REFLECT_DATA_DIR to a folder you can write"
    target = _existing(path)
    if not target.is_dir():
        return [Check("Data directory", "error", f"{where} cannot be made: {shown_path(target, cwd)} is a file", todo)]
    parent = "" if target == Path(os.path.abspath(path)) else shown_path(target, cwd)  # where the app will make it
    try:
        fd, probe = tempfile.mkstemp(dir=target, prefix=".doctor-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        found = f"{parent} (which is to hold {where}) is not writable" if parent else f"{where} is not writable"
        checks = [Check("Data directory", "error", f"{found}: {exc.strerror or exc}",
                        f"`chmod u+w {shown_path(target, cwd)}`, or {todo}")]
    else:
        later = f"; not made yet, the app makes it in {parent}" if parent else ""
        checks = [Check("Data directory", "ok", f"{where} (writable{later})")]
    return checks + [disk_check(target, where)]


def disk_check(path: Path, where: str) -> Check:
    try:
        free = shutil.disk_usage(path).free
    except OSError as exc:
        return Check("Free disk", "warning", f"unknown for {where}: {exc.strerror or exc}")
    text = f"{free / GB:.1f} GB free on the disk of {where}"
    action = "free some space there, or set REFLECT_DATA_DIR to a folder on a bigger disk"
    if free < DISK_ERROR_BYTES:
        return Check("Free disk", "error", f"{text}: saving history, runs and uploads fails", action)
    if free < DISK_WARN_BYTES:
        return Check("Free disk", "warning", f"{text}: under {DISK_WARN_BYTES / GB:.0f} GB, and one training set "
                     "may take up to 4 GB (plus checkpoints and models)", action)
    return Check("Free disk", "ok", text)
