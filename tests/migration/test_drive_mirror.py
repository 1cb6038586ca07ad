"""drive-mirror / blockdev-mirror on a running pemu (-S: the guest never runs; the
monitor's qemu-io writes stand in for it, as in QEMU's own tests) (~6 s): writes
before, during and after the copy; a cancel once ready leaves a target that
``qemu-img compare`` finds identical to the source; a complete pivots the drive to the
target."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pemu.block.qcow2 import create_qcow2
from tests.migration.pemu_process import Pemu
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program
MIB = 1 << 20


def _io(vm: Pemu, command: str) -> str:
    out = vm.qmp.hmp(f'qemu-io d0 "{command}"')
    assert "failed" not in out, out
    return out


def _file_of(vm: Pemu) -> str:
    return next(b for b in vm.qmp.cmd("query-block") if b["device"] == "d0")["inserted"]["file"]


def test_mirror_follows_writes_then_cancel_or_complete(tmp_path, build_program):  # noqa: F811
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    elf = str(build_program("ticker", TICK_PERIOD=500000))
    src, dst, dst2 = (str(tmp_path / f"{n}.qcow2") for n in ("src", "dst", "dst2"))
    create_qcow2(src, 8 * MIB)
    vm = Pemu(tmp_path, "-S", "-M", "virt", "-m", "64M", "-bios", "none", "-kernel", elf,
              "-drive", f"file={src},format=qcow2,if=none,id=d0",
              "-device", "virtio-blk-device,drive=d0,id=blk0")
    try:
        _io(vm, "write -P 0xaa 0 4M")
        for args, why in (({"device": "nosuch", "sync": "full"}, "Cannot find device"),
                          ({"device": "d0", "sync": "incremental"}, "'sync'"),
                          ({"device": "d0", "sync": "full", "mode": "existing"},
                           "No such file")):
            err = vm.qmp.execute("drive-mirror", target=dst, **args)["error"]
            assert why in err["desc"], err
        err = vm.qmp.execute("block-job-complete", device="d0")["error"]
        assert err["class"] == "DeviceNotActive", err
        # slow enough (4 MiB/s, 8 MiB) that the writes below land while it copies
        vm.qmp.cmd("drive-mirror", device="d0", target=dst, sync="full", format="qcow2",
                   speed=4 * MIB)
        jobs = vm.qmp.cmd("query-block-jobs")
        assert [(j["device"], j["type"], j["len"], j["ready"]) for j in jobs] == \
            [("d0", "mirror", 8 * MIB, False)]
        _io(vm, "write -P 0xbb 7M 512k")  # ahead of the copy
        _io(vm, "write -P 0xcc 0 64k")  # behind it (or racing it)
        assert vm.qmp.cmd("query-block-jobs")[0]["ready"] is False  # still copying
        busy = vm.qmp.execute("drive-mirror", device="d0", target=dst2, sync="full")
        assert "busy" in busy["error"]["desc"]
        vm.qmp.wait_event("BLOCK_JOB_READY", device="d0")
        assert vm.qmp.cmd("query-block-jobs")[0]["ready"] is True
        _io(vm, "write -P 0xdd 1M 4k")  # after ready: written to both
        vm.qmp.cmd("block-job-cancel", device="d0")  # ready: leave a consistent copy
        ev = vm.qmp.wait_event("BLOCK_JOB_COMPLETED", device="d0")
        assert ev["data"]["offset"] == ev["data"]["len"] == 8 * MIB
        assert vm.qmp.cmd("query-block-jobs") == [] and _file_of(vm) == src
        _io(vm, "flush")
        same = subprocess.run(["qemu-img", "compare", src, dst], capture_output=True,
                              text=True)
        assert same.returncode == 0, same.stdout + same.stderr

        # blockdev-mirror to a node the user added, then complete: the drive pivots
        create_qcow2(dst2, 8 * MIB)
        vm.qmp.cmd("blockdev-add", **{"node-name": "tgt", "driver": "qcow2",
                                      "file": {"driver": "file", "filename": dst2}})
        vm.qmp.cmd("blockdev-mirror", **{"job-id": "m2", "device": "d0", "target": "tgt",
                                         "sync": "full"})
        vm.qmp.wait_event("BLOCK_JOB_READY", device="m2")
        vm.qmp.cmd("job-complete", id="m2")
        vm.qmp.wait_event("BLOCK_JOB_COMPLETED", device="m2")
        vm.qmp.wait_event("JOB_STATUS_CHANGE", id="m2", status="null")
        assert _file_of(vm) == dst2
        _io(vm, "write -P 0xee 0 4k")  # only the new image sees it
        assert "verification failed" not in vm.qmp.hmp('qemu-io d0 "read -P 0xee 0 4k"')
    finally:
        assert vm.finish() == 0
    differ = subprocess.run(["qemu-img", "compare", src, dst2], capture_output=True,
                            text=True)
    assert differ.returncode == 1 and "offset 0" in differ.stdout, differ.stdout


def test_a_disk_without_shared_storage_migrates_through_a_mirror(tmp_path, build_program):  # noqa: F811
    """The documented recipe (docs/SYSTEM.md): mirror to a raw target the destination
    opens, wait for ready, migrate, cancel the job on the source; the destination reads
    what the source wrote before and during the mirror (~8 s)."""
    from tests.migration.test_live_migration import _migrate, _wait_listening

    elf = str(build_program("ticker", TICK_PERIOD=500000))
    src_disk, dst_disk = str(tmp_path / "src.qcow2"), str(tmp_path / "dst.raw")
    create_qcow2(src_disk, 4 * MIB)

    def args(disk: str, fmt: str) -> list[str]:
        return ["-M", "virt", "-m", "64M", "-bios", "none", "-kernel", elf,
                "-drive", f"file={disk},format={fmt},if=none,id=d0",
                "-device", "virtio-blk-device,drive=d0,id=blk0"]

    src = Pemu(tmp_path, *args(src_disk, "qcow2"), name="src")
    dst = None
    try:
        src.wait_ticks(2)
        _io(src, "write -P 0x42 1M 256k")
        src.qmp.cmd("drive-mirror", device="d0", target=dst_disk, format="raw",
                    sync="full")
        _io(src, "write -P 0x43 3M 4k")  # during the copy, or after: both reach dst
        src.qmp.wait_event("BLOCK_JOB_READY", device="d0")
        dst = Pemu(tmp_path, *args(dst_disk, "raw"), "-incoming",
                   f"unix:{tmp_path}/mig.sock", name="dst")
        _wait_listening(str(tmp_path / "mig.sock"))
        _io(src, "write -P 0x44 0 4k")  # while the destination is up already
        _migrate(src, dst, f"unix:{tmp_path}/mig.sock")
        src.qmp.cmd("block-job-cancel", device="d0")
        src.qmp.wait_event("BLOCK_JOB_COMPLETED", device="d0")
        dst.wait_ticks(2)  # the guest runs on the destination
        for pattern, offset, length in ((0x42, "1M", "256k"), (0x43, "3M", "4k"),
                                        (0x44, "0", "4k")):
            out = dst.qmp.hmp(f'qemu-io d0 "read -P {pattern:#x} {offset} {length}"')
            assert "verification failed" not in out and "read " in out, out
    finally:
        assert src.finish() == 0
        if dst is not None:
            assert dst.finish() == 0
