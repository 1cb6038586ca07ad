"""Fuzzing the QMP parser and dispatcher: garbage, huge, nested and wrongly typed input
always gets well-formed replies, and the monitor keeps serving afterwards."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.monitor.commands import SCHEMA
from pemu.monitor.json_stream import JSONStreamSplitter, ParseError
from pemu.monitor.qmp import CommandContext, QMPSession

from .tcg_machine import TCGLoopMachine

# Commands that write host files or end the machine are left out of random calls.
UNSAFE = {"memsave", "pmemsave", "quit", "blockdev-add", "blockdev-snapshot-sync",
          "chardev-add"}
SAFE_COMMANDS = sorted(set(SCHEMA.commands) - UNSAFE)


@pytest.fixture(scope="module")
def machine():
    m = TCGLoopMachine(1)
    yield m
    m.shutdown_threads()


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()
        self.cond = threading.Condition()

    def send(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def messages(self) -> list[dict]:
        return [json.loads(line) for line in bytes(self.data).split(b"\r\n") if line]


def _session(machine) -> QMPSession:
    cap = Capture()
    session = QMPSession(SCHEMA, lambda s: CommandContext(machine, None, s), cap.send)
    session.capture = cap  # type: ignore[attr-defined]
    session.negotiation_done()
    return session


def _check_reply(reply: dict) -> None:
    assert set(reply) <= {"return", "error", "id"}, reply
    if "error" in reply:
        assert set(reply["error"]) == {"class", "desc"}
        assert "internal error" not in reply["error"]["desc"], reply


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_garbage_bytes_never_break_the_splitter(data):
    splitter = JSONStreamSplitter(max_size=256, max_depth=8)
    for item in splitter.feed(data):
        if isinstance(item, ParseError):
            assert item.desc.startswith("JSON parse error")
    # after any garbage, a reset byte and a good object parse cleanly
    items = list(splitter.feed(b"\xff" + b'{"execute": "query-status"}'))
    assert items == [{"execute": "query-status"}]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(SAFE_COMMANDS) | st.text(max_size=20),
       arguments=st.none() | json_values | st.dictionaries(st.text(max_size=12), json_values,
                                                           max_size=4),
       request_id=json_values)
def test_random_requests_get_wellformed_replies(machine, name, arguments, request_id):
    if name in UNSAFE:
        return
    session = _session(machine)
    try:
        request = {"execute": name, "id": request_id}
        if arguments is not None:
            request["arguments"] = arguments
        reply = session.handle(request)
        _check_reply(reply)
        assert reply["id"] == request_id
    finally:
        if machine.run_state != "running":
            machine.cont()
        session.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b"1",
                                 b"nul", b"\xff", b"\n", b'"execute"', b"\xc3\x28"]),
                max_size=60))
def test_token_soup_then_a_valid_command(machine, tokens):
    session = _session(machine)
    try:
        for item in session._splitter.feed(b"".join(tokens)):
            reply = session.handle(item)
            if reply is not None:
                _check_reply(reply)
        # resynchronise the way a client does after an error, then it must still answer
        items = list(session._splitter.feed(b'\xff{"execute": "query-name", "id": 5}'))
        assert session.handle(items[-1]) == {"return": {}, "id": 5}
    finally:
        session.close()


def test_huge_and_deep_messages_are_refused_and_service_continues(machine):
    session = _session(machine)
    cap = session.capture  # type: ignore[attr-defined]
    session.feed(b"[" * 100_000 + b"]" * 100_000)
    session.feed(b'{"execute": "query-name", "arguments": {"x": "' + b"y" * (3 << 20) + b'"}}')
    session.feed(b'{"execute": "query-status", "id": "after"}')
    with cap.cond:
        cap.cond.wait_for(lambda: b'"after"' in cap.data, timeout=30)
    replies = cap.messages()
    session.close()
    assert "nesting" in replies[0]["error"]["desc"]
    assert "longer than" in replies[1]["error"]["desc"]
    assert replies[2]["id"] == "after" and "return" in replies[2]
