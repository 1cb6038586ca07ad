"""CPR (live update of pemu itself): the bare-metal heartbeat (ticker.S: prints a tick
every 50 ms, keeps it in a register and in RAM, dirties 64 KiB all the time) moves to a
new pemu process without a copy of its RAM.

cpr-transfer: the guest's memfd goes over the cpr channel, the devices and CPUs over
the main one; the new process maps the same memory (same inode), the heartbeat goes on
with no gap over a second, the old process ends in postmigrate and exits on quit.
cpr-reboot: the state goes to a file, the RAM stays in the memory-backend-file.
Bad input: a cpr channel closed early, a descriptor that is not memory, a RAM of
another size: the destination exits with an error, the source runs on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from tests.migration.pemu_process import QMP, Pemu, memfd_ram_inode
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program
pemu_cmd, pemu_env = system_conftest.pemu_cmd, system_conftest.pemu_env
MEMFD = ["-object", "memory-backend-memfd,id=ram0,size=64M",
         "-machine", "memory-backend=ram0"]


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=500000))  # 50 ms ticks


def _args(elf: str, *extra: str) -> list[str]:
    return ["-M", "virt", "-m", "64M", "-bios", "none", "-kernel", elf, *extra]


def _cpr_incoming(path: str) -> str:
    return json.dumps({"channel-type": "cpr",
                       "addr": {"transport": "socket", "type": "unix", "path": path}})


def _channels(main: str, cpr: str) -> list[dict]:
    return [{"channel-type": "main", "addr": {"transport": "socket", "type": "unix",
                                              "path": main}},
            {"channel-type": "cpr", "addr": {"transport": "socket", "type": "unix",
                                             "path": cpr}}]


def _wait_path(path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"nothing listens on {path}"
        time.sleep(0.05)


def _exit_error(vm: Pemu, timeout: float = 60) -> str:
    assert vm.proc.wait(timeout) == 1
    time.sleep(0.2)  # the stderr pump
    return vm.err.decode()


def test_cpr_transfer_moves_the_guest_without_copying_its_ram(ticker, tmp_path):
    main, cpr = str(tmp_path / "main.sock"), str(tmp_path / "cpr.sock")
    a = Pemu(tmp_path, *_args(ticker, *MEMFD), name="a")
    b = Pemu(tmp_path, *_args(ticker, *MEMFD), "-incoming", f"unix:{main}",
             "-incoming", _cpr_incoming(cpr), name="b")
    try:
        a.wait_ticks(5)
        _wait_path(cpr)  # b waits there before it builds its machine (and its QMP)
        assert not os.path.exists(b.qmp_path)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        assert a.qmp.cmd("query-migrate-parameters")["mode"] == "cpr-transfer"
        a.qmp.cmd("migrate", channels=_channels(main, cpr))
        info = a.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", info
        assert a.qmp.cmd("query-status")["status"] == "postmigrate"
        assert "runs in another pemu" in a.qmp.execute("cont")["error"]["desc"]
        # RAM went by descriptor: the 64 KiB the ticker keeps dirtying are not in the
        # stream (only the boot ROM's page and the device state are)
        assert info["ram"]["normal-bytes"] < 64 << 10, info
        assert info["ram"]["transferred"] < 64 << 10, info
        assert memfd_ram_inode(a.proc.pid) == memfd_ram_inode(b.proc.pid)
        time.sleep(0.3)  # the source's last console line reaches us
        last_a, last_seen = a.ticks()[-1], a.stamps[-1]
        got = b.wait_ticks(3)
        assert last_a <= got[0] <= last_a + 2, (last_a, got)
        assert got == list(range(got[0], got[0] + len(got)))
        first_b = next(b.stamps[i] for i, line in enumerate(b.lines)
                       if line == f"T{got[0]:08x}")
        gap = first_b - last_seen
        print(f"cpr-transfer: source downtime {info['downtime']} ms, heartbeat gap "
              f"{gap * 1000:.0f} ms (ticks every 50 ms)")
        assert gap < 1.0
        assert a.finish() == 0  # QEMU's procedure: quit the old process
        got = b.wait_ticks(5)  # the RAM outlives the old process
        assert got == list(range(got[0], got[0] + len(got)))
    finally:
        a.finish()
        b.finish()


def _open_inodes(pid: int) -> dict[int, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out[os.stat(f"/proc/{pid}/fd/{fd}").st_ino] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return out


class _ConsoleClient:
    """A client of the console socket that reads all the time (the UART's byte-sized
    writes fill a UNIX socket's buffer in a few hundred bytes otherwise)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.data = bytearray()
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # the test closed it
            while chunk := self.sock.recv(4096):
                self.data += chunk
        self.closed = True

    def ticks(self) -> list[int]:
        return [int(x[1:], 16) for x in bytes(self.data).decode(errors="replace").split()
                if len(x) == 9 and x[0] == "T"]

    def wait_ticks(self, n: int, timeout: float = 60) -> list[int]:
        want = len(self.ticks()) + n
        deadline = time.monotonic() + timeout
        while len(self.ticks()) < want:
            assert not self.closed, "the console connection was closed"
            assert time.monotonic() < deadline, bytes(self.data[-200:])
            time.sleep(0.05)
        return self.ticks()


def _pty_path(vm: Pemu) -> str:
    line = vm.lines[vm.wait_line(r"char device redirected to .* \(label p0\)")]
    return line.split("redirected to ")[1].split()[0]


def test_cpr_transfer_hands_disk_console_and_pty_over(ticker, tmp_path):
    """What the new pemu takes over instead of opening by name: the disk image
    (renamed after start: the new pemu, given the old name, holds the same file), the
    console's UNIX socket chardev (the client connected to the old pemu reads the
    heartbeat on from the new one over the same connection, after the old process
    exited) and a pty (the same /dev/pts/N).  tests/migration/test_cpr_handover.py
    has a Linux guest use its disk and TAP across the update."""
    disk, console = tmp_path / "disk.raw", str(tmp_path / "console.sock")
    disk.write_bytes(bytes(1 << 20))
    devices = ["-drive", f"file={disk},format=raw,if=none,id=d0",
               "-device", "virtio-blk-device,drive=d0",
               "-chardev", f"socket,id=c0,path={console},server=on,wait=off",
               "-serial", "chardev:c0", "-chardev", "pty,id=p0"]
    main, cpr = str(tmp_path / "main.sock"), str(tmp_path / "cpr.sock")
    a = Pemu(tmp_path, *_args(ticker, *MEMFD, *devices), name="a")
    b = client = None
    try:
        _wait_path(console)
        client = _ConsoleClient(console)
        before = client.wait_ticks(3)
        inode = disk.stat().st_ino
        disk.rename(tmp_path / "moved.raw")
        b = Pemu(tmp_path, *_args(ticker, *MEMFD, *devices), "-incoming", f"unix:{main}",
                 "-incoming", _cpr_incoming(cpr), name="b")
        _wait_path(cpr)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        a.qmp.cmd("migrate", channels=_channels(main, cpr))
        info = a.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", (info, b.err)
        assert inode in _open_inodes(b.proc.pid)
        assert _pty_path(b) == _pty_path(a)
        assert a.finish() == 0  # its copies of the descriptors are gone with it
        after = client.wait_ticks(5)
        assert after[:len(before)] == before
        assert after == list(range(after[0], after[0] + len(after))), after
        assert os.path.exists(console)  # the old pemu left the path to the new one
    finally:
        if client is not None:
            client.sock.close()
        a.finish()
        if b is not None:
            b.finish()


def test_cpr_reboot_keeps_ram_in_the_file(ticker, tmp_path):
    ram, state = str(tmp_path / "guest.ram"), str(tmp_path / "vm.state")
    backend = ["-object", f"memory-backend-file,id=ram0,size=64M,mem-path={ram},share=on",
               "-machine", "memory-backend=ram0"]
    a = Pemu(tmp_path, *_args(ticker, *backend), name="a")
    try:
        a.wait_ticks(5)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-reboot")
        a.qmp.cmd("migrate", uri=f"file:{state}")
        info = a.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", info
        assert a.qmp.cmd("query-status")["status"] == "postmigrate"
        time.sleep(0.3)
        last_a = a.ticks()[-1]
        assert a.finish() == 0
    finally:
        a.finish()
    assert os.path.getsize(state) < 64 << 10  # the RAM stayed in guest.ram
    b = Pemu(tmp_path, *_args(ticker, *backend), "-incoming", f"file:{state}", name="b")
    try:
        got = b.wait_ticks(3)
        assert last_a <= got[0] <= last_a + 2, (last_a, got)
    finally:
        b.finish()


def test_cpr_transfer_refused_without_shared_ram(ticker, tmp_path):
    a = Pemu(tmp_path, *_args(ticker), name="a")
    try:
        a.wait_ticks(2)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        reply = a.qmp.execute("migrate", channels=_channels("/nonexistent/m",
                                                            "/nonexistent/c"))
        assert "not compatible with CPR" in reply["error"]["desc"], reply
        a.wait_ticks(2)
    finally:
        a.finish()


def _fake_source(path: str, header: bytes, fds: list[int]) -> str:
    _wait_path(path)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        if header:
            socket.send_fds(s, [struct.pack("<I", len(header)) + header], fds)
        else:
            return ""  # closed at once
        s.settimeout(60)
        return s.makefile("rb").readline().decode()


def test_destination_refuses_a_bad_cpr_channel(ticker, tmp_path):
    def incoming(name: str) -> list[str]:
        return ["-incoming", f"unix:{tmp_path / name}.main",
                "-incoming", _cpr_incoming(f"{tmp_path / name}.cpr")]

    b = Pemu(tmp_path, *_args(ticker, *MEMFD), *incoming("closed"), name="closed")
    _fake_source(f"{tmp_path / 'closed'}.cpr", b"", [])
    assert "closed before the RAM descriptors came" in _exit_error(b)
    b.finish()

    c = Pemu(tmp_path, *_args(ticker, *MEMFD), *incoming("pipe"), name="pipe")
    cpr = f"{tmp_path / 'pipe'}.cpr"
    r, w = os.pipe()
    try:
        header = json.dumps({"magic": "pemu-cpr", "version": 1,
                             "blocks": [{"name": "ram", "size": 64 << 20}]}).encode()
        reply = _fake_source(cpr, header, [r])
    finally:
        os.close(r)
        os.close(w)
    assert reply.startswith("error:") and "not a memfd" in reply, reply
    assert "not a memfd" in _exit_error(c)
    c.finish()


def test_source_runs_on_when_the_destination_refuses_the_ram(ticker, tmp_path):
    main, cpr = str(tmp_path / "main.sock"), str(tmp_path / "cpr.sock")
    a = Pemu(tmp_path, *_args(ticker, *MEMFD), name="a")
    big = ["-object", "memory-backend-memfd,id=ram0,size=128M",
           "-machine", "memory-backend=ram0"]
    b = Pemu(tmp_path, "-M", "virt", "-m", "128M", "-bios", "none", "-kernel", ticker,
             *big, "-incoming", f"unix:{main}", "-incoming", _cpr_incoming(cpr), name="b")
    try:
        a.wait_ticks(3)
        _wait_path(cpr)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        a.qmp.cmd("migrate", channels=_channels(main, cpr))
        info = a.wait_migration({"completed", "failed"})
        assert info["status"] == "failed" and "no such block" in info["error-desc"], info
        assert "no such block" in _exit_error(b)
        assert a.qmp.cmd("query-status")["status"] == "running"
        a.wait_ticks(3)  # never stopped
    finally:
        a.finish()
        b.finish()


def test_pemu_live_update_command(ticker, tmp_path):
    """The user-level command: same command line (same QMP path) for the new pemu."""
    a = Pemu(tmp_path, *_args(ticker, *MEMFD), name="vm")
    log = tmp_path / "new.log"
    new_pid = None
    try:
        a.wait_ticks(3)
        a.qmp  # noqa: B018 - connected before the new pemu takes the socket path
        r = subprocess.run(
            [sys.executable, "-m", "pemu.cli.live_update", "--qmp", a.qmp_path,
             "--log", str(log), "--", *pemu_cmd("-nographic", "-qmp",
                                                f"unix:{a.qmp_path},server=on,wait=off",
                                                *_args(ticker, *MEMFD))],
            capture_output=True, text=True, timeout=180, env=pemu_env())
        assert r.returncode == 0, r.stderr
        new_pid = int(r.stdout.split("pemu process ")[1].split()[0])
        assert a.proc.wait(30) == 0  # the old process quit
        time.sleep(0.3)
        last_a = a.ticks()[-1]
        new = QMP(a.qmp_path)  # the path is the new process's now
        assert new.cmd("query-status")["status"] == "running"
        deadline = time.monotonic() + 60
        while True:
            ticks = [int(x[1:], 16) for x in log.read_text(errors="replace").split()
                     if len(x) == 9 and x[0] == "T"]
            if len(ticks) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert ticks and last_a <= ticks[0] <= last_a + 2, (last_a, ticks)
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
        new.execute("quit")
        new.close()
    finally:
        a.finish()
        if new_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(new_pid, signal.SIGKILL)
