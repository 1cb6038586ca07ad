"""QMP input is strict JSON: a key twice, a number that overflows to infinity and the
NaN/Infinity literals are refused (one error reply each), and service goes on."""

from __future__ import annotations

import json

import pytest

from pemu.monitor.json_stream import JSONStreamSplitter, ParseError
from tests.monitor.tcg_machine import TCGLoopMachine
from tests.monitor.test_qmp_fuzz import _session

REFUSED = {
    b'{"execute": "query-status", "execute": "quit"}': "duplicate key",
    b'{"execute": "query-status", "arguments": {"a": {"b": 1, "b": 2}}}': "duplicate key",
    b'{"execute": "query-status", "id": 1e309}': "number out of range",
    b'{"execute": "query-status", "id": -1e400}': "number out of range",
    b'{"execute": "query-status", "id": NaN}': "not valid JSON",
    b'{"execute": "query-status", "id": -Infinity}': "not valid JSON",
}


@pytest.mark.parametrize("message", list(REFUSED))
def test_splitter_refuses(message):
    (result,) = list(JSONStreamSplitter().feed(message))
    assert isinstance(result, ParseError) and REFUSED[message] in result.desc


def test_large_finite_numbers_still_parse():
    (result,) = list(JSONStreamSplitter().feed(b'{"id": 1.5e308, "n": 123456789012345678901}'))
    assert result == {"id": 1.5e308, "n": 123456789012345678901}


def test_session_answers_with_errors_and_valid_json_only():
    machine = TCGLoopMachine(1)
    try:
        session = _session(machine)
        cap = session.capture  # type: ignore[attr-defined]
        for message in REFUSED:
            session.feed(message)
        session.feed(b'{"execute": "query-status", "id": "after"}')
        with cap.cond:
            cap.cond.wait_for(lambda: b'"after"' in cap.data, timeout=30)
        session.close()
        lines = [line for line in bytes(cap.data).split(b"\r\n") if line]
        # strict parse of what went out: no Infinity/NaN ever reaches a client
        replies = [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in lines]
        assert [r["error"]["class"] for r in replies[:-1]] == ["GenericError"] * len(REFUSED)
        assert replies[-1]["id"] == "after" and replies[-1]["return"]["status"]
    finally:
        machine.shutdown_threads()
