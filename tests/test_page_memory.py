"""Memory on a shared box (README, Deploy): opening every page loads neither torch (~190 MB)
nor refnx (~65 MB); they load when a model runs, trains or is read, and when a fit runs."""

import json
import os
import subprocess
import sys

from conftest import ROOT

CHILD = r"""
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1] + "/app.py", default_timeout=300)
at.run()
errors, estimated = [e.value for e in at.exception], False
for page in ("train", "models", "analyse", "history", "explorer"):
    at.switch_page(f"app_pages/{page}.py").run()
    errors += [f"{page}: {e.value}" for e in at.exception]
    estimated |= any("Estimated training time here" in c.value for c in at.caption)
print(json.dumps({"errors": errors, "estimated": estimated,
                  "loaded": [m for m in ("torch", "refnx") if m in sys.modules]}))
"""


def test_every_page_renders_without_torch_or_refnx(tmp_path):
    env = {**os.environ, "REFLECT_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["errors"], result["errors"]
    assert result["estimated"]  # the Train page's time estimate was measured (in a child process)
    assert result["loaded"] == [], f"imported while rendering the pages: {result['loaded']}"


def test_the_training_estimate_is_timed_in_a_child_process():
    code = ("import sys\nfrom reflect_core.ml.estimates import training_seconds_apart\n"
            "from reflect_core.ml.settings import ModelSettings, TrainSettings\n"
            "s = training_seconds_apart(ModelSettings(layers=2, channels=8, hidden=32), TrainSettings(epochs=2), "
            "500, 308, 900)\nassert 'torch' not in sys.modules, 'torch was imported'\nprint(s)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) > 0


def test_the_torch_free_modules_of_ml_and_uploads_import_without_torch():
    modules = ["reflect_core.ml." + m for m in ("spec", "meta", "settings", "preprocess", "evaluation", "costs",
                                                 "builtin", "model_store", "predict", "estimates")]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules + ["reflect_core.uploads"]) + \
        "print([m for m in ('torch', 'refnx') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
