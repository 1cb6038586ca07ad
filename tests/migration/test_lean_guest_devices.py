"""The lean Linux guest (../shared/guests/riscv64) migrated between two pemu processes
with a multiport virtio-serial port open in the guest and a virtio-balloon inflated
(~45 s: one boot, one migration).  After the switch-over the guest's open port still
carries data both ways through the destination's chardev, and the balloon keeps its
size and still follows a new target."""

from __future__ import annotations

import socket
import time

import pytest

from tests.migration.pemu_process import Pemu
from tests.migration.test_live_migration import _migrate, _wait_listening
from tests.system.conftest import GUESTS, OPENSBI

MIB = 1 << 20
PROMPT = "Enter 'help' for a list"  # the prompt itself ends no line


def _args(tmp_path, name: str) -> list[str]:
    return ["-M", "virt", "-m", "128M", "-kernel", str(GUESTS / "Image"),
            "-initrd", str(GUESTS / "initramfs.cpio.gz"), "-append", "console=ttyS0",
            "-device", "virtio-serial-device,id=ser0",
            "-chardev", f"socket,id=c0,path={tmp_path}/{name}.port,server=on,wait=off",
            "-device", "virtserialport,chardev=c0,name=org.pemu.port0",
            "-device", "virtio-balloon-device,id=balloon0"]


def _run(vm: Pemu, command: str, marker: str, timeout: float = 60) -> None:
    """Type ``command`` and wait for the shell's output ``marker`` (computed by the
    shell, so the echo of the typed line does not match)."""
    start = len(vm.lines)
    vm.send(command + "\n")
    vm.wait_line(marker, start, timeout)


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(30)
    return s


def _recv_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, data
        data += chunk
    return data


def _wait_balloon(vm: Pemu, actual: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while vm.qmp.cmd("query-balloon")["actual"] != actual:
        assert time.monotonic() < deadline, vm.qmp.cmd("query-balloon")
        time.sleep(0.2)


@pytest.mark.slow
def test_open_port_and_balloon_survive_live_migration(tmp_path):
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")
    src = Pemu(tmp_path, *_args(tmp_path, "a"), name="a")
    dst = None
    try:
        src.wait_line(PROMPT, timeout=300)
        host_a = _connect(str(tmp_path / "a.port"))
        # the guest opens the port and keeps it open (fd 3 of its shell)
        _run(src, "exec 3<>/dev/vport0p1; cat /sys/class/virtio-ports/vport0p1/name"
                  " && echo OPEN$((6*7))", "OPEN42")
        _run(src, "echo before >&3 && echo SENT$((6*7))", "SENT42")
        assert _recv_line(host_a) == b"before\n"
        src.qmp.cmd("balloon", value=96 * MIB)  # the guest gives 32 MiB back
        _wait_balloon(src, 96 * MIB)

        dst = Pemu(tmp_path, *_args(tmp_path, "b"), "-incoming",
                   f"unix:{tmp_path}/mig.sock", name="b")
        _wait_listening(str(tmp_path / "mig.sock"))
        _migrate(src, dst, f"unix:{tmp_path}/mig.sock")
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        host_b = _connect(str(tmp_path / "b.port"))
        _run(dst, "echo after >&3 && echo SENT$((7*7))", "SENT49")
        assert _recv_line(host_b) == b"after\n"  # the port is still open in the guest
        host_b.sendall(b"from host b\n")
        _run(dst, "read -r line <&3 && echo got-$line-$((8*8))", "got-from host b-64")
        assert dst.qmp.cmd("query-balloon")["actual"] == 96 * MIB
        dst.qmp.cmd("balloon", value=112 * MIB)  # the driver still answers
        _wait_balloon(dst, 112 * MIB)
        host_a.close()
        host_b.close()
    finally:
        assert src.finish() == 0
        if dst is not None:
            assert dst.finish() == 0
