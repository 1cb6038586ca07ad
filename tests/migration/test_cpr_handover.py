"""A live update (cpr-transfer) of the lean Linux guest keeps its disk and its TAP link
without reopening them by name (~40 s: one boot, one update).

The disk image is unlinked after the guest wrote to it: a new pemu that opened it by
path would fail to start.  With root and ``unshare -n`` the guest also has a TAP
interface in a private network namespace, not multi-queue, which a second process
cannot attach while the old one holds it.  After the update the guest reads what the
host wrote into the unlinked file, writes to it again, and pings the namespace's
address over the same TAP."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.migration.pemu_process import Pemu
from tests.migration.test_lean_guest_devices import PROMPT, _run
from tests.net.test_tap import can_unshare_net
from tests.system.conftest import GUESTS, OPENSBI, pemu_cmd

HOST, GUEST = "192.168.78.1", "192.168.78.2"
SECTOR = 512
NAMESPACE = ("ip link set lo up && ip tuntap add dev ptap0 mode tap && "
             f"ip addr add {HOST}/24 dev ptap0 && ip link set ptap0 up && exec \"$@\"")


def _args(disk: str, tap: bool) -> list[str]:
    args = ["-M", "virt", "-m", "128M", "-kernel", str(GUESTS / "Image"),
            "-initrd", str(GUESTS / "initramfs.cpio.gz"), "-append", "console=ttyS0",
            "-object", "memory-backend-memfd,id=ram0,size=128M",
            "-machine", "memory-backend=ram0",
            "-drive", f"file={disk},format=raw,if=none,id=d0",
            "-device", "virtio-blk-device,drive=d0"]
    if tap:
        args += ["-netdev", "tap,id=n0,ifname=ptap0,script=no,downscript=no",
                 "-device", "virtio-net-device,netdev=n0"]
    return args


def _sector(fd: int, n: int) -> bytes:
    return os.pread(fd, SECTOR, n * SECTOR)


@pytest.mark.slow
def test_live_update_keeps_an_unlinked_disk_and_the_tap_link(tmp_path):
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")
    tap = can_unshare_net()  # without it: the disk only
    disk = str(tmp_path / "disk.raw")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    main, cpr = str(tmp_path / "main.sock"), str(tmp_path / "cpr.sock")

    def in_namespace(*args: str) -> list[str]:
        return ["unshare", "-n", "sh", "-c", NAMESPACE, "sh", *pemu_cmd(*args)]

    a = Pemu(tmp_path, *_args(disk, tap), name="a",
             command=in_namespace if tap else pemu_cmd)
    b = None
    host_fd = os.open(disk, os.O_RDWR)
    try:
        a.wait_line(PROMPT, timeout=300)
        _run(a, "echo before | dd of=/dev/vda bs=512 seek=1 2>/dev/null && sync && "
                "echo W$((6*7))", "W42")
        assert _sector(host_fd, 1).startswith(b"before\n")
        if tap:
            _run(a, f"ifconfig eth0 {GUEST} netmask 255.255.255.0 up && "
                    f"ping -c 1 -W 5 {HOST} >/dev/null && echo P$((6*7))", "P42")
        os.unlink(disk)  # only the open descriptors reach the image now
        os.pwrite(host_fd, b"from-the-host\n".ljust(SECTOR, b"\0"), 2 * SECTOR)

        def nsenter(*args: str) -> list[str]:
            return ["nsenter", f"--net=/proc/{a.proc.pid}/ns/net", *pemu_cmd(*args)]

        b = Pemu(tmp_path, *_args(disk, tap), "-incoming", f"unix:{main}", "-incoming",
                 json.dumps({"channel-type": "cpr", "addr": {"transport": "socket",
                                                             "type": "unix", "path": cpr}}),
                 name="b", command=nsenter if tap else pemu_cmd)
        deadline = time.monotonic() + 120
        while not os.path.exists(cpr):
            assert time.monotonic() < deadline and b.proc.poll() is None, b.err
            time.sleep(0.05)
        a.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        a.qmp.cmd("migrate", channels=[
            {"channel-type": "main",
             "addr": {"transport": "socket", "type": "unix", "path": main}},
            {"channel-type": "cpr",
             "addr": {"transport": "socket", "type": "unix", "path": cpr}}])
        info = a.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", (info, b.err)
        assert a.finish() == 0

        start = len(b.lines)
        _run(b, "echo 3 >/proc/sys/vm/drop_caches && dd if=/dev/vda bs=512 skip=2 "
                "count=1 2>/dev/null | head -n 1 && echo R$((6*7))", "R42")
        assert any(line.endswith("from-the-host") for line in b.lines[start:]), \
            b.lines[start:]
        _run(b, "echo after | dd of=/dev/vda bs=512 seek=3 2>/dev/null && sync && "
                "echo W$((7*7))", "W49")
        assert _sector(host_fd, 3).startswith(b"after\n")
        if tap:
            _run(b, f"ping -c 1 -W 5 {HOST} >/dev/null && echo P$((7*7))", "P49")
    finally:
        os.close(host_fd)
        a.finish()
        if b is not None:
            assert b.finish() == 0
