"""Hub storage (store.hub) against a fake HfApi that keeps files in a local folder: round trips,
failures that surface as HubError (failed upload at flush, a slow call within its timeout, offline
mode at once), the model card, ownership of Hub models, deletes, and the Models page with a Hub
that lists a model and with one that does not answer."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import httpx2
import huggingface_hub.constants
import pytest
from conftest import ROOT
from huggingface_hub import errors
from streamlit.testing.v1 import AppTest

from reflect_core import jobs
from reflect_core.accounts.access import LOCAL_USER, User
from reflect_core.ml.meta import ModelMeta
from reflect_core.store import history, hub, records, user_files
from reflect_core.store.hub import HubError, HubRunStore, hub_from_config, model_card
from reflect_core.store.records import record_dir

RUN = "20250101-000000-000001-abcd"


class FakeHfApi:
    """The subset of HfApi that HubRunStore uses; files live under ``root``. ``fail_uploads`` makes
    commits fail, ``delay`` makes every call that long."""

    def __init__(self, root: Path):
        self.root, self.fail_uploads, self.delay, self.calls, self.commits = root, False, 0.0, [], 0
        self.private = None

    def _enter(self, name):
        self.calls.append(name)
        time.sleep(self.delay)

    def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
        self._enter("create_repo")
        self.private = private

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, run_as_future=False):
        self._enter("create_commit")
        operations = list(operations)

        def commit():
            if self.fail_uploads:
                response = httpx2.Response(500, request=httpx2.Request("POST", "https://huggingface.co/api/commit"))
                raise errors.HfHubHTTPError("500 Server Error: commit failed", response=response)
            for op in operations:
                with op.as_file() as handle:
                    data = handle.read()
                (self.root / op.path_in_repo).parent.mkdir(parents=True, exist_ok=True)
                (self.root / op.path_in_repo).write_bytes(data)
            self.commits += 1
        if not run_as_future:
            return commit()
        future = Future()

        def run():
            try:
                future.set_result(commit())
            except BaseException as exc:  # noqa: BLE001
                future.set_exception(exc)
        threading.Thread(target=run, daemon=True).start()
        return future

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, cache_dir=None, local_dir=None):
        self._enter("hf_hub_download")
        source = self.root / filename
        if not source.is_file():
            raise errors.EntryNotFoundError(f"{filename} not found")
        target = Path(local_dir or cache_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)

    def list_repo_files(self, repo_id, repo_type=None):
        self._enter("list_repo_files")
        return [str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()]

    def delete_folder(self, path_in_repo, repo_id, *, repo_type=None, commit_message=None):
        self._enter("delete_folder")
        if not (self.root / path_in_repo).is_dir():
            raise errors.EntryNotFoundError(f"{path_in_repo} not found")
        shutil.rmtree(self.root / path_in_repo)


@pytest.fixture(autouse=True)
def online(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the fake never reaches the network


@pytest.fixture
def api(tmp_path):
    (tmp_path / "repo").mkdir()
    return FakeHfApi(tmp_path / "repo")


@pytest.fixture
def store(api):
    hub_store = HubRunStore("me/reflect-runs", "hf_fake", api=api, timeout_s=2.0)
    hub_store.min_commit_interval_s = 0.0
    return hub_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real tiny trained model with test metrics (its folder), made once."""
    import os

    from test_history_app import trained_record

    old = os.environ.get("REFLECT_DATA_DIR")
    os.environ["REFLECT_DATA_DIR"] = str(tmp_path_factory.mktemp("trained"))
    try:
        return record_dir(trained_record("tiny", 1)) / "model"
    finally:
        os.environ.pop("REFLECT_DATA_DIR") if old is None else os.environ.__setitem__("REFLECT_DATA_DIR", old)


def test_put_get_flush_round_trip_in_a_private_repo(store, api):
    store.put(RUN, "progress.json", b'{"epoch": 1}')
    store.put(RUN, "log.txt", b"hello")
    store.flush()
    assert store.get(RUN, "progress.json") == b'{"epoch": 1}' and store.get(RUN, "log.txt") == b"hello"
    assert store.get(RUN, "absent.json") is None
    assert api.private is True and (api.root / "runs" / RUN / "log.txt").is_file()


def test_puts_close_together_are_sent_once_with_the_latest_bytes(store, api):
    store.min_commit_interval_s = 3600.0
    store.put(RUN, "checkpoint.pt", b"1")
    for n in range(2, 20):
        store.put(RUN, "checkpoint.pt", str(n).encode())  # kept, not committed: the interval has not passed
    store.flush()
    assert api.commits == 2 and store.get(RUN, "checkpoint.pt") == b"19"


def test_a_failing_upload_surfaces_as_hub_error_at_flush(store, api):
    api.fail_uploads = True
    store.put(RUN, "progress.json", b"{}")  # does not raise: the commit runs in the background
    with pytest.raises(HubError, match="commit failed"):
        store.flush()
    api.fail_uploads = False
    store.flush()  # reported once


def test_a_slow_hub_gives_hub_error_within_the_timeout(api):
    api.delay = 30.0
    slow = HubRunStore("me/reflect-runs", "hf_fake", api=api, timeout_s=0.5)
    for call in (slow.list_models, lambda: slow.get(RUN, "log.txt"), lambda: slow.delete_run(RUN)):
        start = time.monotonic()
        with pytest.raises(HubError, match="did not answer within 0.5 s"):
            call()
        assert time.monotonic() - start < 1.5


