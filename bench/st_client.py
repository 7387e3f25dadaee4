"""A minimal Streamlit client that speaks the browser's websocket protocol, for load tests.

It connects to ``ws://HOST:PORT/_stcore/stream`` (Streamlit 1.67 serves it with Starlette and uvicorn;
the client is the ``websockets`` package, a dependency of Streamlit) and exchanges Streamlit's own
protobufs: it sends a ``BackMsg.rerun_script`` (a ``ClientState``: widget states, the page to run)
and reads ``ForwardMsg``s until the run's ``script_finished``. What it learned from the server:

- Nothing arrives on connect: the browser asks for the first run, as ``rerun()`` does here.
- No cookie, XSRF token or Origin header is needed for a session: the XSRF token (the second
  ``Sec-WebSocket-Protocol`` entry) only unlocks ``st.login``'s user cookie, and a missing Origin is
  allowed. The first subprotocol, ``streamlit``, is echoed back.
- Widgets the client leaves out of ``WidgetStates`` keep their previous value on the server, so
  only the widgets set here are sent (the browser sends all of them; the server cannot tell).
  A value the script itself changes (``set_value`` in the returned proto) replaces the one set here.
- Triggers (buttons, a form's submit button) are sent for one run only, as the browser does;
  values typed into a form go with its submit.
- The server sends a cached element as a ``ref_hash`` only when the client lists its hash in
  ``cached_message_hashes``; this client lists none, so every run arrives in full (more bytes than a
  browser with a warm cache, the same server work).
- A script's own ``st.rerun``/``st.switch_page`` ends the run with ``FINISHED_EARLY_FOR_RERUN`` and
  starts another (a new ``new_session``): the wait goes on until a run finishes for good.
- Pages (``st.navigation``) are chosen by ``page_script_hash``, from the ``navigation`` message; every
  rerun repeats the current page's hash, or the server would run the default page.
- Not emulated: custom components never answer (a browser's component iframe can send a value and a
  rerun), fragments' ``run_every`` timers are not fired, and no file is uploaded.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench_cloud import free_port  # bench/ is on the path of every bench script (and of the test)
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

DONE = {ForwardMsg.FINISHED_SUCCESSFULLY: "ok", ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
        ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "ok"}
# How each widget's value travels in a WidgetState (Streamlit's value_type for that widget).
VALUE_FIELD = {"number_input": "double_value", "text_input": "string_value", "text_area": "string_value",
               "checkbox": "bool_value", "selectbox": "string_value", "radio": "string_value",
               "multiselect": "string_array_value", "button": "trigger_value", "download_button": "trigger_value",
               "dataframe": "string_value"}  # a data editor: its edits as JSON (edited_rows, added_rows, deleted_rows)
TEXT_FIELDS = ("body", "label", "code_text", "message")


class ProtocolError(RuntimeError):
    """The server closed the connection, sent something unexpected, or did not finish in time."""


@dataclass(eq=False)  # hashable by identity: submit() takes {element: value}
class Element:
    """One element or block of the page as the last run left it."""

    path: tuple[int, ...]
    kind: str       # the proto's field name: "markdown", "number_input", "alert", "exception", "block:form", ...
    proto: object   # the element's own message (NumberInput, Markdown, ...)
    fragment_id: str = ""  # the st.fragment that drew it: its widgets rerun only that fragment

    @property
    def id(self) -> str:
        return getattr(self.proto, "id", "")

    @property
    def label(self) -> str:
        return getattr(self.proto, "label", "")

    @property
    def key(self) -> str | None:
        """The user key of a widget (ids are ``$$ID-<hash>-<key>``, key ``None`` when there is none)."""
        parts = self.id.split("-", 2)
        return parts[2] if len(parts) == 3 and parts[2] != "None" else None

    @property
    def disabled(self) -> bool:
        return bool(getattr(self.proto, "disabled", False))

    @property
    def text(self) -> str:
        """What a reader sees: body, label, code or message, and the options of a choice."""
        parts = [str(getattr(self.proto, name)) for name in TEXT_FIELDS if hasattr(self.proto, name)]
        if self.kind == "exception":
            parts.insert(0, self.proto.type)
        parts += list(getattr(self.proto, "options", ()))
        return " ".join(p for p in parts if p)

    @property
    def value(self):
        """The value the server drew: the one the script set (``set_value``), else the widget's default.
        A value this client sent and the script left alone is not echoed back (the browser keeps it)."""
        proto = self.proto
        if getattr(proto, "set_value", False):
            if self.kind in ("selectbox", "radio"):
                return proto.raw_value
            if self.kind == "multiselect":
                return list(proto.raw_values)
            return proto.value
        default = getattr(proto, "default", None)
        if self.kind in ("selectbox", "radio") and proto.options:
            return proto.options[default]
        if self.kind == "multiselect":
            return [proto.options[i] for i in default]
        return default


@dataclass
class Run:
    """One finished run, as seen by the client."""

    status: str                       # "ok" or "compile error"
    seconds: float                    # request sent -> script_finished received
    messages: int
    raw: list[bytes] = field(repr=False)  # every ForwardMsg of the run, serialized, for leak checks
    fragment: bool = False            # a fragment's run (only that part of the page was redrawn)

    def contains(self, token: str) -> bool:
        return self.contains_bytes(token.encode())

    def contains_bytes(self, needle: bytes) -> bool:
        return any(needle in payload for payload in self.raw)


class Session:
    """One browser tab: ``await Session.open(url)``, then ``rerun``, ``set``, ``click``, ``submit``,
    ``switch_page``; ``elements`` is the page after the last run. Not thread-safe; one run at a time."""

    def __init__(self, ws, timeout: float):
        self._ws, self.timeout = ws, timeout
        self.elements: dict[tuple[int, ...], Element] = {}
        self.pages: dict[str, str] = {}     # page title -> page_script_hash (from st.navigation)
        self.page_hash = ""                 # the page the last run ran
        self._values: dict[str, WidgetState] = {}   # values set here, sent until the widget is gone

    @classmethod
    async def open(cls, url: str, timeout: float = 30.0) -> Session:
        """``url`` like ``http://127.0.0.1:8501``; the websocket is ``/_stcore/stream`` under it."""
        ws_url = url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        ws = await asyncio.wait_for(connect(ws_url, subprotocols=["streamlit"], max_size=None,
                                            open_timeout=timeout), timeout)
        return cls(ws, timeout)

    async def close(self) -> None:
        await self._ws.close()

    # --- reading the page ----------------------------------------------------------------------
    def find_all(self, kind: str | None = None, label: str | None = None, key: str | None = None,
                 contains: str | None = None) -> list[Element]:
        """Elements in page order; ``label`` exact, ``contains`` a substring of ``text``."""
        return [e for _, e in sorted(self.elements.items())
                if (kind is None or e.kind == kind) and (label is None or e.label == label)
                and (key is None or e.key == key) and (contains is None or contains in e.text)]

    def find(self, kind: str | None = None, label: str | None = None, key: str | None = None,
             contains: str | None = None) -> Element:
        found = self.find_all(kind, label, key, contains)
        if not found:
            raise LookupError(f"no element kind={kind} label={label!r} key={key} contains={contains!r}")
        return found[0]

    def texts(self) -> list[str]:
        return [e.text for _, e in sorted(self.elements.items()) if e.text]

    def exceptions(self) -> list[Element]:
        return self.find_all("exception")

    # --- acting --------------------------------------------------------------------------------
    async def set(self, widget: Element, value) -> Run:
        """Give a widget a value (kept for later runs, as the browser keeps it) and rerun."""
        self._remember(widget, value)
        return await self.rerun(fragment_id=widget.fragment_id)

    async def click(self, button: Element) -> Run:
        return await self.rerun(triggers=[button], fragment_id=button.fragment_id)

    async def submit(self, values: dict[Element, object], button: Element) -> Run:
        """A form: its widgets' values and its submit button, in one run (forms send nothing before)."""
        for widget, value in values.items():
            self._remember(widget, value)
        return await self.rerun(triggers=[button])

    async def switch_page(self, title: str) -> Run:
        if title not in self.pages:
            raise LookupError(f"no page {title!r}; pages: {sorted(self.pages)}")
        return await self.rerun(page_hash=self.pages[title])

    async def rerun(self, triggers: list[Element] = (), page_hash: str | None = None, fragment_id: str = "") -> Run:
        """Send a rerun request (of one fragment, as the browser does for a widget in it) and wait for
        the run's end. ProtocolError on a timeout or disconnect, after which the session is out of
        step with the server: open another."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.page_hash if page_hash is None else page_hash
        state.fragment_id = fragment_id
        present = {e.id for e in self.elements.values()}
        self._values = {wid: ws for wid, ws in self._values.items() if wid in present or not self.elements}
        state.widget_states.widgets.extend(self._values.values())
        for button in triggers:
            trigger = state.widget_states.widgets.add()
            trigger.id, trigger.trigger_value = button.id, True
        start = time.perf_counter()
        try:
            await self._ws.send(msg.SerializeToString())
            return await asyncio.wait_for(self._collect(start), self.timeout)
        except ProtocolError:
            raise
        except TimeoutError:
            raise ProtocolError(f"no script_finished within {self.timeout:g} s") from None
        except Exception as exc:  # websockets' ConnectionClosed and the like
            raise ProtocolError(f"{type(exc).__name__}: {exc}") from None

    # --- internals -----------------------------------------------------------------------------
    def _remember(self, widget: Element, value) -> None:
        if widget.kind not in VALUE_FIELD:
            raise ValueError(f"setting a {widget.kind} is not supported")
        state = WidgetState(id=widget.id)
        name = VALUE_FIELD[widget.kind]
        if name == "string_array_value":
            state.string_array_value.data.extend(value)
        else:
            setattr(state, name, value)
        self._values[widget.id] = state

    async def _collect(self, start: float) -> Run:
        raw: list[bytes] = []
        fragments: set[str] = set()  # a fragment run: its elements not drawn again are gone
        drawn: set[tuple[int, ...]] = set()
        while True:
            payload = await self._ws.recv()
            if isinstance(payload, str):
                raise ProtocolError("a text frame: Streamlit sends binary protobufs only")
            raw.append(payload)
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = msg.new_session.page_script_hash
                fragments = set(msg.metadata.run.fragment_ids)
                if not fragments:
                    self.elements = {}  # a full run redraws the page
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in msg.navigation.app_pages}
            elif kind == "delta":
                drawn.add(tuple(msg.metadata.delta_path))
                self._apply(tuple(msg.metadata.delta_path), msg.delta)
            elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
                self.elements[(-1,)] = Element((-1,), "exception", msg.session_event.script_compilation_exception)
            elif kind == "script_finished" and msg.script_finished in DONE:
                self.elements = {path: e for path, e in self.elements.items()
                                 if path in drawn or e.fragment_id not in fragments}
                return Run(DONE[msg.script_finished], time.perf_counter() - start, len(raw), raw,
                           fragment=msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)

    def _apply(self, path: tuple[int, ...], delta) -> None:
        which = delta.WhichOneof("type")
        if which == "new_element":
            kind = delta.new_element.WhichOneof("type")
            element = Element(path, kind, getattr(delta.new_element, kind), delta.fragment_id)
            if element.id in self._values and getattr(element.proto, "set_value", False):
                del self._values[element.id]  # the script set it: the browser shows (and sends) the new value
        elif which == "add_block":
            kind = delta.add_block.WhichOneof("type")
            element = Element(path, f"block:{kind}", getattr(delta.add_block, kind) if kind else delta.add_block,
                              delta.fragment_id)
        else:
            return
        self.elements[path] = element


@contextmanager
def serve(script: Path, env: dict | None = None, log: Path | None = None, start_timeout: float = 120.0,
          options: dict | None = None):
    """``streamlit run SCRIPT`` on 127.0.0.1 (loopback only) at a free port; yields (url, process).
    ``options``: more Streamlit settings, {"runner.postScriptGC": "false"}. The server is terminated
    on exit (killed if it does not stop within 10 s), whatever happened."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]
    command += [f"--{name}={value}" for name, value in (options or {}).items()]
    out = open(log, "wb") if log else subprocess.DEVNULL
    server = subprocess.Popen(command, cwd=Path(script).parent, env=dict(os.environ, **(env or {})),
                              stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode} before it was ready")
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {start_timeout:g} s")
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if log:
            out.close()
