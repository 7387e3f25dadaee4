"""`python -m reflect_core doctor` and the sidebar's "This installation": what the installation has
and lacks, exit 1 only when something essential is broken, never a token on screen. The kernel
warm-up and the state mirror (other modules) are faked at their import names; the torch build is
faked by installing fake distributions (dist-info + torch/version.py) on sys.path."""

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
import types

import pytest
import streamlit as st
import yaml
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from reflect_core import doctor_system
from reflect_core.accounts.auth_config import hash_password
from reflect_core.base.errors import InvalidInput
from reflect_core.cli import main

APP = str(ROOT / "app.py")
TOKEN = "hf_" + "q" * 8 + secrets.token_hex(12)  # never printed, whatever quotes it
REAL_TORCH_BUILD = doctor_system.torch_build
UNSET = ("AUTH_CONFIG", "REFLECT_MODE", "REFLECT_SIGNUP", "REFLECT_CLOUD", "HOSTNAME", "MODAL_TOKEN_ID",
         "MODAL_TOKEN_SECRET", "HF_TOKEN", "HF_REPO_ID")


def fake_module(monkeypatch, name, **functions):
    """The real module with these functions replaced for the test. (Replacing the module in sys.modules
    would leave the fake inside any module first imported meanwhile, e.g. by an AppTest run.)"""
    module = importlib.import_module(name)
    for key, value in functions.items():
        monkeypatch.setattr(module, key, value)
    return module


def fake_warmup(monkeypatch, compiled=True, cache=None):
    return fake_module(monkeypatch, "reflect_core.physics.warmup", kernels_compiled=lambda: compiled,
                       kernel_cache_dir=lambda: cache, start_warmup=lambda: None)


def fake_mirror(monkeypatch, settings=None, status=None):
    status = status or {"configured": False, "repo": None, "last_sync": None, "pending": 0, "error": None}
    return fake_module(monkeypatch, "reflect_core.store.mirror", mirror_settings=lambda config, mode: settings,
                       mirror_status=lambda: status)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Nothing configured, an empty secrets file of our own, a fresh data folder, kernels compiled,
    no mirror, a CPU torch (the real one where it is a CPU build, or a fake one)."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text("")
    monkeypatch.setenv("REFLECT_SECRETS_FILE", str(secrets_file))
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REFLECT_MAX_CONCURRENT", "0")
    monkeypatch.chdir(tmp_path)
    fake_warmup(monkeypatch, compiled=True, cache=tmp_path / "kernels")
    fake_mirror(monkeypatch)
    monkeypatch.setattr(doctor_system, "nvidia_gpu_present", lambda: False)
    build = doctor_system.torch_build()
    if not build or build["cuda"]:  # a test machine with a CUDA torch would warn in every test
        monkeypatch.setattr(doctor_system, "torch_build", lambda: {"version": "2.13.0+cpu", "cuda": None,
                                                                   "rocm": None, "known": True})
    return secrets_file


def doctor(capsys, *args):
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out):
    """{check name: (status, found)} from the aligned text."""
    lines = (re.match(r"^(\S.*?)\s{2,}(ok|warning|missing|error)\s{2,}(.*)$", line) for line in out.splitlines())
    return {m[1]: (m[2], m[3]) for m in lines if m}


def test_a_healthy_installation_exits_0_with_every_fact(env, capsys):
    code, out, err = doctor(capsys)
    assert code == 0 and not err
    facts = rows(out)
    assert list(facts) == ["Python", "torch", "Numerical kernels", "pyreflect", "Settings", "Login", "Modal GPUs",
                           "Hugging Face Hub", "State mirror", "Data directory", "Free disk"]
    assert facts["torch"][0] == "ok" and "CPU build" in facts["torch"][1]
    assert facts["Login"] == ("ok", "off: single-user local mode (REFLECT_MODE unset, no AUTH_CONFIG)")
    assert facts["Data directory"][0] == "ok" and facts["Data directory"][1].startswith("./data (writable")
    assert not (env.parent / "data").exists()  # the check never leaves a data folder behind
    assert facts["Modal GPUs"][0] == "missing" and "→ set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET" in out
    assert "nothing essential is broken" in out


