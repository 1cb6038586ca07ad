"""The ``return-path`` migration capability (libvirt turns it on at both ends of every
migration that is not tunnelled): the destination confirms that it loaded the whole
state, and only then does the source complete and stop for good.  A destination that
takes the whole stream but never confirms it (a sink that drops the connection, as a
destination that failed at the last section would) makes the source's migration fail,
and the source's guest runs on: this small guest's stream fits in the socket buffers,
so without the confirmation the source would have taken it for delivered."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.migration.pemu_process import Pemu
from tests.migration.test_live_migration import _args, _wait_listening
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program

RETURN_PATH = [{"capability": "return-path", "state": True}]


def _sink(path: str) -> threading.Thread:
    """A listener that reads one connection until it has been quiet for three seconds
    after its first bytes, then closes it without a word.  (The source may take a
    while to start sending: it saves its translations when migration starts, which on
    a loaded host waited longer than the one quiet second this allowed at first.)"""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        conn.settimeout(60.0)
        try:
            if conn.recv(1 << 16):
                conn.settimeout(3.0)
                while conn.recv(1 << 16):
                    pass
        except TimeoutError:
            pass
        conn.close()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=500000))


def test_return_path_confirms_the_load(ticker, tmp_path):
    sink_sock, good_sock = str(tmp_path / "sink.sock"), str(tmp_path / "good.sock")
    src = Pemu(tmp_path, *_args(ticker), name="src")
    good = Pemu(tmp_path, *_args(ticker), "-incoming", "defer", name="good")
    try:
        caps = {c["capability"] for c in src.qmp.cmd("query-migrate-capabilities")}
        # listed only because pemu does it: libvirt turns on what is listed
        assert "return-path" in caps and "pause-before-switchover" not in caps, caps
        for vm in (src, good):
            vm.qmp.cmd("migrate-set-capabilities", capabilities=RETURN_PATH)
        good.qmp.cmd("migrate-incoming", uri=f"unix:{good_sock}")
        src.wait_ticks(3)
        sink = _sink(sink_sock)
        src.qmp.cmd("migrate", uri=f"unix:{sink_sock}")
        info = src.wait_migration({"completed", "failed"})
        assert info["status"] == "failed", info
        assert "did not load" in info["error-desc"], info
        sink.join(30)
        assert src.qmp.cmd("query-status")["status"] == "running"
        src.wait_ticks(3)  # the source's guest runs on

        _wait_listening(good_sock)
        src.qmp.cmd("migrate", uri=f"unix:{good_sock}")
        info = src.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", info
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        good.wait_ticks(3)
        assert good.qmp.cmd("query-status")["status"] == "running"
    finally:
        for vm in (src, good):
            vm.finish()
