"""History "Open" puts a training run's whole spec back into the Train form: every setting
and the prior bounds, compared field by field with the spec that trained the run."""

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_generate import SIMPLE

from reflect_core.accounts.access import LOCAL_USER
from reflect_core.data.generate import NR_FILE, SLD_FILE, dataset_from_dict, generate
from reflect_core.data.prior import free_parameters
from reflect_core.ml.spec import TrainSpec
from reflect_core.physics.film import Film, Layer
from reflect_core.store import history, user_files
from reflect_core.uploads import validate_upload
from ui.train_form import SPEC_KEY

APP = str(ROOT / "app.py")

# Not the explorer's default film: the form must take the film from the record too.
FILM = Film([Layer("Si", 2.07, 0.0, 0.0, 3.0), Layer("SiO2", 3.47, 0.0, 15.0, 2.5),
             Layer("polymer", 1.2, 0.001, 420.0, 8.0), Layer("D2O", 6.36, 0.0, 0.0, 0.0)],
            beam_from="substrate")
CHOSEN = {(1, "thickness"): [8.0, 25.0], (2, "sld"): [0.5, 2.5], (2, "thickness"): [300.0, 600.0],
          (1, "roughness"): [1.0, 6.0], (3, "sld"): [5.5, 6.4]}
NOT_DEFAULT = {
    "kind": "train",
    "dataset": {"prior": {"film": FILM.to_dict(),
                          "bounds": [{"i": i, "par": par, "bounds": CHOSEN[(i, par)]}
                                     for i, par in free_parameters(FILM) if (i, par) in CHOSEN]},
                "n": 1234, "seed": 7, "sampler": "uniform", "qmin": 0.009, "qmax": 0.21, "nq": 150,
                "spacing": "log", "dq": 0.05, "n_profile": 450, "exact": True,
                "noise": {"counts_at_unity": 3e6, "background": 2e-7}},
    "model": {"arch": "compact_cnn", "layers": 3, "channels": 24, "hidden": 128, "dropout": 0.15},
    "training": {"epochs": 17, "batch_size": 48, "lr": 3e-4, "weight_decay": 1e-4, "optimizer": "adam",
                 "val_fraction": 0.15, "test_fraction": 0.2, "seed": 3, "patience": 4, "checkpoint_every": 2},
}


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def open_record(at, record):
    at.switch_page("app_pages/history.py").run()
    at.multiselect(key="history_selected").set_value([record["id"]]).run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.exception, at.exception


def test_open_restores_every_setting_and_the_prior_bounds(app):
    trained = TrainSpec.parse(NOT_DEFAULT).to_dict()
    record = history.add(LOCAL_USER, "training", "custom prior", trained)
    open_record(app, record)
    assert not app.error, [e.value for e in app.error]
    restored = app.session_state[SPEC_KEY]
    for section in ("dataset", "model", "training"):
        for name, value in trained[section].items():
            assert restored[section][name] == value, f"{section}.{name}: restored {restored[section][name]!r}"
    assert restored == trained


def test_open_a_run_on_uploaded_arrays_restores_the_source(app, tmp_path):
    made = generate(dataset_from_dict({**SIMPLE, "n": 40, "seed": 2}), tmp_path / "made")
    nr_bytes, sld_bytes = (made / NR_FILE).read_bytes(), (made / SLD_FILE).read_bytes()
    shapes = [validate_upload(name, raw, role, 10_000_000).content.shape
              for name, raw, role in (("nr.npy", nr_bytes, "nr"), ("sld.npy", sld_bytes, "sld"))]
    user_files.save_array_pair(LOCAL_USER, ("a.npy", nr_bytes, shapes[0]), ("b.npy", sld_bytes, shapes[1]))
    folder = user_files.save_array_pair(LOCAL_USER, ("c.npy", nr_bytes, shapes[0]), ("d.npy", sld_bytes, shapes[1]))
    trained = TrainSpec.parse({"dataset": {"arrays": folder, "dq": 0.04, "beam_from": "ambient"},
                               "model": {"layers": 2, "channels": 8, "hidden": 32},
                               "training": {"epochs": 9, "batch_size": 16}}).to_dict()
    record = history.add(LOCAL_USER, "training", "on arrays", trained)
    open_record(app, record)
    assert not app.error, [e.value for e in app.error]
    assert app.session_state[SPEC_KEY] == trained  # the second of two sets, its dq, the network and training


def test_open_a_modal_run_restores_its_backend_and_gpu_tier(tmp_path, monkeypatch):
    """With Modal configured (tokens in a secrets file, never in the environment), a run made on an
    H100 opens with "Modal GPU" and that tier chosen, whatever the form showed before."""
    from reflect_core import jobs

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('MODAL_TOKEN_ID = "ak-test"\nMODAL_TOKEN_SECRET = "as-test"\n')
    monkeypatch.setenv("REFLECT_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        trained = TrainSpec.parse({**NOT_DEFAULT, "backend": "modal", "gpu": "H100"}).to_dict()
        record = history.add(LOCAL_USER, "training", "on an H100", trained)
        open_record(at, record)
        assert not at.error, [e.value for e in at.error]
        assert at.session_state[SPEC_KEY] == trained
    finally:
        jobs.backends.unregister("modal")
