"""VM state of KVM guests: live migration between two pemu-system-x86_64 processes,
savevm/loadvm in a qcow2 image, snapshot files, and a stream cut in the middle.

The bare-metal heartbeat (guests/heartbeat.S) ticks on the in-kernel PIT, dirties RAM
on every tick and prints a checksum of it with every beat, so a restore that lost a
register, an interrupt controller, the PIT or a page shows as a missing beat, a stuck
guest or a wrong sum.  The Linux variant (pemu.tick=1 of the shared guests) runs where
the host's KVM can run Linux and skips with the probe's finding elsewhere.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time

import pytest

from pemu.accel.kvm.probe import probe_linux_support
from pemu.block.qcow2 import create_qcow2
from pemu.guests import guest_file
from pemu.target.x86.cpu_modes import enter_long_mode
from tests.kvm.heartbeat import (
    BEAT,
    beats,
    check_continues,
    check_heartbeat,
    kvm_cmd,
    machine_args,
)
from tests.migration.pemu_process import Pemu

DOWNTIME_LIMIT_MS = 300


@pytest.fixture(scope="module")
def heartbeat(kvm, guest) -> str:
    return str(guest("heartbeat"))


def _vm(tmp_path, kernel: str, *extra: str, name: str) -> Pemu:
    return Pemu(tmp_path, *machine_args(kernel, *extra), name=name, command=kvm_cmd)


def _wait_beats(vm: Pemu, n: int, timeout: float = 60) -> list:
    """At least ``n`` beats more than now."""
    start = len(beats(vm.lines, vm.stamps))
    deadline = time.monotonic() + timeout
    while len(seq := beats(vm.lines, vm.stamps)) < start + n:
        if vm.proc.poll() is not None:
            raise AssertionError(f"pemu exited {vm.proc.returncode}: {vm.err!r}")
        assert time.monotonic() < deadline, (vm.lines[-3:], vm.err)
        time.sleep(0.05)
    return seq


def _wait_listening(path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"nothing listens on {path}"
        time.sleep(0.05)


class _CuttingProxy:
    """Forwards a migration stream from a TCP port on 127.0.0.1 (``port``) to the UNIX
    socket ``target`` and cuts both connections after ``limit`` bytes: the stream ends
    in the middle (and the source's side of it is TCP)."""

    def __init__(self, target: str, limit: int) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.target, self.limit = target, limit
        self.forwarded = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        src, _ = self.server.accept()
        dst = socket.socket(socket.AF_UNIX)
        dst.connect(self.target)
        try:
            while self.forwarded < self.limit:
                data = src.recv(min(65536, self.limit - self.forwarded))
                if not data:
                    break
                dst.sendall(data)
                self.forwarded += len(data)
        finally:
            src.close()
            dst.close()
            self.server.close()


def test_cut_stream_then_live_migration_over_unix_socket(heartbeat, tmp_path):
    """First a stream cut after 200 kB (sent over TCP through a proxy): the destination
    fails with a clear error and the source runs on.  Then the real migration, over a
    UNIX socket, while the guest dirties RAM."""
    bad_sock, sock = str(tmp_path / "bad.sock"), str(tmp_path / "mig.sock")
    src = _vm(tmp_path, heartbeat, name="src")
    bad = _vm(tmp_path, heartbeat, "-incoming", f"unix:{bad_sock}", name="bad")
    dst = _vm(tmp_path, heartbeat, "-incoming", f"unix:{sock}", name="dst")
    try:
        _wait_beats(src, 2)
        _wait_listening(bad_sock)
        proxy = _CuttingProxy(bad_sock, 200_000)
        src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{proxy.port}")
        info = src.wait_migration({"completed", "failed"}, timeout=60)
        assert info["status"] == "failed", info
        assert proxy.forwarded == 200_000
        assert src.qmp.cmd("query-status")["status"] == "running"
        assert bad.proc.wait(30) == 1
        time.sleep(0.2)  # the stderr pump
        assert b"load of migration failed" in bad.err and b"truncated" in bad.err, bad.err
        assert b"Traceback" not in bad.err

        before = _wait_beats(src, 4)  # the source's guest went on, intact
        period = statistics.median(b.stamp - a.stamp for a, b in zip(before, before[1:],
                                                                        strict=False))
        assert dst.qmp.cmd("query-status")["status"] == "inmigrate"
        _wait_listening(sock)
        src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": DOWNTIME_LIMIT_MS})
        src.qmp.cmd("migrate", uri=f"unix:{sock}")
        info = src.wait_migration({"completed", "failed"}, timeout=60)
        assert info["status"] == "completed", info
        assert info["ram"]["dirty-sync-count"] >= 1
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        after = _wait_beats(dst, 4)
        assert dst.qmp.cmd("query-status")["status"] == "running"
        src.finish()
        src_beats = beats(src.lines, src.stamps)
        check_heartbeat(src_beats)
        check_heartbeat(after)  # the checksum of RAM the guest reads back matches
        check_continues(src_beats, src.lines, after)
        # beyond the beat period(s) in between: at most the downtime limit plus 1 s
        periods = after[0].number - src_beats[-1].number  # 2 when a line was cut
        gap = after[0].stamp - src_beats[-1].stamp
        assert gap <= period * periods + DOWNTIME_LIMIT_MS / 1000 + 1.0, (gap, period)
    finally:
        src.finish()
        bad.finish()
        dst.finish()


def test_file_snapshots_plain_and_mapped_restore(heartbeat, tmp_path):
    path = tmp_path / "state.bin"
    src = _vm(tmp_path, heartbeat, name="src")
    try:
        _wait_beats(src, 2)
        assert src.qmp.hmp(f"migrate file:{path}") == ""  # HMP waits for the end
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    finally:
        src.finish()
    saved = beats(src.lines, src.stamps)
    good = _vm(tmp_path, heartbeat, "-incoming", f"file:{path}", name="good")
    mapped_path = tmp_path / "mapped.bin"
    try:
        after = _wait_beats(good, 2)
        check_heartbeat(after)
        check_continues(saved, src.lines, after)
        # on, into a mapped-ram snapshot, whose restore maps the file under KVM's slots
        good.qmp.cmd("migrate-set-capabilities",
                     capabilities=[{"capability": "mapped-ram", "state": True}])
        assert good.qmp.hmp(f"migrate file:{mapped_path}") == ""
        assert good.qmp.cmd("query-status")["status"] == "postmigrate"
    finally:
        good.finish()
    mapped = _vm(tmp_path, heartbeat, "-incoming", f"file:{mapped_path}", name="mapped")
    try:
        again = _wait_beats(mapped, 2)
        check_heartbeat(again)
        check_continues(beats(good.lines, good.stamps), good.lines, again)
    finally:
        mapped.finish()


def test_savevm_loadvm_resumes_after_the_saved_beat(heartbeat, tmp_path):
    disk = str(tmp_path / "disk.qcow2")
    create_qcow2(disk, 16 << 20)
    drive = ["-drive", f"file={disk},format=qcow2,if=none,id=d0",
             "-device", "virtio-blk-device,drive=d0,id=blk0"]
    vm = _vm(tmp_path, heartbeat, *drive, name="vm")
    try:
        _wait_beats(vm, 2)
        vm.qmp.cmd("stop")
        time.sleep(0.3)  # the console pump catches up with a stopped guest
        saved = beats(vm.lines, vm.stamps)
        assert vm.qmp.hmp("savevm s1") == ""
        assert "s1" in vm.qmp.hmp("info snapshots")
        vm.qmp.cmd("cont")
        later = _wait_beats(vm, 3)
        assert later[-1].number >= saved[-1].number + 3
        vm.qmp.cmd("stop")
        assert vm.qmp.hmp("loadvm s1") == ""
        time.sleep(0.3)
        mark = len(vm.lines)
        vm.qmp.cmd("cont")
        _wait_beats(vm, 2)
        resumed = beats(vm.lines[mark:], vm.stamps[mark:])
        check_heartbeat(resumed)
        # The console shows no line the guest had begun at a stop.  One begun at the
        # savevm is finished after the loadvm, glued to whatever the guest had begun at
        # the second stop: that beat is lost to the pattern, and the next one comes.
        cut_at_save = BEAT.search(vm.lines[mark]) is None
        assert resumed[0].number == saved[-1].number + (2 if cut_at_save else 1), \
            (saved[-1], vm.lines[mark:mark + 2])
    finally:
        vm.finish()
    # and in a new process, from the start (-loadvm)
    again = _vm(tmp_path, heartbeat, *drive, "-loadvm", "s1", name="again")
    try:
        restarted = _wait_beats(again, 2)
        check_heartbeat(restarted)
        assert restarted[0].number == resumed[0].number, (restarted[0], resumed[0])
    finally:
        again.finish()


# -- the same with a Linux guest, where the host's KVM can run one --------------------------
GUESTS = guest_file("x86_64")


@pytest.fixture(scope="module")
def linux_capable_kvm(kvm):
    result = probe_linux_support(enter_long_mode)
    if not result.ok:
        pytest.skip(f"host KVM cannot run Linux: {result.reason}")
    if not (GUESTS / "bzImage-lean").exists():
        pytest.skip(f"{GUESTS / 'bzImage-lean'} missing")


def _linux_ticks(vm: Pemu) -> list[tuple[int, float]]:
    out = []
    for line, stamp in zip(list(vm.lines), list(vm.stamps), strict=False):
        words = line.split()
        if len(words) == 2 and words[0] == "PEMU-TICK" and words[1].isdigit():
            out.append((int(words[1]), stamp))
    return out


@pytest.mark.slow
def test_linux_guest_live_migration(linux_capable_kvm, tmp_path):
    sock = str(tmp_path / "mig.sock")
    args = ["-M", "microvm,acpi=off", "-accel", "kvm", "-cpu", "host", "-m", "256M",
            "-no-reboot", "-kernel", str(GUESTS / "bzImage-lean"),
            "-initrd", str(GUESTS / "initramfs.cpio.gz"),
            "-append", "console=ttyS0 reboot=t pemu.tick=1"]
    src = Pemu(tmp_path, *args, name="src", command=kvm_cmd)
    dst = Pemu(tmp_path, *args, "-incoming", f"unix:{sock}", name="dst", command=kvm_cmd)
    try:
        src.wait_line(r"PEMU-TICK 3\b", timeout=180)
        _wait_listening(sock)
        src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": DOWNTIME_LIMIT_MS})
        src.qmp.cmd("migrate", uri=f"unix:{sock}")
        assert src.wait_migration({"completed", "failed"})["status"] == "completed"
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        dst.wait_line(r"PEMU-TICK \d+", timeout=30)
        src.finish()  # its console's last line, even one the guest had only begun
        last_src, first_dst = _linux_ticks(src)[-1], _linux_ticks(dst)[0]
        last_line = src.lines[-1]
        cut = bool(last_line) and f"PEMU-TICK {last_src[0] + 1}".startswith(last_line)
        periods = 2 if cut else 1
        assert first_dst[0] == last_src[0] + periods, (src.lines[-2:], dst.lines[:2])
        # one tick a second; beyond that at most the downtime limit plus 1 s
        assert first_dst[1] - last_src[1] <= periods + DOWNTIME_LIMIT_MS / 1000 + 1.0
    finally:
        src.finish()
        dst.finish()
