"""The built-in model that ships with the app (reflect_core/ml/pretrained/default_prior/, made by
scripts/train_pretrained.py): it reads, its weights are the ones its model.json and model card
record, it is as accurate on fresh default-prior curves as its card says, its card is its
model.json's numbers, listing it loads no torch, the script is deterministic, and the Models page
offers it to every user (no uploads, no training, shared mode too), never deletable and never written."""

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_accounts_app import app_env, hashes, log_in, login_file  # noqa: F401 - fixtures for the shared mode

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.base.storage import sha256_file
from reflect_core.data.generate import NR_FILE, SLD_FILE, dataset_from_dict, generate
from reflect_core.formats.curves import csv_text
from reflect_core.ml import builtin
from reflect_core.ml.meta import SCHEMA, ModelMeta
from reflect_core.ml.model_store import load_model
from reflect_core.ml.models import parameter_count
from reflect_core.ml.predict import apply_model
from reflect_core.store import history, user_curves

SHIPPED = builtin.PRETRAINED_DIR / "default_prior"
MAX_WEIGHTS_MB = 5.0
# RMSE on 200 fresh curves of the default prior (a seed the training never used) against the card's test
# RMSE (4,000 curves): the per-curve errors are heavy-tailed, so 200 curves scatter the pooled RMSE by 5.6 %
# (1 σ over 20 seeds; at most 10 %); 25 % is 4.5 σ. A real regression (wrong normalisation, grid or
# weights) is ×2 or more: the mean-profile baseline is 5.5× the card's RMSE.
RMSE_TOLERANCE = 0.25
FRESH_CURVES, FRESH_SEED = 200, 987_654