def test_offline_mode_gives_hub_error_at_once_without_a_call(store, api, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for call in (store.list_models, lambda: store.get(RUN, "x"), lambda: store.put(RUN, "x", b""),
                 lambda: store.delete_run(RUN)):
        start = time.monotonic()
        with pytest.raises(HubError, match="offline"):
            call()
        assert time.monotonic() - start < 0.2
    assert api.calls == []


def test_model_dir_round_trip_list_and_delete(store, api, trained, tmp_path):
    store.put_model_dir(RUN, trained)
    assert api.commits == 1 and store.list_models() == [RUN]
    card = (api.root / "runs" / RUN / "model" / "README.md").read_text()
    meta = ModelMeta.read(trained)
    assert f"{meta.metrics['model']['rmse']:.4g}" in card and meta.model.arch in card and "Q grid" in card
    dest = store.get_model_dir(RUN, tmp_path / "cache" / "model")
    assert (dest / "model.pt").read_bytes() == (trained / "model.pt").read_bytes()
    calls = len(api.calls)
    assert store.get_model_dir(RUN, dest) == dest and len(api.calls) == calls  # cached
    store.delete_run(RUN)
    assert store.list_models() == []
    store.delete_run(RUN)  # nothing there: not an error
    with pytest.raises(HubError, match="no model"):
        store.get_model_dir(RUN, tmp_path / "other")


def test_model_card_has_the_metrics_prior_grid_and_resolution(trained):
    meta = ModelMeta.read(trained)
    card = model_card(meta, RUN)
    assert card.startswith("---") and "neutron-reflectometry" in card
    for key in ("rmse", "mae", "r2"):
        assert f"{meta.metrics['model'][key]:.4g}" in card and f"{meta.metrics['baseline'][key]:.4g}" in card
    assert f"{meta.q.size} points" in card and f"{100 * meta.dq:.3g} % FWHM" in card and "Prior" in card


def test_configuration_and_bad_names():
    assert hub_from_config({}) is None and hub_from_config({"HF_TOKEN": "x"}) is None
    assert hub_from_config({"HF_TOKEN": "x", "HF_REPO_ID": "me/runs"}).repo_id == "me/runs"
    with pytest.raises(HubError, match="owner/name"):
        hub_from_config({"HF_TOKEN": "x", "HF_REPO_ID": "no-slash"})
    with pytest.raises(HubError):
        HubRunStore("me/runs", None, api=object()).put("../up", "x", b"")
    with pytest.raises(HubError):
        HubRunStore("me/runs", None, api=object()).put(RUN, "../../x", b"")


def hub_record(user: User, run_id: str, name: str) -> dict:
    """A completed training record whose run is not on this disk (its model only on the Hub)."""
    return history.add(user, "training", name, {}, {"state": "completed"}, files=f"runs/{run_id}", run_id=run_id)


def test_users_see_only_hub_models_of_their_own_runs_and_deletes_reach_the_hub(store, trained):
    alice, bob = User("alice"), User("bob")
    theirs = "20250101-000000-000002-beef"
    for run_id in (RUN, theirs):
        store.put_model_dir(run_id, trained)
    mine = hub_record(alice, RUN, "alice's")
    hub_record(bob, theirs, "bob's")
    [entry] = user_files.hub_models(alice, store.list_models())
    assert entry.hub and entry.record["id"] == mine["id"]
    assert user_files.hub_models(User("carol"), store.list_models()) == []
    folder = user_files.hub_model(alice, entry, store)
    assert folder == hub.hub_cache_dir(RUN) / "model" and ModelMeta.read(folder).q.size
    assert user_files.delete_model(alice, mine["id"], store) is None
    assert store.list_models() == [theirs] and not hub.hub_cache_dir(RUN).exists()


def test_a_failing_hub_delete_is_reported_and_the_local_delete_happens(store, api, trained, monkeypatch):
    alice = User("alice")
    store.put_model_dir(RUN, trained)
    record = hub_record(alice, RUN, "run")
    monkeypatch.setattr(jobs, "delete", lambda run_id, user: None)
    api.delay, store.timeout_s = 5.0, 0.3
    message = records.delete_run(alice, RUN, hub=store)
    assert "copy on the Hub remains" in message and "did not answer" in message
    assert history.find_by_run(alice, RUN) is None and record["run_id"] == RUN


def models_page(monkeypatch, store) -> AppTest:
    monkeypatch.setattr(hub, "hub_from_config", lambda config: store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    return at


def test_the_models_page_lists_a_hub_model_tagged_from_the_hub(store, trained, monkeypatch):
    store.put_model_dir(RUN, trained)
    hub_record(LOCAL_USER, RUN, "trained on Modal")
    at = models_page(monkeypatch, store)
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    assert any("trained on Modal" in m.value and "from the Hub" in m.value for m in at.markdown)
    assert not any("missing" in e.value for e in at.error)  # the Hub copy stands in for the lost local files
    [model_box] = [s for s in at.selectbox if s.label == "Model"]
    assert "from the Hub" in model_box.options[0]
    assert (hub.hub_cache_dir(RUN) / "model" / "model.json").is_file()  # Predict used it: downloaded once


def test_the_models_page_renders_within_2_s_with_an_unreachable_hub(store, api, monkeypatch):
    api.delay = 60.0  # like a real client with credentials and no network
    at = models_page(monkeypatch, store)
    start = time.monotonic()
    at.switch_page("app_pages/models.py").run()
    elapsed = time.monotonic() - start
    assert not at.exception, at.exception
    captions = [c.value for c in at.main.caption if "Hub" in c.value]  # the sidebar lists settings too
    assert len(captions) == 1 and "has not answered yet" in captions[0], captions
    print(f"Models page with an unreachable Hub: {elapsed:.2f} s")
    assert elapsed < 2.0, elapsed
    start = time.monotonic()
    at.run()  # the listing is asked once per minute, in the background
    assert time.monotonic() - start < 2.0 and len([c for c in at.main.caption if "Hub" in c.value]) == 1
    assert api.calls.count("list_repo_files") == 1
