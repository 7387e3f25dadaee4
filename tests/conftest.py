import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The bit-exact resume tests hold on CPU; on a machine with a GPU they must not drift onto it.
os.environ.setdefault("REFLECT_DEVICE", "cpu")

SHARED_DATA = ROOT.parent / "shared" / "data" / "REFL_212592_reduced.txt"
DEFAULT_Q = np.geomspace(0.0081, 0.1975, 308)


def random_stacks(rng, n_films, n_layers, sld=(-1.0, 7.0), thickness=(5.0, 200.0), roughness=(0.0, 15.0),
                  absorbing_fraction=0.5):
    """Random films (beam frame, substrate first): absorption in about half the
    layers, substrates above and below the ambient (so some Q are below the
    critical edge), ambients of air or D2O."""
    st = np.zeros((n_films, n_layers, 4))
    st[:, :, 0] = rng.uniform(*sld, (n_films, n_layers))
    st[:, :, 1] = rng.uniform(0, 0.5, (n_films, n_layers)) * (rng.random((n_films, n_layers)) < absorbing_fraction)
    st[:, :, 2] = rng.uniform(*thickness, (n_films, n_layers))
    st[:, :, 3] = rng.uniform(*roughness, (n_films, n_layers))
    st[:, -1, :] = 0.0
    st[:, -1, 0] = rng.choice([0.0, 6.36], n_films)
    return st


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory, monkeypatch):
    """Every test starts with an empty data directory of its own (tests that need a particular one set
    REFLECT_DATA_DIR themselves): kept work in progress (store.workspace) must not pass between tests."""
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def shared_data_path():
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


@pytest.fixture
def history_page(tmp_path, monkeypatch):
    """The History page in AppTest, over an empty data directory of this test's own."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/history.py").run()
    return at