def script():
    spec = importlib.util.spec_from_file_location("train_pretrained", ROOT / "scripts" / "train_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- the shipped folder -----------------------------------------------------------------------------------------


def test_the_shipped_model_reads_and_its_weights_are_the_recorded_ones():
    [entry] = [m for m in builtin.builtin_models() if m.name == "default_prior"]
    assert entry.error is None, entry.error
    meta = entry.meta
    assert json.loads((SHIPPED / "model.json").read_text())["schema"] == SCHEMA
    assert meta.source["kind"] == "built-in" and meta.data_folder is None
    assert meta.training is not None and meta.metrics is not None and meta.prior is not None
    digest = sha256_file(SHIPPED / "model.pt")
    assert meta.source["weights_sha256"] == digest and digest in entry.card()
    assert (SHIPPED / "model.pt").stat().st_size <= MAX_WEIGHTS_MB * 1e6
    model, loaded = load_model(SHIPPED)
    assert parameter_count(model) == meta.parameters == loaded.parameters
    # Made by the script's recipe, as its card says.
    recipe = script().RECIPE
    assert meta.dataset["n"] == recipe["dataset"]["n"] and meta.dataset["seed"] == recipe["dataset"]["seed"]
    assert meta.training.to_dict() == recipe["training"] and meta.model.to_dict() == recipe["model"]
    assert meta.source["command"] == ".venv/bin/python scripts/train_pretrained.py"
    assert builtin.find_builtin("builtin:default_prior").model_dir == SHIPPED


def test_the_card_is_its_model_json():
    meta = ModelMeta.read(SHIPPED)
    card = (SHIPPED / builtin.CARD).read_text(encoding="utf-8")
    assert card == script().model_card(meta)  # every number of the card comes from model.json
    m = meta.metrics
    for number in (f"{m['model']['rmse']:.4f}", f"{m['baseline']['rmse']:.4f}", f"{meta.parameters:,}",
                   f"{m['n_test']:,} held-out curves", meta.source["command"], "default prior only"):
        assert number in card, number


def test_fresh_curves_of_the_default_prior_are_predicted_as_well_as_the_card_says(tmp_path):
    model, meta = load_model(SHIPPED)
    config = dataset_from_dict({"n": FRESH_CURVES, "seed": FRESH_SEED})
    np.testing.assert_allclose(config.q, meta.q, rtol=1e-6)
    np.testing.assert_allclose(config.z, meta.z, rtol=1e-6)
    folder = generate(config, tmp_path / "fresh")
    nr, sld = np.load(folder / NR_FILE), np.load(folder / SLD_FILE)
    pred = apply_model(model, meta, nr[:, 1])[:, 1]
    rmse = float(np.sqrt(np.mean((pred - sld[:, 1]) ** 2)))
    card = meta.metrics["model"]["rmse"]
    print(f"fresh default-prior curves: SLD RMSE {rmse:.4f}, card {card:.4f}, "
          f"baseline {meta.metrics['baseline']['rmse']:.4f}")
    assert abs(rmse - card) <= RMSE_TOLERANCE * card, (rmse, card)
    assert rmse < 0.5 * meta.metrics["baseline"]["rmse"]


def test_listing_loads_no_torch():
    code = ("import sys\nfrom reflect_core.ml.builtin import builtin_models\n"
            "models = builtin_models()\nassert models and all(m.error is None for m in models), models\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint(len(models))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_folder_whose_weights_were_changed_is_listed_with_the_reason_and_not_offered(tmp_path):
    root = tmp_path / "pretrained"
    shutil.copytree(SHIPPED, root / "default_prior")
    weights = root / "default_prior" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 1
    weights.write_bytes(bytes(data))
    [entry] = builtin.builtin_models(root)
    assert entry.error is not None and "SHA-256" in entry.error


# --- the script -------------------------------------------------------------------------------------------------


def test_the_script_is_deterministic_at_a_tiny_size(tmp_path):
    """The full recipe takes minutes; the same code at 300 curves and 2 epochs, twice, is bit-identical."""
    train = script()
    quiet = type("Quiet", (), {"phase": lambda *a: None, "log": lambda *a: None, "epoch": lambda *a: None})()
    runs = [train.train(train.recipe(n=300, epochs=2), tmp_path / name, reporter=quiet) for name in ("a", "b")]
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[0]["command"] == ".venv/bin/python scripts/train_pretrained.py --n 300 --epochs 2"
    entry = builtin.read_builtin(tmp_path / "a")
    assert entry.error is None, entry.error
    assert entry.card() == train.model_card(entry.meta)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["README.md", "model.json", "model.pt"]


# --- the Models page --------------------------------------------------------------------------------------------


def models_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    return at


def test_a_first_time_user_sees_the_built_in_model_and_analyses_a_curve_with_it(data):
    before = snapshot(SHIPPED)
    at = models_page()  # no uploads, no training
    assert any("built-in" in m.value and "default prior only" in m.value for m in at.markdown)
    assert any("No models yet of your own" in i.value for i in at.info)
    assert any(e.label == "Model card" for e in at.expander)
    [model_box] = [s for s in at.selectbox if s.label == "Model"]
    assert "built-in" in model_box.options[0] and "default prior only" in model_box.options[0]
    assert any("Built-in model: Trained on synthetic curves of the default prior only" in c.value for c in at.caption)
    assert not any(b.key and b.key.startswith("manage_delete_model") for b in at.button)  # never deletable
    assert any("Upload a measured curve first" in i.value for i in at.info)

    meta = ModelMeta.read(SHIPPED)  # a curve of the default film, as a user would upload it
    from reflect_core.physics.presets import DEFAULT_FILM
    from reflect_core.physics.reflectivity import reflectivity

    r = reflectivity(DEFAULT_FILM.beam_array()[None], meta.q, meta.dq)[0]
    user_curves.save_curve(LOCAL_USER, "film.txt", csv_text(["Q", "R", "dR"], [meta.q, r, 0.05 * r]).encode())
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert {"Reduced χ²", "Points"} <= {m.label for m in at.metric}
    assert any("Inside the model's prior: 0.0% of its" in s.value for s in at.success)  # its own kind of curve
    assert any("68 % band covers 68 %" in c.value for c in at.caption)  # its band, calibrated: 68.0 % on test
    next(b for b in at.button if b.label == "Save to history").click().run()
    [saved] = [r for r in history.list_records(LOCAL_USER) if r["kind"] == "analysis"]
    assert saved["summary"]["prior_outside_fraction"] == 0.0
    assert saved["params"]["model_record"] == "builtin:default_prior"
    assert snapshot(SHIPPED) == before  # read-only: nothing written into the package
    assert not list(SHIPPED.parent.glob(".*"))


@pytest.mark.usefixtures("login_file")
def test_every_user_of_a_shared_deployment_is_offered_it():
    for name in ("alice", "bob"):
        at = log_in(name)
        at.switch_page("app_pages/models.py").run()
        assert not at.exception, at.exception
        [model_box] = [s for s in at.selectbox if s.label == "Model"]
        assert any("built-in" in option for option in model_box.options), model_box.options


def test_a_measured_curve_outside_the_default_prior_is_called_extrapolation(data, shared_data_path):
    user_curves.save_curve(LOCAL_USER, "REFL_212592.txt", shared_data_path.read_bytes())
    at = models_page()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any("Outside the model's prior" in w and "extrapolating" in w for w in warnings), warnings
    assert any("Does not explain the data" in w for w in warnings)  # and its χ² says the same
