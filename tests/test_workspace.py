"""Work in progress kept per user (reflect_core.store.workspace): one folder per user, known
documents only, bounded size, and a bad file read as nothing kept with a reason."""

import pytest

from reflect_core.accounts.access import User
from reflect_core.base.errors import InvalidInput
from reflect_core.store import workspace

ALICE, BOB = User("alice", "user"), User("bob", "user")


def test_each_user_gets_back_only_their_own_document():
    workspace.save(ALICE, "explorer", {"film": {"layers": []}, "instrument": {"qmax": 0.2}})
    assert workspace.load(ALICE, "explorer") == ({"film": {"layers": []}, "instrument": {"qmax": 0.2}}, None)
    assert workspace.load(BOB, "explorer") == (None, None)


@pytest.mark.parametrize("name", ["../history", "history", "explorer.json", ""])
def test_only_known_documents(name):
    with pytest.raises(InvalidInput, match="unknown document"):
        workspace.save(ALICE, name, {})


def test_user_names_cannot_leave_the_workspace_folder():
    with pytest.raises(InvalidInput):
        workspace.workspace_file(User("../alice", "user"), "train")


def test_oversized_or_non_finite_documents_are_refused():
    with pytest.raises(InvalidInput, match="over the"):
        workspace.save(ALICE, "train", {"x": "a" * (workspace.MAX_BYTES + 1)})
    with pytest.raises(InvalidInput, match="cannot be kept as JSON"):
        workspace.save(ALICE, "train", {"x": float("nan")})


@pytest.mark.parametrize(("content", "reason"), [(b"[1, 2]", "not a JSON object"), (b"{", "not valid JSON"),
                                                  (b"\xff\xfe", "not valid JSON"), (b" " * (600 * 1024), "over")])
def test_a_bad_file_reads_as_nothing_kept_with_a_reason(content, reason):
    path = workspace.workspace_file(ALICE, "train")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    document, problem = workspace.load(ALICE, "train")
    assert document is None and reason in problem
