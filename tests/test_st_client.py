"""bench/st_client.py against a real `streamlit run` of a throwaway script (not the app): the protocol
handling the load test relies on. One server for the module; each test opens its own session."""

import asyncio
import sys
import textwrap

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import st_client  # noqa: E402

SCRIPT = '''
import uuid

import streamlit as st

def first():
    n = st.number_input("Count", value=3, step=1)
    word = st.text_input("Word", value="hi")
    st.write(f"count is {n * 2}, word {word}")
    with st.form("f"):
        inside = st.text_input("Inside")
        sent = st.form_submit_button("Go")
    st.write(f"form {inside} {sent}")
    if st.button("Again"):  # a run the script restarts itself
        st.session_state["again"] = st.session_state.get("again", 0) + 1
        st.rerun()
    st.write(f"again {st.session_state.get('again', 0)}")
    if st.button("Boom"):
        raise ValueError("boom on purpose")

def second():
    st.write(f"second page, session {st.session_state.setdefault('mine', uuid.uuid4().hex)}")

st.navigation([st.Page(first, title="First", default=True), st.Page(second, title="Second")]).run()
'''


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    script = tmp_path_factory.mktemp("st_client") / "tiny_app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with st_client.serve(script, start_timeout=60) as (address, _):
        yield address


def session_run(url, steps):
    """Open a session, do the first run, then ``await steps(session)``; closed at the end; 30 s at most."""
    async def go():
        session = await st_client.Session.open(url, timeout=15)
        try:
            first = await session.rerun()
            assert first.status == "ok" and first.seconds > 0
            return await steps(session)
        finally:
            await session.close()
    return asyncio.run(asyncio.wait_for(go(), 30))


def markdown(session, start):
    return next(t for t in session.texts() if t.startswith(start))


def test_a_widget_set_reruns_with_the_new_value_and_keeps_it(url):
    async def steps(s):
        count = s.find("number_input", label="Count")
        assert (count.value, markdown(s, "count is")) == (3, "count is 6, word hi")
        run = await s.set(count, 5)
        assert run.status == "ok" and run.contains("count is 10")
        assert markdown(s, "count is") == "count is 10, word hi"
        await s.set(s.find("text_input", label="Word"), "yo")  # Count is not sent again: it stays 5
        assert markdown(s, "count is") == "count is 10, word yo"
    session_run(url, steps)


def test_a_form_sends_its_values_with_its_submit_button_only(url):
    async def steps(s):
        inside = s.find("text_input", label="Inside")
        go = s.find("button", label="Go")
        assert go.proto.is_form_submitter and inside.proto.form_id == go.proto.form_id == "f"
        await s.submit({inside: "abc"}, go)
        assert markdown(s, "form") == "form abc True"
        await s.rerun()  # the trigger is gone, the submitted value stays
        assert markdown(s, "form") == "form abc False"
    session_run(url, steps)


def test_a_run_the_script_restarts_is_awaited_to_its_end(url):
    async def steps(s):
        run = await s.click(s.find("button", label="Again"))
        assert markdown(s, "again") == "again 1"
        assert run.messages > len(s.elements)  # two runs' messages: the restarted one and the final one
    session_run(url, steps)


def test_exceptions_are_exposed(url):
    async def steps(s):
        assert not s.exceptions()
        await s.click(s.find("button", label="Boom"))
        [error] = s.exceptions()
        assert error.proto.type == "ValueError" and "boom on purpose" in error.text
    session_run(url, steps)


def test_pages_are_switched_and_sessions_kept_apart(url):
    async def steps(s):
        assert set(s.pages) == {"First", "Second"}
        await s.switch_page("Second")
        mine = markdown(s, "second page")
        assert not s.find_all("number_input")
        await s.rerun()  # stays on the page it is on
        assert markdown(s, "second page") == mine
        other = await st_client.Session.open(url, timeout=15)
        try:
            await other.rerun(page_hash=s.pages["Second"])
            assert markdown(other, "second page") != mine  # another session, its own session state
        finally:
            await other.close()
    session_run(url, steps)


def test_a_missing_server_is_a_clear_error():
    with pytest.raises(OSError):
        asyncio.run(st_client.Session.open(f"http://127.0.0.1:{st_client.free_port()}", timeout=5))