def write_fake_dist(site, name, version, files):
    """A dist-info with METADATA and a RECORD of (path, size) rows; the files themselves written."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("".join(f"{path},sha256=x,{size}\n" for path, (size, _) in files.items()))
    for path, (_, text) in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """Installed packages as importlib.metadata sees them: only those of a folder of our own."""
    site, real = tmp_path / "site", importlib.metadata.distributions
    site.mkdir()

    def distribution(name):
        found = next(iter(real(name=name, path=[str(site)])), None)
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: real(path=[str(site)], **kw))
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setattr(doctor_system, "torch_build", REAL_TORCH_BUILD)
    return site


CUDA_VERSION_PY = "__version__ = '2.13.0'\ncuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n"


def test_a_cuda_build_on_a_machine_without_a_gpu_is_a_warning_with_the_cpu_command(env, fake_site, capsys,
                                                                                    monkeypatch):
    write_fake_dist(fake_site, "torch", "2.13.0", {"torch/version.py": (300, CUDA_VERSION_PY)})
    write_fake_dist(fake_site, "nvidia-cublas-cu12", "12.8.4", {"nvidia/cublas/libcublas.so": (2_400_000_000, "")})
    write_fake_dist(fake_site, "nvidia_cudnn_cu12", "9.10.2", {"nvidia/cudnn/libcudnn.so": (600_000_000, "")})
    code, out, _ = doctor(capsys)
    status, found = rows(out)["torch"]
    assert code == 0 and status == "warning"  # wasteful, not broken
    assert found.startswith("2.13.0, a CUDA 12.8 build and 3.0 GB of NVIDIA libraries (2 packages), but this "
                            "machine has no NVIDIA GPU")
    assert ("→ install the CPU build: `pip uninstall -y torch nvidia-cublas-cu12 nvidia-cudnn-cu12 && "
            "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu`") in out

    monkeypatch.setattr(doctor_system, "nvidia_gpu_present", lambda: True)
    assert rows(doctor(capsys)[1])["torch"] == ("ok", "2.13.0, a CUDA 12.8 build, NVIDIA GPU present")


def test_the_build_is_read_from_version_py_else_from_the_wheel_label(fake_site):
    write_fake_dist(fake_site, "torch", "2.13.0+cu128", {"torch/__init__.py": (0, "")})  # no version.py
    assert REAL_TORCH_BUILD() == {"version": "2.13.0+cu128", "cuda": "12.8", "rocm": None, "known": True}
    (fake_site / "torch" / "version.py").write_text("cuda = None\nhip = None\n")  # the file wins over the label
    assert REAL_TORCH_BUILD()["cuda"] is None
    cpu = {"version": "2.13.0+cpu", "cuda": None, "rocm": None, "known": True}
    leftover = doctor_system.torch_check(cpu, (["nvidia-nccl-cu12"], 2e8), gpu=False)
    assert leftover.status == "warning"
    assert leftover.found == "2.13.0+cpu, a CPU build and 0.2 GB of NVIDIA libraries (1 package) that it never uses"
    assert leftover.action == "remove them: `pip uninstall -y nvidia-nccl-cu12`"
    assert doctor_system.torch_check(cpu, ([], 0), gpu=True).found.endswith("a CUDA build would train on it)")


def test_torch_not_installed_is_an_error(env, capsys, monkeypatch):
    monkeypatch.setattr(doctor_system, "torch_build", lambda: None)
    code, out, _ = doctor(capsys)
    assert code == 1 and rows(out)["torch"][0] == "error"
    assert "1 error(s): torch" in out


def test_missing_pyreflect_is_missing_not_broken(env, capsys, monkeypatch):
    real_find_spec, real_version = importlib.util.find_spec, importlib.metadata.version

    def find_spec(name, *args):
        return None if name.startswith("pyreflect") else real_find_spec(name, *args)

    def version(dist):
        if dist == "pyreflect-nr":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real_version(dist)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "version", version)
    code, out, _ = doctor(capsys)
    assert code == 0
    assert rows(out)["pyreflect"] == ("missing", "not installed: physics and training use this app's own engine")
    assert "pip install --no-deps pyreflect-nr==1.4.6" in out


def test_an_unwritable_data_directory_is_an_error(env, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("REFLECT_DATA_DIR", str(blocker / "data"))
    code, out, _ = doctor(capsys)
    assert code == 1
    assert rows(out)["Data directory"] == ("error", "./a-file/data cannot be made: ./a-file is a file")
    assert "→ set REFLECT_DATA_DIR to a folder you can write" in out

    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()

    def refused(**kwargs):  # root writes everywhere: the refusal is faked where the probe asks
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor_system.tempfile, "mkstemp", refused)
    code, out, _ = doctor(capsys)
    assert code == 1 and rows(out)["Data directory"] == ("error", "./data is not writable: Permission denied")
    assert "`chmod u+w ./data`" in out


@pytest.mark.parametrize("free, status, code", [(50e6, "error", 1), (500e6, "warning", 0), (5e9, "ok", 0)])
def test_free_disk_thresholds(env, capsys, monkeypatch, free, status, code):
    monkeypatch.setattr(doctor_system.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=int(free)))
    result, out, _ = doctor(capsys)
    assert result == code and rows(out)["Free disk"][0] == status
    assert f"{free / 1e9:.1f} GB free on the disk of ./data" in rows(out)["Free disk"][1]
    if status != "ok":
        assert "→ free some space there, or set REFLECT_DATA_DIR" in out


def test_an_unreadable_secrets_file_is_an_error_not_a_crash(env, capsys):
    env.write_text('AUTH_CONFIG = "auth.yaml"\nREFLECT_MODE = shared\n')  # an unquoted value
    code, out, err = doctor(capsys)
    assert code == 1 and not err
    facts = rows(out)
    assert facts["Settings"][0] == "error" and "cannot be read" in facts["Settings"][1]
    assert facts["Login"] == ("error", "unknown: the settings cannot be read")  # never "local" by default
    env.unlink()
    code, out, _ = doctor(capsys)
    assert code == 1 and "No such file or directory" in rows(out)["Settings"][1]


PASSWORD = "doctor-password-1"


def login_file(tmp_path, monkeypatch, roles):
    """A login file with these users (all with PASSWORD), named by AUTH_CONFIG."""
    hashed = hash_password(PASSWORD)
    users = {name: {"name": name, "email": f"{name}@lab.org", "password": hashed, "roles": [role]}
             for name, role in roles.items()}
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump({"credentials": {"usernames": users},
                                    "cookie": {"name": "reflect_doctor", "key": secrets.token_urlsafe(48)}}))
    monkeypatch.setenv("AUTH_CONFIG", str(path))
    return path


def test_login_settings_are_checked_as_the_app_checks_them(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REFLECT_MODE", "shared")
    code, out, _ = doctor(capsys)
    assert code == 1 and rows(out)["Login"][0] == "error" and "never runs without login" in out
    login_file(tmp_path, monkeypatch, {"alice": "user"})
    code, out, _ = doctor(capsys)
    assert code == 0
    assert rows(out)["Login"] == ("ok", "on: login required (server profile); login file ./auth.yaml readable, "
                                        "1 user, sign-up off")
    assert rows(out)["State mirror"][0] == "warning" and "lost when its server restarts" in out


def test_json_form_and_no_token_is_ever_printed(env, capsys, monkeypatch):
    env.write_text(f'HF_TOKEN = "{TOKEN}"\nHF_REPO_ID = "me/runs"\nMODAL_TOKEN_ID = "ak-{TOKEN}"\n')
    fake_mirror(monkeypatch, settings=object(), status={
        "configured": True, "repo": "me/runs", "last_sync": None, "pending": 2,
        "error": f"401 for token {TOKEN}"})  # a client error that quotes the token
    code, out, _ = doctor(capsys, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["name"] for c in report["checks"] if c["essential"]] == ["torch", "Settings", "Login",
                                                                       "Data directory", "Free disk"]
    assert checks["Modal GPUs"]["status"] == "warning"  # one of its two tokens
    assert checks["Modal GPUs"]["action"].startswith("set MODAL_TOKEN_SECRET too")
    assert checks["State mirror"]["found"] == ("mirrored to me/runs, last sync not yet, 2 change(s) waiting; "
                                               "last error: 401 for token ***")
    text_code, text, _ = doctor(capsys)
    assert TOKEN not in out and TOKEN not in text and text_code == 0


def test_kernels_compiled_or_not_or_unknown(env, capsys, monkeypatch):
    fake_warmup(monkeypatch, compiled=False, cache=None)
    code, out, _ = doctor(capsys)
    assert code == 0 and rows(out)["Numerical kernels"][0] == "warning"
    assert "compiled again by every new process" in out and "python -m reflect_core simulate" in out
    monkeypatch.setitem(sys.modules, "reflect_core.physics.warmup", None)  # an installation without it
    assert rows(doctor(capsys)[1])["Numerical kernels"][1].startswith("unknown: this installation cannot tell")
    def badly_set(config, mode):
        raise InvalidInput("HF_STATE_REPO_ID 'x' is not a Hub repo id of the form 'owner/name'")

    monkeypatch.setattr(fake_mirror(monkeypatch), "mirror_settings", badly_set)
    assert rows(doctor(capsys)[1])["State mirror"] == ("warning", "misconfigured: HF_STATE_REPO_ID 'x' is not a Hub "
                                                                  "repo id of the form 'owner/name'")
    monkeypatch.setitem(sys.modules, "reflect_core.store.mirror", None)
    assert rows(doctor(capsys)[1])["State mirror"][1].startswith("unknown: this installation cannot tell")


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "--bogus"])
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_the_command_as_a_user_runs_it_even_with_a_broken_torch(env, tmp_path):
    """A torch that cannot be imported (a CUDA build without its libraries) must not stop the one
    command that diagnoses the installation: doctor never imports torch."""
    broken_torch = tmp_path / "shadow" / "torch"
    broken_torch.mkdir(parents=True)
    (broken_torch / "__init__.py").write_text("raise ImportError('libcudart.so.12: cannot open shared object')\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    environ = {**os.environ, "REFLECT_DATA_DIR": str(blocker / "d"), "PYTHONPATH": str(tmp_path / "shadow")}
    done = subprocess.run([sys.executable, "-m", "reflect_core", "doctor"], capture_output=True, text=True,
                          timeout=120, env=environ)
    assert done.returncode == 1 and not done.stderr
    assert rows(done.stdout)["Data directory"][0] == "error"


# --- the sidebar --------------------------------------------------------------------------------------

@pytest.fixture
def sidebar_app(env):
    st.cache_data.clear()  # the facts are cached for a minute
    yield
    st.cache_data.clear()


def test_the_sidebar_shows_the_facts_folded_away(sidebar_app, monkeypatch):
    fake_warmup(monkeypatch, compiled=False, cache=None)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    [expander] = [e for e in at.sidebar.expander if e.label.startswith("This installation")]
    assert expander.label == "This installation (1 to look at)"
    assert expander.proto.expanded is False
    text = " ".join(m.value for m in expander.markdown)
    for name in ("Python", "torch", "Numerical kernels", "pyreflect", "Settings", "Login", "Modal GPUs",
                 "Hugging Face Hub", "State mirror", "Data directory", "Free disk"):
        assert f"**{name}**" in text
    actions = " ".join(c.value for c in expander.caption)
    assert "python -m reflect_core simulate" in actions  # the kernels' action, shown because not ok
    assert "python -m reflect_core doctor" in actions


def test_the_sidebar_checks_once_a_minute_not_on_every_rerun(sidebar_app, monkeypatch):
    from reflect_core import doctor

    calls, real = [], doctor.data_checks
    monkeypatch.setattr(doctor, "data_checks", lambda: calls.append(1) or real())
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.run()
    at.run()
    assert not at.exception and len(calls) == 1


def sidebar_facts(at):
    [expander] = [e for e in at.sidebar.expander if e.label.startswith("This installation")]
    return " ".join(m.value for m in expander.markdown)


def test_a_shared_app_shows_visitors_no_server_details(sidebar_app, tmp_path, monkeypatch):
    login_file(tmp_path, monkeypatch, {"alice": "user", "root": "admin"})
    seen = {}
    for name in ("alice", "root"):
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.text_input[0].input(name)
        at.text_input[1].input(PASSWORD)
        next(b for b in at.button if b.label == "Login").click().run()
        assert not at.exception, at.exception
        seen[name] = sidebar_facts(at)
    for private in ("**Settings**", "**Login**", "**Data directory**", "**Free disk**", "auth.yaml",
                    "**Hugging Face Hub**", "**State mirror**"):
        assert private not in seen["alice"] and private in seen["root"]
    assert "**torch**" in seen["alice"] and "**Modal GPUs**" in seen["alice"]


def test_sidebar_text_keeps_paths_and_prices_literal_but_not_code():
    from ui.sidebar import _markdown

    assert _markdown("cached in ./reflect_core/physics/__pycache__ at $0.59/h") == \
        r"cached in ./reflect\_core/physics/\_\_pycache\_\_ at \$0.59/h"
    assert _markdown("set `MODAL_TOKEN_ID` and HF_TOKEN") == r"set `MODAL_TOKEN_ID` and HF\_TOKEN"
