"""fd passing: a manager (this test) opens files and sockets and hands them to pemu
with -add-fd, fd= and SCM_RIGHTS; pemu never opens them by name."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from pemu.fdpass.fdsets import FdPassError, FdSets
from pemu.monitor.listener import PassedFds
from tests.hardening.test_sandbox import _backend
from tests.system.conftest import ROOT


def test_fdset_dup_matches_the_access_mode(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    sets = FdSets()
    ro = os.open(f, os.O_RDONLY)
    sets.add_fd(ro, 3, "ro")
    dup = sets.dup_from_set(3, os.O_RDONLY)
    assert dup != ro and os.read(dup, 1) == b"x"
    os.close(dup)
    with pytest.raises(FdPassError, match="no read-write fd"):
        sets.dup_from_set(3, os.O_RDWR)
    with pytest.raises(FdPassError, match="no such fd set"):
        sets.dup_from_set(4, os.O_RDONLY)
    with pytest.raises(FdPassError, match="standard I/O"):
        sets.add_fd(1)
    with pytest.raises(FdPassError, match="not a valid"):
        sets.add_fd(999_999)
    assert sets.query() == [{"fdset-id": 3, "fds": [{"fd": ro, "opaque": "ro"}]}]
    sets.remove_fd(3)
    assert sets.query() == []
    with pytest.raises(OSError):
        os.fstat(ro)  # remove-fd closed it


def test_a_client_cannot_make_pemu_hoard_fds():
    a, b = socket.socketpair(socket.AF_UNIX)
    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(PassedFds.MAX_PASSED_FDS + 4)]
    socket.send_fds(a, [b"x"], extra)
    passed = PassedFds()
    assert passed.recv(b) == b"x"
    kept = [passed.take() for _ in range(PassedFds.MAX_PASSED_FDS + 4)]
    assert kept.count(None) == 4  # the rest were never installed
    for fd in extra + [fd for fd in kept if fd is not None]:
        os.close(fd)
    # fds nobody took are closed with the session
    socket.send_fds(a, [b"y"], [a.fileno()])
    assert passed.recv(b) == b"y"
    waiting = passed._fds[0]
    passed.close_all()
    with pytest.raises(OSError):
        os.fstat(waiting)
    a.close()
    b.close()


class QMP:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        assert "QMP" in json.loads(self.file.readline())
        assert self("qmp_capabilities") == {"return": {}}

    def __call__(self, command: str, fds: list[int] | None = None, **arguments) -> dict:
        msg = json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [msg], fds)
        else:
            self.sock.sendall(msg)
        while True:
            reply = json.loads(self.file.readline())
            if "event" not in reply:
                return reply


def test_pemu_runs_on_fds_its_manager_passed(baremetal, tmp_path):
    disk, log, sock_path = tmp_path / "disk.raw", tmp_path / "hmp.log", tmp_path / "q.sock"
    disk.write_bytes(b"BOOT" + bytes(1 << 20))
    disk_fd = os.open(disk, os.O_RDWR)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
    log_reader = os.open(log, os.O_RDONLY)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(1)
    # pemu gets descriptors only: the files' names are gone before it starts
    disk.unlink()
    log.unlink()
    qmp_path = str(tmp_path / "qmp.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(baremetal), "-display", "none", "-serial", "null",
         *_backend(),
         "-add-fd", f"fd={disk_fd},set=1,opaque=disk", "-add-fd", f"fd={log_fd},set=2",
         "-drive", "file=/dev/fdset/1,format=raw,if=virtio,id=d0",
         "-chardev", "file,id=log,path=/dev/fdset/2", "-mon", "chardev=log,mode=readline",
         "-chardev", f"socket,id=passed,fd={listener.fileno()},server=on,wait=off",
         "-mon", "chardev=passed,mode=control",
         "-qmp", f"unix:{qmp_path},server=on,wait=off"],
        pass_fds=(disk_fd, log_fd, listener.fileno()), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    listener.close()
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(qmp_path):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        qmp = QMP(qmp_path)
        sets = qmp("query-fdsets")["return"]
        assert {s["fdset-id"]: [f.get("opaque") for f in s["fds"]] for s in sets} == \
            {1: ["disk"], 2: [None]}
        # the HMP greeting went into the passed-in (unlinked) log file
        assert b"monitor" in os.pread(log_reader, 4096, 0)
        # the listening socket pemu was given serves QMP
        passed = QMP(str(sock_path))
        assert passed("query-status")["return"]["status"] == "running"
        passed.sock.close()
        # SCM_RIGHTS: a new image file joins a set, and blockdev-add opens it
        extra = tmp_path / "extra.raw"
        extra.write_bytes(b"EXTRA" + bytes(65536))
        ro = os.open(extra, os.O_RDONLY)
        assert qmp("add-fd", opaque="x")["error"]["desc"] == \
            "No file descriptor supplied via SCM_RIGHTS"
        added = qmp("add-fd", fds=[ro], **{"fdset-id": 7, "opaque": "extra"})["return"]
        os.close(ro)
        extra.unlink()
        assert added["fdset-id"] == 7
        node = {"driver": "raw", "node-name": "x0", "read-only": True,
                "file": {"driver": "file", "filename": "/dev/fdset/7"}}
        assert qmp("blockdev-add", **node) == {"return": {}}
        rw = dict(node, **{"node-name": "x1", "read-only": False})
        assert "no read-write fd" in qmp("blockdev-add", **rw)["error"]["desc"]
        assert qmp("remove-fd", **{"fdset-id": 7, "fd": added["fd"]}) == {"return": {}}
        assert 7 not in [s["fdset-id"] for s in qmp("query-fdsets")["return"]]
        assert "not found" in qmp("remove-fd", **{"fdset-id": 7})["error"]["desc"]
        # getfd/closefd: a named socket, then chardev-add over it (as libvirt does)
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(tmp_path / "named.sock"))
        server.listen(1)
        assert qmp("getfd", fds=[server.fileno()], fdname="mysock") == {"return": {}}
        assert qmp("getfd", fds=[server.fileno()], fdname="spare") == {"return": {}}
        assert qmp("closefd", fdname="spare") == {"return": {}}
        assert "not found" in qmp("closefd", fdname="spare")["error"]["desc"]
        backend = {"type": "socket", "data": {"addr": {"type": "fd", "data": {"str": "mysock"}},
                                              "server": True, "wait": False}}
        assert qmp("chardev-add", id="c1", backend=backend)["return"] == {}
        server.close()
        with socket.socket(socket.AF_UNIX) as c:  # the name is ours, the socket pemu's
            c.connect(str(tmp_path / "named.sock"))
        # libvirt's migration: getfd on its monitor (a -chardev socket, not -qmp),
        # then migrate to fd:NAME; the stream arrives on the socket's other end
        ours, theirs = socket.socketpair()
        passed.file.close()  # (its makefile kept the first client's socket open)
        passed = QMP(str(sock_path))
        assert passed("getfd", fds=[theirs.fileno()], fdname="migrate") == {"return": {}}
        theirs.close()
        assert passed("migrate", uri="fd:migrate") == {"return": {}}
        ours.settimeout(60)
        stream = bytearray()
        while chunk := ours.recv(1 << 16):
            stream += chunk
        assert len(stream) > 4096
        # pemu closes the channel before it says completed (a file: or exec: target is
        # whole by then), so the end of the stream can arrive a moment before the status
        deadline = time.monotonic() + 30
        while (status := qmp("query-migrate")["return"]["status"]) == "device":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status == "completed"
        assert "not found" in passed("closefd", fdname="migrate")["error"]["desc"]  # taken
        passed.file.close()
        passed.sock.close()
        ours.close()
        assert qmp("quit") == {"return": {}}
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(disk_fd)
        os.close(log_fd)
        os.close(log_reader)


@pytest.mark.parametrize("spec, message", [
    ("fd=999999,set=1", "not a valid open file descriptor"),
    ("fd=2,set=1", "standard I/O stream"),
    ("set=1", "parameter 'fd' is missing"),
    ("fd=x,set=1", "expected a number"),
    ("fd=5,set=1,bogus=2", "invalid parameter 'bogus'"),
])
def test_bad_add_fd_options(spec, message):
    from pemu.cli.system_config import parse_system_argv
    with pytest.raises(FdPassError, match=message):
        parse_system_argv(["-add-fd", spec], "pemu-system-riscv64")
