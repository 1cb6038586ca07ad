"""Live migration between pemu processes with a bare-metal heartbeat (ticker.S, which
dirties a 64 KiB buffer all the time and checks its RAM counter against a register at
every tick): UNIX socket, then TCP on to a third process; file: streams damaged on
purpose; a cancelled migration and a killed destination leave the source running."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.migration.pemu_process import Pemu
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=500000))  # 50 ms ticks


def _args(elf: str) -> list[str]:
    return ["-M", "virt", "-m", "64M", "-bios", "none", "-kernel", elf]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(path: str, timeout: float = 120) -> None:
    """A destination started a moment ago listens only once it has started up (seconds
    on a loaded host): migrating before that fails at once with ENOENT."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"nothing listens on {path}"
        time.sleep(0.1)


def _migrate(src: Pemu, dst: Pemu, uri: str) -> dict:
    src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": 300})
    src.qmp.cmd("migrate", uri=uri)
    info = src.wait_migration({"completed", "failed"})
    assert info["status"] == "completed", info
    return info


def test_chained_live_migration_unix_then_tcp(ticker, tmp_path):
    sock = str(tmp_path / "mig.sock")
    port = _free_port()
    a = Pemu(tmp_path, *_args(ticker), name="a")
    b = Pemu(tmp_path, *_args(ticker), "-incoming", f"unix:{sock}", name="b")
    c = Pemu(tmp_path, *_args(ticker), "-incoming", f"tcp:127.0.0.1:{port}", name="c")
    try:
        a.wait_ticks(5)
        assert b.qmp.cmd("query-status")["status"] == "inmigrate"
        info = _migrate(a, b, f"unix:{sock}")
        assert info["ram"]["total"] >= 64 << 20
        assert 0 < info["ram"]["transferred"] < 8 << 20  # zero pages cost nothing
        assert a.qmp.cmd("query-status")["status"] == "postmigrate"
        time.sleep(0.5)  # the source's last console line reaches us
        last_a = a.ticks()[-1]
        got = b.wait_ticks(5)
        # the heartbeat goes on from the source's count, with no restart
        # (a tick line cut in two by the switch-over - part sent by each side - is lost)
        assert last_a <= got[0] <= last_a + 2 and got == list(range(got[0], got[0] + len(got)))
        assert b.qmp.cmd("query-status")["status"] == "running"
        events = [e["data"]["status"] for e in a.qmp.events if e["event"] == "MIGRATION"]
        assert events[0] == "setup" and "active" in events and events[-1] == "completed"

        _migrate(b, c, f"tcp:127.0.0.1:{port}")
        time.sleep(0.5)
        last_b = b.ticks()[-1]
        got_c = c.wait_ticks(5)
        assert last_b <= got_c[0] <= last_b + 2
        assert got_c == list(range(got_c[0], got_c[0] + len(got_c)))
        a.qmp.execute("quit")
        b.qmp.execute("quit")
    finally:
        for vm in (a, b, c):
            vm.finish()
    assert c.proc.returncode == 0, c.err


def test_source_survives_a_cancelled_migration_and_a_dead_destination(ticker, tmp_path):
    sock = str(tmp_path / "slow.sock")
    src = Pemu(tmp_path, *_args(ticker), name="src")
    dst = Pemu(tmp_path, *_args(ticker), "-incoming", f"unix:{sock}", name="dst")
    try:
        src.wait_ticks(3)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100_000})  # ~slow
        _wait_listening(sock)
        src.qmp.cmd("migrate", uri=f"unix:{sock}")
        src.wait_migration({"active"})
        src.qmp.cmd("migrate_cancel")
        assert src.wait_migration({"cancelled", "failed"})["status"] == "cancelled"
        assert src.qmp.cmd("query-status")["status"] == "running"
        src.wait_ticks(3)
        # the destination saw a stream end in the middle: an error, a non-zero exit
        dst.proc.wait(60)
        assert dst.proc.returncode != 0
        time.sleep(0.2)
        assert b"truncated" in dst.err or b"migration" in dst.err, dst.err

        if os.path.exists(sock):
            os.unlink(sock)  # the dead destination's: wait for dst2's own
        dst2 = Pemu(tmp_path, *_args(ticker), "-incoming", f"unix:{sock}", name="dst2")
        try:
            dst2.qmp.cmd("query-status")
            _wait_listening(sock)
            src.qmp.cmd("migrate", uri=f"unix:{sock}")
            src.wait_migration({"active"})
            dst2.proc.kill()
            info = src.wait_migration({"failed"})
            assert "error-desc" in info
            assert src.qmp.cmd("query-status")["status"] == "running"
            src.wait_ticks(3)
        finally:
            dst2.finish()
    finally:
        src.finish()
        dst.finish()


def test_damaged_streams_fail_the_destination(ticker, tmp_path):
    path = tmp_path / "state.bin"
    src = Pemu(tmp_path, *_args(ticker), name="src")
    try:
        src.wait_ticks(3)
        assert src.qmp.hmp(f"migrate file:{path}") == ""  # HMP waits for the end
        assert "Migration status: completed" in src.qmp.hmp("info migrate")
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    finally:
        src.finish()
    data = path.read_bytes()
    cases = {"truncated": data[:len(data) * 2 // 3],
             "bit-flipped": data[:5000] + bytes([data[5000] ^ 4]) + data[5001:],
             "not-a-stream": b"hello" * 100}
    for name, damaged in cases.items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(damaged)
        r = system_conftest.run_pemu(*_args(ticker), "-nographic", "-incoming",
                                     f"file:{bad}", timeout=60)
        assert r.returncode != 0, name
        assert b"migration" in r.stderr, (name, r.stderr)
    # and the undamaged file restores: the heartbeat continues
    good = Pemu(tmp_path, *_args(ticker), "-incoming", f"file:{path}", name="good")
    try:
        assert good.wait_ticks(3)[0] > 1
    finally:
        good.finish()
