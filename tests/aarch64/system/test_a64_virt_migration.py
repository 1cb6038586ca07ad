"""The Arm virt board's state through the migration stream (in process, ~3 s): a guest
counting in a loop (counter.S) runs, stops, is saved; a fresh board with the same
command line loads the stream and has the same registers, system registers, memory,
GIC and counter, and the guest counts on from where it was.  With GICv2 and GICv3 (the
CPU interface's system registers travel in the GIC's state), a virtio-rng on a
virtio-mmio slot and -smp 2 (the second CPU powered off, as PSCI left it).  Then live
migration between two pemu-system-aarch64 processes over QMP."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from pemu.hw.arm.virt import ArmVirtBoard
from pemu.hw.virtio.rng import VirtioRng
from pemu.migration.machine_state import blocked_reason, load_machine, save_machine
from pemu.migration.stream import StreamReader, StreamWriter, bytes_source
from pemu.qemuopts.config import SystemConfig
from pemu.target.aarch64 import cpu_state as a64
from tests.aarch64.system.bare_metal import assemble
from tests.migration.pemu_process import Pemu

COUNTER = 0x4020_0000


@pytest.fixture(scope="module")
def counter_elf(tmp_path_factory) -> Path:
    return assemble(tmp_path_factory.mktemp("a64mig"), "counter.S")


def _board(elf: Path, gic: str) -> ArmVirtBoard:
    board = ArmVirtBoard(SystemConfig(kernel=str(elf), ram_size=64 << 20, smp=2,
                                      cpu="cortex-a57",
                                      machine={"type": "virt", "gic-version": gic}))
    board.add_virtio(VirtioRng(id="rng0"), "rng0")
    board.reset()
    return board


def _counted(board: ArmVirtBoard) -> int:
    return int.from_bytes(board.space.read(COUNTER, 8), "little")


@pytest.mark.parametrize("gic", ["2", "3"])
def test_state_moves_to_a_fresh_board(counter_elf, gic: str) -> None:
    src = _board(counter_elf, gic)
    assert src.migration_blockers() == [] and blocked_reason(src) is None
    src.run(timeout=0.5)
    counted = _counted(src)
    assert counted > 0
    cpu = src.cpus[0]
    cpu.regs["TPIDR_EL1"] = 0x5EED  # a system register the guest could have set
    out = io.BytesIO()
    save_machine(src, StreamWriter(out.write))

    dst = _board(counter_elf, gic)
    assert _counted(dst) == 0
    load_machine(dst, StreamReader(bytes_source(out.getvalue())))
    dst.migration_post_load()
    d = dst.cpus[0]
    for slot in (a64.PC, a64.X0 + 1, a64.X0 + 2, a64.X0 + 5, a64.X0 + 6, a64.ZF):
        assert d.slots[slot] == cpu.slots[slot], slot
    assert d.regs == cpu.regs and d.regs["VBAR_EL1"] == 0x40080800
    assert (d.el, d.spsel, d.daif) == (cpu.el, cpu.spsel, cpu.daif)
    assert dst.cpus[1].powered_off and _counted(dst) == counted
    assert dst.gic.vmstate is not None
    assert abs(dst.counter.ticks() - src.counter.ticks()) < 62_500_000  # within 1 s
    dst.run(timeout=0.3)
    assert _counted(dst) > counted  # the guest counts on on the new board
    assert dst.cpus[0].state.x(5) == 0xABCD1234


def _aarch64(*args: str) -> list[str]:
    return [sys.executable, "-m", "pemu.cli.system_aarch64", *args]


def _counter_via_hmp(vm: Pemu) -> int:
    return int(vm.qmp.hmp(f"x /1xg {COUNTER:#x}").split(":")[1], 16)


def test_live_migration_between_processes(counter_elf, tmp_path) -> None:
    """-incoming on a second pemu-system-aarch64, QMP migrate over a UNIX socket: the
    destination runs on from the source's count (~5 s)."""
    args = ["-M", "virt", "-cpu", "cortex-a57", "-m", "64M", "-kernel", str(counter_elf),
            "-device", "virtio-rng-pci"]
    sock = tmp_path / "mig.sock"
    src = Pemu(tmp_path, *args, name="src", command=_aarch64)
    dst = Pemu(tmp_path, *args, "-incoming", f"unix:{sock}", name="dst", command=_aarch64)
    try:
        assert dst.qmp.cmd("query-status")["status"] == "inmigrate"
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert time.monotonic() < deadline, "the destination does not listen"
            time.sleep(0.1)
        src.qmp.cmd("migrate", uri=f"unix:{sock}")
        info = src.wait_migration({"completed", "failed"})
        assert info["status"] == "completed", info
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        left = _counter_via_hmp(src)
        assert left > 0
        # the source is done once it sent everything; the destination may still load
        deadline = time.monotonic() + 60
        while (status := dst.qmp.cmd("query-status")["status"]) == "inmigrate":
            assert time.monotonic() < deadline, "the destination never ran"
            time.sleep(0.05)
        assert status == "running"
        time.sleep(0.3)
        assert _counter_via_hmp(dst) > left  # counting on from the source's count
    finally:
        for vm in (src, dst):
            vm.finish()
