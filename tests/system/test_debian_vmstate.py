"""Debian's riscv64 guest saved, restored and moved while it runs (issue 24), on ONE
boot: the heartbeat (``pemu.tick=1``: ``PEMU-TICK n`` once a second) and the guest's
own shell show what the guest saw.

  savevm at tick N, a file written afterwards, loadvm: the ticks resume right after N
  and the file is gone;
  live migration over a UNIX socket to a second pemu while the guest dirties memory:
  the heartbeat continues on the destination without a gap over the downtime limit
  plus a second, a checksum of guest memory taken in the guest matches, and the source
  ends in postmigrate;
  live migration on over TCP to a third pemu, the same checks;
  live update (cpr-transfer) to a new pemu process on the same disk image: the guest
  RAM (a memfd: every process here runs with memory-backend-memfd) is handed over,
  not copied; the heartbeat goes on with no gap over a second beyond its period, a
  block the guest wrote to the disk just before is read back (O_DIRECT) after it, and
  the old process exits on quit.  The migrations above then start from the new one.

About 150 s of boot and 70 s of checks on the native backend (slow).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from itertools import pairwise

import pytest

from pemu.block.qcow2 import create_qcow2
from pemu.guests import guest_file
from tests.migration.pemu_process import Pemu
from tests.system.conftest import OPENSBI

DEBIAN = guest_file("riscv64-debian")
pytestmark = pytest.mark.slow
TICK = r"^PEMU-TICK (\d+)$"
DOWNTIME_MS = 300


def _native() -> bool:
    from pemu.accel.tcg.backend.x86_64 import host_supported

    return host_supported()


def _args(disk: str) -> list[str]:
    return ["-accel", "tcg,backend=native", "-M", "virt", "-m", "512M",
            "-object", "memory-backend-memfd,id=ram0,size=512M",
            "-machine", "memory-backend=ram0",
            "-kernel", str(DEBIAN / "Image"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
            "-append", "console=ttyS0 pemu.tick=1",
            "-drive", f"file={disk},format=qcow2,if=none,id=d0",
            "-device", "virtio-blk-device,drive=d0"]


def _ticks_from(vm: Pemu, start: int) -> list[tuple[float, int]]:
    out = []
    for i in range(start, len(vm.lines)):
        m = re.match(TICK, vm.lines[i])
        if m:
            out.append((vm.stamps[i], int(m.group(1))))
    return out


def _last_tick(vm: Pemu) -> tuple[int, int]:
    """(line index, tick) of the last heartbeat printed so far."""
    for i in range(len(vm.lines) - 1, -1, -1):
        m = re.match(TICK, vm.lines[i])
        if m:
            return i, int(m.group(1))
    raise AssertionError("no heartbeat yet")


def _heartbeat_period(vm: Pemu) -> float:
    """The longest gap between two of the last ten heartbeats as the host saw them, and
    never less than two seconds: one between beats, one for where the stop falls."""
    stamps = [at for at, _ in _ticks_from(vm, 0)][-11:]
    return max([2.0, *(b - a + 1 for a, b in pairwise(stamps))])


def _shell(vm: Pemu, command: str, timeout: float = 600) -> str:
    """Run a command in the guest's shell; returns its one tagged output line.  The tag
    is computed by the shell, so the echo of the typed line never matches it."""
    start = len(vm.lines)
    vm.send(f"echo RESULT-$((6*7)) $({command})\n")
    i = vm.wait_line(r"^RESULT-42( |$)", start, timeout)  # lines come stripped
    return vm.lines[i][len("RESULT-42 "):]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _migrate(src: Pemu, dst: Pemu, uri: str) -> dict:
    """Migrate to completion; returns query-migrate's answer."""
    src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": DOWNTIME_MS})
    src.qmp.cmd("migrate", uri=uri)
    deadline = time.monotonic() + 300
    while (info := src.qmp.cmd("query-migrate"))["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert info["status"] == "completed", info
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    return info


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if not _native():
        pytest.skip("the native TCG backend needs an x86-64 Linux host")
    tmp = tmp_path_factory.mktemp("debian-vmstate")
    disk = str(tmp / "disk.qcow2")
    create_qcow2(disk, 64 << 20)
    vm = Pemu(tmp, *_args(disk), name="a")
    vm.wait_line("pemu: interactive shell", timeout=1200)
    vm.wait_line(TICK, timeout=60)
    booted = Booted(tmp, disk, vm)
    yield booted
    booted.vm.finish()


class Booted:
    """The one boot: ``vm`` is the process that runs the guest now (a live update
    moves it to another)."""

    def __init__(self, tmp, disk: str, vm: Pemu) -> None:
        self.tmp, self.disk, self.vm = tmp, disk, vm


def test_loadvm_returns_to_the_saved_heartbeat_and_forgets_later_files(guest):
    vm = guest.vm
    assert _shell(vm, "uname -m") == "riscv64"
    _, n = _last_tick(vm)
    assert vm.qmp.hmp("savevm s1") == ""
    time.sleep(5)
    assert _shell(vm, "echo hi > /root/after-savevm; cat /root/after-savevm") == "hi"
    seen = _last_tick(vm)[1]  # the heartbeat went on after the savevm
    assert seen > n + 2
    marker = len(vm.lines)
    assert vm.qmp.hmp("loadvm s1") == ""
    vm.wait_line(TICK, marker, timeout=60)
    ticks = [t for _, t in _ticks_from(vm, marker)]
    # Back to right after N: the console shows the guest's output with a lag (the lines
    # the guest had queued in its tty at the save come out again after the load), so
    # "right after" is within a few ticks, and before what was seen since.
    assert n < ticks[0] <= n + 5 and ticks[0] < seen, (n, seen, ticks)
    assert _shell(vm, "ls /root/after-savevm 2>/dev/null | wc -l") == "0"
    assert "s1" in vm.qmp.hmp("info snapshots")


def test_live_update_hands_ram_and_disk_to_a_new_process(guest):
    tmp, disk, old = guest.tmp, guest.disk, guest.vm
    main, cpr = str(tmp / "cpr-main.sock"), str(tmp / "cpr.sock")
    channel = {"transport": "socket", "type": "unix"}
    new = Pemu(tmp, *_args(disk), "-incoming", f"unix:{main}", "-incoming",
               json.dumps({"channel-type": "cpr", "addr": {**channel, "path": cpr}}),
               name="updated")
    moved = False
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(cpr):  # the new pemu has opened the disk image
            assert time.monotonic() < deadline and new.proc.poll() is None
            time.sleep(0.1)
        # written by the old process after the new one opened the image
        assert _shell(old, "echo live-update-block | dd of=/dev/vda bs=512 seek=8192 "
                           "conv=fsync 2>/dev/null; echo done") == "done"
        period = _heartbeat_period(old)
        old.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        old.qmp.cmd("migrate", channels=[
            {"channel-type": "main", "addr": {**channel, "path": main}},
            {"channel-type": "cpr", "addr": {**channel, "path": cpr}}])
        while (info := old.qmp.cmd("query-migrate"))["status"] not in ("completed",
                                                                        "failed"):
            assert time.monotonic() < deadline, info
            time.sleep(0.05)
        assert info["status"] == "completed", info
        guest.vm, moved = new, True  # the guest runs there now, whatever follows
        assert old.qmp.cmd("query-status")["status"] == "postmigrate"
        assert info["ram"]["transferred"] < 1 << 20, info  # 512 MiB of RAM not copied
        time.sleep(0.5)  # the old process's last console bytes reach us
        last_line, last = _last_tick(old)
        first_line = new.wait_line(TICK, timeout=120)
        first_at, first = _ticks_from(new, first_line)[0]
        gap = first_at - old.stamps[last_line]
        load_ms = new.qmp.cmd("query-migrate")["total-time"]
        print(f"live update: source downtime {info['downtime']} ms, destination load "
              f"{load_ms} ms, heartbeat gap {gap:.2f} s (period {period:.2f} s)")
        assert last <= first <= last + 2, (last, first)  # no beat lost or repeated
        # the hand-over itself - the guest stopped in one process until it runs in
        # the other - takes well under a second ...
        assert info["downtime"] + load_ms < 1000, (info, load_ms)
        # ... and the heartbeat shows no more than that beyond its own period.  The
        # slack is for a loaded host, where the beat's own gaps reach tens of seconds
        # (31 s at a load average of 15 on 2 cores) and vary by a few seconds.
        assert gap < period * 1.25 + 1, (gap, period, info)
        assert old.finish() == 0  # the old process exits (QEMU's procedure: quit it)
        assert _shell(new, "dd if=/dev/vda bs=512 skip=8192 count=1 iflag=direct "
                           "2>/dev/null | head -c 17") == "live-update-block"
        more = new.wait_line(TICK, len(new.lines), timeout=120)
        new.wait_line(TICK, more + 1, timeout=120)  # the heartbeat goes on
    finally:
        (old if moved else new).finish()


def test_live_migration_unix_then_tcp_while_the_guest_dirties_memory(guest):
    tmp, disk, a = guest.tmp, guest.disk, guest.vm
    # the disks stand for shared storage: each process its own copy of the image
    disk_b, disk_c = str(tmp / "b.qcow2"), str(tmp / "c.qcow2")
    shutil.copy(disk, disk_b)
    shutil.copy(disk, disk_c)
    sock = str(tmp / "mig.sock")
    port = _free_port()
    b = Pemu(tmp, *_args(disk_b), "-incoming", f"unix:{sock}", name="b")
    c = Pemu(tmp, *_args(disk_c), "-incoming", f"tcp:127.0.0.1:{port}", name="c")
    try:
        checksum = _shell(a, "head -c 4194304 /dev/urandom > /root/fixed; "
                             "sha256sum /root/fixed | cut -c1-64")
        a.send("(while :; do head -c 2097152 /dev/urandom > /root/churn; done) &\n")
        time.sleep(2)
        for src, dst, uri in ((a, b, f"unix:{sock}"), (b, c, f"tcp:127.0.0.1:{port}")):
            period = _heartbeat_period(src)
            info = _migrate(src, dst, uri)
            time.sleep(0.5)  # the source's last console bytes reach us
            last_line, last = _last_tick(src)
            last_at = src.stamps[last_line]
            first_line = dst.wait_line(TICK, timeout=180)
            first_at, first = _ticks_from(dst, first_line)[0]
            assert last <= first <= last + 2, (last, first)
            # the heartbeat's own period (a second, longer on a loaded host), plus at
            # most the downtime and a second
            gap = first_at - last_at
            # (twice the period: the destination's first beat also waits for its share
            # of a loaded 2-core host, as every beat before did)
            assert gap < 2 * period + DOWNTIME_MS / 1000 + 1, (gap, period, info)
            assert _shell(dst, "sha256sum /root/fixed | cut -c1-64") == checksum
            # the heartbeat goes on, one a second (two lines after the shell's output:
            # a beat printed while the shell answered may share a line with it)
            more = dst.wait_line(TICK, len(dst.lines), timeout=30)
            dst.wait_line(TICK, more + 1, timeout=30)  # and the beat after it
            beats = [t for _, t in _ticks_from(dst, more)]
            assert first < beats[0] and beats[1] == beats[0] + 1, (first, beats)
        assert b.qmp.cmd("query-status")["status"] == "postmigrate"
    finally:
        b.finish()
        c.finish()
