"""Training on arrays a user uploaded instead of generated ones."""

import io
import json

import numpy as np
import pytest
from test_generate import SIMPLE

from reflect_core.accounts.access import User
from reflect_core.base.job_protocol import PrintReporter
from reflect_core.data.generate import dataset_from_dict, generate
from reflect_core.ml.meta import ModelMeta
from reflect_core.ml.pipeline import run_job
from reflect_core.ml.spec import SpecError, TrainSpec
from reflect_core.store import user_files
from reflect_core.uploads import validate_upload


def test_uploaded_pair_trains_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    made = generate(dataset_from_dict({**SIMPLE, "n": 120, "seed": 8}), tmp_path / "made")
    nr_bytes, sld_bytes = (made / "nr_train.npy").read_bytes(), (made / "sld_train.npy").read_bytes()
    nr = validate_upload("curves.npy", nr_bytes, "nr", 10_000_000)
    sld = validate_upload("profiles.npy", sld_bytes, "sld", 10_000_000)
    alice = User("alice")
    folder = user_files.save_array_pair(alice, ("curves.npy", nr_bytes, nr.content.shape),
                                        ("profiles.npy", sld_bytes, sld.content.shape))
    assert user_files.array_sets(alice)[0][0] == folder and user_files.array_sets(User("bob")) == []
    spec = {"dataset": {"arrays": folder, "dq": 0.0294855},
            "model": {"layers": 1, "channels": 4, "hidden": 16}, "training": {"epochs": 2, "batch_size": 16}}
    summary = run_job(TrainSpec.parse(spec), tmp_path / "run", PrintReporter(stream=io.StringIO()))
    assert summary["n_curves"] == 120 and ModelMeta.read(tmp_path / "run" / "model").metrics["n_test"] == 12
    assert not (tmp_path / "run" / "data").exists()  # nothing generated


@pytest.mark.parametrize("dataset, message", [
    ({"arrays": "../outside"}, "not an upload folder"),
    ({"arrays": "runs/x"}, "not an upload folder"),
    ({"arrays": "uploads/alice/arrays/x", "n": 5}, "only dq and beam_from"),
    ({"arrays": "uploads/alice/arrays/x", "dq": -1}, "dataset.dq"),
])
def test_array_source_is_validated(tmp_path, monkeypatch, dataset, message):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    with pytest.raises(SpecError, match=message):
        TrainSpec.parse({"dataset": dataset})


def test_mismatched_pair_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path))
    from reflect_core.uploads import UploadError

    with pytest.raises(UploadError, match="120 curves but"):
        user_files.save_array_pair(User("alice"), ("a.npy", b"", (120, 2, 308)), ("b.npy", b"", (100, 2, 900)))
    assert np.asarray(user_files.array_sets(User("alice"))).size == 0


@pytest.mark.parametrize("stats_name", ["stats.json", "stats.npy"])
def test_cli_imports_pyreflect_weights_for_a_user(tmp_path, monkeypatch, stats_name):
    """The command line takes pyreflect's own pickled .npy stats (read in a separate, limited
    process) as well as .json."""
    from test_uploads import PYREFLECT_SAVED_STATS, STATS, pyreflect_weights_bytes

    from reflect_core.cli import main
    from reflect_core.uploads import pyreflect_available

    if not pyreflect_available():
        pytest.skip("pyreflect is not installed here")  # its CNN class is needed to check the weights
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    weights = tmp_path / "cnn.pth"
    weights.write_bytes(pyreflect_weights_bytes())
    stats = tmp_path / stats_name
    stats.write_bytes(json.dumps(STATS).encode() if stats_name.endswith(".json") else PYREFLECT_SAVED_STATS)
    assert main(["import-pyreflect", str(weights), str(stats), "--user", "alice"]) == 0
    [(record, model_dir)] = user_files.model_records(User("alice"))
    assert record["owner"] == "alice" and (model_dir / "model.pt").exists()
    assert ModelMeta.read(model_dir).normalization.z_max == 640.0
    assert user_files.model_records(User("bob")) == []


def test_cli_refuses_a_stats_pickle_that_kills_its_reader_in_one_line(tmp_path, monkeypatch, capsys):
    """A pickle that exhausts the isolated reader's memory is one line and exit status 2; the
    command line itself carries on (it is the parent, and nothing was imported)."""
    from test_upload_attacks import memory_flood_npy

    from reflect_core.cli import main
    from reflect_core.uploads import pickled_stats

    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(pickled_stats, "MEMORY_BYTES", 48 * 2**20)  # the flood below needs ~64 MB
    (tmp_path / "cnn.pth").write_bytes(b"never read")
    (tmp_path / "stats.npy").write_bytes(memory_flood_npy())
    assert main(["import-pyreflect", str(tmp_path / "cnn.pth"), str(tmp_path / "stats.npy"), "--user", "alice"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: stats.npy: its pickle needs more memory"), err
    assert not (tmp_path / "data" / "uploads" / "alice" / "models").exists() or not any(
        (tmp_path / "data" / "uploads" / "alice" / "models").iterdir())
