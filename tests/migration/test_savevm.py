"""savevm/loadvm/delvm, the QMP snapshot jobs and -loadvm on the virt board, with a
bare-metal heartbeat (tests/system/programs/ticker.S) and a qcow2 disk (~20 s)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time

import pytest

from pemu.block.qcow2 import create_qcow2
from tests.migration.pemu_process import Pemu, hart_register
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program


@pytest.fixture(scope="module")
def ticker(build_program):  # noqa: F811 - the fixture above
    return str(build_program("ticker", TICK_PERIOD=500000))  # 50 ms ticks


def _args(elf: str, disk: str) -> list[str]:
    return ["-M", "virt", "-m", "64M", "-bios", "none", "-kernel", elf,
            "-drive", f"file={disk},format=qcow2,if=none,id=d0",
            "-device", "virtio-blk-device,drive=d0,id=blk0"]


def _paused_tick(vm: Pemu) -> int:
    vm.qmp.cmd("stop")
    return hart_register(vm, "s0")


def test_savevm_loadvm_delvm_and_snapshot_jobs(ticker, tmp_path):
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    disk = str(tmp_path / "disk.qcow2")
    create_qcow2(disk, 16 << 20)
    vm = Pemu(tmp_path, *_args(ticker, disk))
    try:
        vm.wait_ticks(5)
        n = _paused_tick(vm)
        assert vm.qmp.hmp("savevm s1") == ""
        assert vm.qmp.cmd("query-status")["status"] == "paused"
        vm.qmp.cmd("cont")
        after = vm.wait_ticks(10)
        assert after[-1] > n + 5
        assert vm.qmp.hmp("loadvm s1") == ""
        assert vm.qmp.cmd("query-status")["status"] == "running"
        resumed = vm.wait_ticks(5)
        # the heartbeat goes back to right after the save: n + 1 again (ticks printed
        # between wait_ticks and loadvm taking effect come before it)
        back = resumed[len(after):]
        assert n + 1 in back, (n, resumed[len(after) - 3:])
        restart = back.index(n + 1)
        assert all(t > n + 1 for t in back[:restart]), (n, resumed[len(after) - 3:])
        assert back[restart:restart + 2] == [n + 1, n + 2], (n, back)
        assert "s1" in vm.qmp.hmp("info snapshots")

        # the QMP job, its events and query-jobs
        vm.qmp.cmd("snapshot-save", **{"job-id": "j1", "tag": "s2", "vmstate": "d0",
                                       "devices": ["d0"]})
        vm.qmp.wait_event("JOB_STATUS_CHANGE", id="j1", status="concluded")
        jobs = vm.qmp.cmd("query-jobs")
        assert jobs == [{"id": "j1", "type": "snapshot-save", "status": "concluded",
                         "current-progress": 1, "total-progress": 1}]
        vm.qmp.cmd("job-dismiss", id="j1")
        assert vm.qmp.cmd("query-jobs") == []
        # saving under an existing name is a failed job, with the reason
        vm.qmp.cmd("snapshot-save", **{"job-id": "j2", "tag": "s2", "vmstate": "d0",
                                       "devices": ["d0"]})
        vm.qmp.wait_event("JOB_STATUS_CHANGE", id="j2", status="concluded")
        assert "already exists" in vm.qmp.cmd("query-jobs")[0]["error"]
        vm.qmp.cmd("job-dismiss", id="j2")
        n2 = _paused_tick(vm)  # s2 was saved earlier, at a tick <= this one
        vm.qmp.cmd("cont")
        assert "does not have" in vm.qmp.hmp("loadvm nosuch")
        assert vm.qmp.hmp("delvm s1") == ""
        info = vm.qmp.hmp("info snapshots")
        assert "s1" not in info and "s2" in info
    finally:
        assert vm.finish() == 0
    listing = subprocess.run(["qemu-img", "snapshot", "-l", disk], capture_output=True,
                             text=True, check=True).stdout
    line = next(x for x in listing.splitlines() if " s2 " in x)
    assert "KiB" in line or "MiB" in line, line  # the VM state size
    assert "No errors" in subprocess.run(["qemu-img", "check", disk], capture_output=True,
                                         text=True).stdout

    # -loadvm: start from s2; its heartbeat continues from where s2 was taken
    vm = Pemu(tmp_path, *_args(ticker, disk), "-loadvm", "s2", name="again")
    try:
        first = vm.wait_ticks(2)[0]
        assert 1 < first <= n2 + 1
    finally:
        assert vm.finish() == 0
    bad = subprocess.run(system_conftest.pemu_cmd(*_args(ticker, disk), "-nographic",
                                                  "-loadvm", "nosuch"),
                         env=system_conftest.pemu_env(), capture_output=True, timeout=60)
    assert bad.returncode == 1 and b"-loadvm nosuch" in bad.stderr


def _restart(ticks: list[int]) -> int | None:
    """The first tick that is not above the one before it."""
    return next((b for a, b in itertools.pairwise(ticks) if b <= a), None)


def test_devices_that_blocked_before_issue_24_save_and_load(ticker, tmp_path):
    """The AIA (APLIC + IMSIC), multiport virtio-serial with a port, virtio-balloon,
    ich9-ahci with an ide-hd and virtio-scsi with a scsi-hd once blocked savevm; now the
    machine has no blocker, savevm/loadvm bring the heartbeat back to n + 1 (~5 s)."""
    disk = str(tmp_path / "disk.qcow2")
    args = _args(ticker, disk)
    args[1] = "virt,aia=aplic-imsic"
    for name in ("sata", "scsi"):
        create_qcow2(f"{disk}.{name}", 1 << 20)
        args += ["-drive", f"file={disk}.{name},format=qcow2,if=none,id={name}d"]
    create_qcow2(disk, 16 << 20)
    args += ["-device", "virtio-serial-pci,id=ser0", "-chardev", "null,id=c0",
             "-device", "virtserialport,chardev=c0,name=org.pemu.0",
             "-device", "virtio-balloon-device,id=balloon0",
             "-device", "ich9-ahci,id=sata0", "-device", "ide-hd,drive=satad,bus=sata0.0",
             "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=scsid,bus=scsi0.0"]
    vm = Pemu(tmp_path, *args)
    try:
        vm.wait_ticks(3)
        n = _paused_tick(vm)
        assert vm.qmp.hmp("savevm s1") == ""
        vm.qmp.cmd("cont")
        after = vm.wait_ticks(5)
        assert vm.qmp.hmp("loadvm s1") == ""
        # back at the saved tick: the count starts again at n + 1 (n + 2 when the stop
        # fell between the counter's increment and its line reaching the host).  Lines
        # the guest printed before the load took effect may still be on their way (a
        # loaded host: four of them once), so look for where the count goes back
        while (restart := _restart(vm.ticks()[len(after) - 1:])) is None:
            vm.wait_ticks(1)
        assert restart in (n + 1, n + 2), (n, vm.ticks()[len(after) - 3:])
    finally:
        assert vm.finish() == 0


def test_machine_with_pci_devices_saves_loads_and_migrates(ticker, tmp_path):
    """virtio-blk-pci (the qcow2 disk) behind a pcie-root-port, virtio-rng-pci and an
    nvme disk on the root bus: savevm/loadvm and a live migration to a second process (~10 s).  The
    devices' programmed state is checked in-process (test_pci_machine.py): a
    bare-metal guest does not enumerate PCI."""
    def args(disk: str) -> list[str]:
        create_qcow2(disk, 16 << 20)
        create_qcow2(disk + ".nvme", 16 << 20)
        return _args(ticker, disk)[:-2] + [
            "-device", "pcie-root-port,id=rp0,chassis=1", "-device",
            "virtio-blk-pci,drive=d0,id=blk0,bus=rp0", "-device", "virtio-rng-pci,id=rng0",
            "-drive", f"file={disk}.nvme,format=qcow2,if=none,id=n0",
            "-device", "nvme,drive=n0,serial=mig0,id=nvme0"]

    sock = str(tmp_path / "mig.sock")
    vm = Pemu(tmp_path, *args(str(tmp_path / "disk.qcow2")), name="src")
    # the destination's own image stands in for shared storage (disk contents are not
    # what this test checks)
    dst = Pemu(tmp_path, *args(str(tmp_path / "dst.qcow2")), "-incoming", f"unix:{sock}",
               name="dst")
    try:
        vm.wait_ticks(3)
        n = _paused_tick(vm)
        assert vm.qmp.hmp("savevm s1") == ""
        vm.qmp.cmd("cont")
        after = vm.wait_ticks(5)
        assert vm.qmp.hmp("loadvm s1") == ""
        resumed = vm.wait_ticks(2)
        # the heartbeat went back: n + 1 is printed again after the ticks beyond it
        assert after[-1] > n + 1 and n + 1 in resumed[len(after):], (n, resumed[-8:])
        pci = vm.qmp.cmd("query-pci")
        vm.qmp.cmd("migrate", uri=f"unix:{sock}")
        deadline = time.monotonic() + 120
        while (status := vm.qmp.cmd("query-migrate")["status"]) not in ("completed",
                                                                         "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status == "completed", vm.qmp.cmd("query-migrate")
        assert vm.qmp.cmd("query-status")["status"] == "postmigrate"
        moved_from = hart_register(vm, "s0")
        ticks = dst.wait_ticks(2)
        assert ticks[-1] > moved_from, (moved_from, ticks)
        assert dst.qmp.cmd("query-pci") == pci
    finally:
        assert vm.finish() == 0
        assert dst.finish() == 0
