"""The devices of the Arm virt board, created at their memory-map entries and wired
to the GIC: what virt.py asks for by name, so the board reads as a list of parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pemu.hw.arm.memmap import GICV2M_SPIS, SPI_BASE
from pemu.hw.char.pl011 import Pl011
from pemu.hw.intc.gicv2 import Gicv2
from pemu.hw.intc.gicv2m import Gicv2m
from pemu.hw.intc.gicv3 import Gicv3
from pemu.hw.rtc.pl031 import Pl031
from pemu.hw.tcg_board import BoardError
from pemu.qemuopts.keyval import OptionError
from pemu.target.aarch64.sysregs import register_external_sysregs

if TYPE_CHECKING:
    from pemu.hw.arm.virt import ArmVirtBoard

GIC_FIELD_SYSREGS = 1 << 24  # ID_AA64PFR0_EL1.GIC: the GICv3 system-register interface


def make_gic(board: ArmVirtBoard) -> Gicv2 | Gicv3:
    mm = board.memmap
    cpus = board.cpus
    irq = [c.set_irq for c in cpus]
    fiq = [c.set_fiq for c in cpus]
    if board.gic_version == 2:
        gic = Gicv2(len(cpus), irq, fiq)
        gic.map(board.space, mm["gic_dist"].base, mm["gic_cpu"].base)
    else:
        gic = Gicv3(len(cpus), irq, fiq)
        gic.map(board.space, mm["gic_dist"].base, mm["gic_redist"].base)
        regs = gic.icc_sysregs()
        for cpu in cpus:
            register_external_sysregs(cpu, regs)
            cpu.id_aa64pfr0 |= GIC_FIELD_SYSREGS
    board.gic = gic
    board.wire_timers()
    return gic


def make_gicv2m(board: ArmVirtBoard) -> Gicv2m:
    """The MSI frame of a GICv2 machine: PCIe MSIs (bus-master writes into the address
    space) become edges on its SPIs."""
    entry = board.memmap["gic_v2m"]
    assert entry.irq is not None
    v2m = Gicv2m(SPI_BASE + entry.irq, GICV2M_SPIS,
                 lambda intid: board.gic.spi_line(intid).pulse())
    board.space.add_mmio("gic-v2m", entry.base, entry.size, v2m)
    return v2m


def _serial_chardev(board: ArmVirtBoard):
    if board.chardevs is None:
        return None
    cfg = board.cfg
    spec = cfg.first_serial("mon:stdio" if cfg.nographic else "stdio")
    try:
        return board.chardevs.from_legacy(spec, "serial0")
    except OptionError as e:
        raise BoardError(f"-serial {spec}: {e}") from None


def make_uart(board: ArmVirtBoard) -> Pl011:
    entry = board.memmap["uart"]
    uart = Pl011(_serial_chardev(board))
    uart.irq.connect(board.spi_line(entry.irq).set_level)
    uart.map(board.space, entry.base)
    return uart


def make_rtc(board: ArmVirtBoard) -> Pl031:
    entry = board.memmap["rtc"]
    rtc = Pl031()
    rtc.irq.connect(board.spi_line(entry.irq).set_level)
    rtc.map(board.space, entry.base)
    return rtc


__all__ = ["make_gic", "make_gicv2m", "make_rtc", "make_uart"]
