"""The GICv3 as an OS drives it: distributor and redistributors through memory, the CPU
interface through the ICC system registers."""

from __future__ import annotations

import pytest

from pemu.hw.intc.gicv3 import Gicv3, mpidr_affinity
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device
from pemu.migration.errors import MigrationError

DIST = 0x0800_0000
REDIST = 0x080A_0000
SGI = 0x10000

ICC = {
    "PMR": (3, 0, 4, 6, 0), "IAR0": (3, 0, 12, 8, 0), "EOIR0": (3, 0, 12, 8, 1),
    "HPPIR0": (3, 0, 12, 8, 2), "BPR0": (3, 0, 12, 8, 3), "AP0R0": (3, 0, 12, 8, 4),
    "AP1R0": (3, 0, 12, 9, 0), "DIR": (3, 0, 12, 11, 1), "RPR": (3, 0, 12, 11, 3),
    "SGI1R": (3, 0, 12, 11, 5), "SGI0R": (3, 0, 12, 11, 7), "IAR1": (3, 0, 12, 12, 0),
    "EOIR1": (3, 0, 12, 12, 1), "HPPIR1": (3, 0, 12, 12, 2), "BPR1": (3, 0, 12, 12, 3),
    "CTLR": (3, 0, 12, 12, 4), "SRE": (3, 0, 12, 12, 5), "IGRPEN0": (3, 0, 12, 12, 6),
    "IGRPEN1": (3, 0, 12, 12, 7),
}


class Board:
    def __init__(self, num_cpus: int = 2, num_spis: int = 64) -> None:
        self.irq = [False] * num_cpus
        self.fiq = [False] * num_cpus
        self.irq_changes = [0] * num_cpus

        def irq_sink(cpu: int):
            def sink(level: bool) -> None:
                self.irq[cpu] = level
                self.irq_changes[cpu] += 1
            return sink

        def fiq_sink(cpu: int):
            def sink(level: bool) -> None:
                self.fiq[cpu] = level
            return sink

        self.gic = Gicv3(num_cpus, [irq_sink(c) for c in range(num_cpus)],
                         [fiq_sink(c) for c in range(num_cpus)], num_spis=num_spis)
        self.mem = AddressSpace()
        self.gic.map(self.mem, DIST, REDIST)
        self.regs = self.gic.icc_sysregs()

    def rd(self, name: str, cpu: int = 0) -> int:
        return self.regs[ICC[name]].read(cpu)

    def wr(self, name: str, value: int, cpu: int = 0) -> None:
        self.regs[ICC[name]].write(cpu, value)

    def redist(self, cpu: int) -> int:
        return REDIST + 0x20000 * cpu

    def linux_init(self, group: int = 1) -> None:
        """What Linux's GICv3 driver does: distributor on, every redistributor woken,
        every interrupt in ``group`` at priority 0xa0, each CPU interface open."""
        gic, mem = self.gic, self.mem
        mem.store(DIST, 4, 0x13 if group else 0x11)
        for word in range(1, gic.num_irqs // 32):
            mem.store(DIST + 0x80 + 4 * word, 4, 0xFFFF_FFFF if group else 0)
        for intid in range(32, gic.num_irqs, 4):
            mem.store(DIST + 0x400 + intid, 4, 0xA0A0A0A0)
        for cpu in range(gic.num_cpus):
            rd = self.redist(cpu)
            mem.store(rd + 0x14, 4, 0)
            mem.store(rd + SGI + 0x80, 4, 0xFFFF_FFFF if group else 0)
            for intid in range(0, 32, 4):
                mem.store(rd + SGI + 0x400 + intid, 4, 0xA0A0A0A0)
            self.wr("PMR", 0xF0, cpu)
            self.wr(f"IGRPEN{group}", 1, cpu)

    def enable_spi(self, intid: int, cpu: int = 0, edge: bool = False) -> None:
        self.mem.store(DIST + 0x6000 + 8 * intid, 8, mpidr_affinity(cpu))
        if edge:
            reg = DIST + 0xC00 + 4 * (intid // 16)
            self.mem.store(reg, 4, self.mem.load(reg, 4) | 2 << (2 * (intid % 16)))
        self.mem.store(DIST + 0x100 + 4 * (intid // 32), 4, 1 << (intid % 32))

    def enable_private(self, cpu: int, intid: int) -> None:
        self.mem.store(self.redist(cpu) + SGI + 0x100, 4, 1 << intid)


def test_identification_and_redistributor_layout() -> None:
    b = Board(num_cpus=3)
    assert b.mem.load(DIST + 0xFFE8, 4) & 0xF0 == 0x30  # PIDR2.ArchRev: GICv3
    typer = b.mem.load(DIST + 4, 4)
    assert typer & 0x1F == (32 + 64) // 32 - 1
    assert b.mem.load(DIST, 4) & (1 << 6), "DS: one security state"
    for cpu in range(3):
        rd = b.redist(cpu)
        assert b.mem.load(rd + 0xFFE8, 4) & 0xF0 == 0x30
        gicr_typer = b.mem.load(rd + 8, 8)
        assert gicr_typer >> 32 == cpu
        assert bool(gicr_typer & 0x10) == (cpu == 2), "Last is set on the last frame only"
        assert b.mem.load(rd + 8, 4) == gicr_typer & 0xFFFF_FFFF
    assert b.rd("SRE") & 1
    assert (b.rd("CTLR") >> 8 & 7) + 1 == 5, "PRIbits"


def test_spi_level_ack_eoi_and_irq_output() -> None:
    b = Board()
    b.linux_init()
    b.enable_spi(40)
    assert not b.irq[0]
    b.gic.set_spi(40, True)
    assert b.irq[0] and not b.irq[1] and not b.fiq[0]
    assert b.rd("HPPIR1") == 40
    assert b.rd("IAR1") == 40
    assert not b.irq[0], "an active interrupt is not signalled again"
    assert b.rd("RPR") == 0xA0
    assert b.mem.load(DIST + 0x300 + 4, 4) == 1 << 8  # ISACTIVER1: active
    assert b.rd("IAR1") == 1023
    b.wr("EOIR1", 40)
    assert b.rd("RPR") == 0xFF
    # Level-sensitive: the line is still high, so it is pending again at once.
    assert b.irq[0]
    b.gic.set_spi(40, False)
    assert not b.irq[0]
    assert b.rd("IAR1") == 1023


def test_edge_interrupt_latches_and_clears_on_ack() -> None:
    b = Board()
    b.linux_init()
    b.enable_spi(33, edge=True)
    b.gic.set_spi(33, True)
    b.gic.set_spi(33, False)
    assert b.irq[0], "an edge stays pending after the line falls"
    assert b.mem.load(DIST + 0x200 + 4, 4) & 2
    assert b.rd("IAR1") == 33
    b.wr("EOIR1", 33)
    assert not b.irq[0], "acknowledged once, gone"
    # Software pending (ISPENDR) and clearing (ICPENDR).
    b.mem.store(DIST + 0x200 + 4, 4, 2)
    assert b.irq[0]
    b.mem.store(DIST + 0x280 + 4, 4, 2)
    assert not b.irq[0]


def test_priority_mask_and_preemption() -> None:
    b = Board()
    b.linux_init()
    b.mem.store(DIST + 0x400 + 34, 1, 0x80)
    b.mem.store(DIST + 0x400 + 35, 1, 0x40)
    b.enable_spi(34)
    b.enable_spi(35)
    b.wr("PMR", 0x80)
    b.gic.set_spi(34, True)
    assert not b.irq[0], "priority 0x80 is not below the mask 0x80"
    assert b.rd("IAR1") == 1023
    assert b.rd("HPPIR1") == 34, "HPPIR ignores the mask"
    b.wr("PMR", 0xF0)
    assert b.irq[0]
    assert b.rd("IAR1") == 34
    assert not b.irq[0]
    b.gic.set_spi(35, True)
    assert b.irq[0], "a higher priority preempts the running one"
    assert b.rd("IAR1") == 35
    assert b.rd("RPR") == 0x40
    assert b.rd("AP1R0") == (1 << (0x40 >> 3)) | (1 << (0x80 >> 3))
    b.wr("EOIR1", 35)
    assert b.rd("RPR") == 0x80
    b.gic.set_spi(35, False)
    b.wr("EOIR1", 34)
    assert b.rd("RPR") == 0xFF and b.rd("AP1R0") == 0
    # Equal priority never preempts; lower INTID wins a tie.
    b.mem.store(DIST + 0x400 + 36, 1, 0x80)
    b.enable_spi(36)
    b.gic.set_spi(36, True)
    assert b.rd("HPPIR1") == 34
    assert b.rd("IAR1") == 34
    assert not b.irq[0], "same group priority as the running one"


def test_split_eoi_needs_dir() -> None:
    b = Board()
    b.linux_init()
    b.wr("CTLR", 2)  # EOImode
    assert b.rd("CTLR") & 2
    b.enable_spi(50)
    b.gic.set_spi(50, True)
    assert b.rd("IAR1") == 50
    b.gic.set_spi(50, False)
    b.wr("EOIR1", 50)
    assert b.rd("RPR") == 0xFF, "priority dropped"
    assert b.mem.load(DIST + 0x300 + 4, 4) & (1 << 18), "still active"
    b.gic.set_spi(50, True)
    assert not b.irq[0], "active: not signalled"
    b.wr("DIR", 50)
    assert b.irq[0]


def test_sgi_by_target_list_and_to_others() -> None:
    b = Board(num_cpus=3)
    b.linux_init()
    for cpu in range(3):
        b.enable_private(cpu, 5)
    b.wr("SGI1R", (5 << 24) | 0b100, cpu=0)  # to CPU 2 only
    assert b.irq == [False, False, True]
    assert b.rd("IAR1", cpu=2) == 5
    b.wr("EOIR1", 5, cpu=2)
    assert b.irq == [False, False, False]
    b.wr("SGI1R", (5 << 24) | (1 << 40), cpu=1)  # IRM: everyone but the sender
    assert b.irq == [True, False, True]
    # SGI0R raises only SGIs configured as group 0, which signal FIQ.
    b.mem.store(b.redist(1) + SGI + 0x80, 4, 0xFFFF_FFFF & ~(1 << 7))
    b.enable_private(1, 7)
    b.wr("IGRPEN0", 1, cpu=1)
    b.mem.store(DIST, 4, 0x13)
    b.wr("SGI1R", (7 << 24) | 0b10, cpu=0)
    assert not b.fiq[1] and not b.irq[1], "group-1 SGI request for a group-0 SGI"
    b.wr("SGI0R", (7 << 24) | 0b10, cpu=0)
    assert b.fiq[1] and not b.irq[1]
    assert b.rd("IAR1", cpu=1) == 1023
    assert b.rd("IAR0", cpu=1) == 7
    b.wr("EOIR0", 7, cpu=1)
    assert not b.fiq[1]


def test_ppi_per_cpu_and_routing() -> None:
    b = Board()
    b.linux_init()
    b.enable_private(1, 27)
    line = b.gic.ppi_line(1, 27)
    line.raise_()
    assert b.irq == [False, True]
    b.gic.ppi_line(0, 27).raise_()
    assert b.irq == [False, True], "CPU 0's PPI 27 is not enabled"
    assert b.rd("IAR1", cpu=1) == 27
    line.lower()
    b.wr("EOIR1", 27, cpu=1)
    assert b.irq == [False, False]
    # SPI routed to CPU 1 by IROUTER; IRM routes to any.
    b.enable_spi(45, cpu=1)
    b.gic.spi_line(45).raise_()
    assert b.irq == [False, True]
    b.mem.store(DIST + 0x6000 + 8 * 45, 8, 1 << 31)
    assert b.irq == [True, True]
    assert b.rd("IAR1", cpu=0) == 45
    assert b.irq == [False, False], "the first acknowledgement wins"


def test_group_and_distributor_enables_gate_outputs() -> None:
    b = Board()
    b.linux_init()
    b.enable_spi(40)
    b.gic.set_spi(40, True)
    assert b.irq[0]
    b.wr("IGRPEN1", 0)
    assert not b.irq[0]
    b.wr("IGRPEN1", 1)
    assert b.irq[0]
    b.mem.store(DIST, 4, 0)
    assert not b.irq[0]
    b.mem.store(DIST, 4, 0x12)
    assert b.irq[0]
    b.mem.store(DIST + 0x180 + 4, 4, 1 << 8)  # ICENABLER
    assert not b.irq[0]


def test_redistributor_wake() -> None:
    b = Board()
    b.linux_init()
    rd = b.redist(0)
    b.mem.store(rd + 0x14, 4, 2)  # ProcessorSleep
    assert b.mem.load(rd + 0x14, 4) == 6, "ChildrenAsleep follows"
    b.enable_spi(40)
    b.gic.set_spi(40, True)
    assert not b.irq[0], "a sleeping redistributor does not signal its CPU"
    b.mem.store(rd + 0x14, 4, 0)
    assert b.mem.load(rd + 0x14, 4) == 0
    assert b.irq[0]


def test_sgi_config_is_edge_and_ppi_config_writable() -> None:
    b = Board()
    rd = b.redist(0) + SGI
    assert b.mem.load(rd + 0xC00, 4) == 0xAAAA_AAAA
    b.mem.store(rd + 0xC00, 4, 0)
    assert b.mem.load(rd + 0xC00, 4) == 0xAAAA_AAAA
    b.mem.store(rd + 0xC04, 4, 0x8000_0000)
    assert b.mem.load(rd + 0xC04, 4) == 0x8000_0000
    assert b.mem.load(DIST + 0xC00, 4) == 0, "the distributor does not show banked ones"


def test_migration_round_trip() -> None:
    b = Board()
    b.linux_init()
    b.enable_spi(40, cpu=1)
    b.gic.set_spi(40, True)
    assert b.rd("IAR1", cpu=1) == 40
    b.enable_spi(41, cpu=1)
    b.gic.set_spi(41, True)
    state = save_device(b.gic)
    c = Board()
    c.gic.set_spi(40, True)
    c.gic.set_spi(41, True)
    load_device(c.gic, state)
    assert c.irq == [False, False], "41 has the same priority as the active 40"
    assert c.rd("RPR", cpu=1) == 0xA0
    c.wr("EOIR1", 40, cpu=1)
    assert c.irq == [False, True]
    assert c.rd("IAR1", cpu=1) == 40, "the level line 40 pends again, lowest INTID"
    with pytest.raises(MigrationError, match="num_cpus"):
        load_device(Board(num_cpus=3).gic, state)


def test_migration_refuses_impossible_state() -> None:
    b = Board()
    b.gic.core.edge.priv[0] = 0  # level-triggered SGIs: no guest can do that
    state = save_device(b.gic)
    c = Board()
    with pytest.raises(MigrationError, match="edge_priv"):
        load_device(c.gic, state)
    assert c.gic.core.edge.priv[0] == 0xFFFF, "a refused stream changes nothing"


def test_group_rules_of_the_cpu_interface() -> None:
    """Architecture pseudocode (and QEMU): a pending group-0 interrupt whose CPU-interface
    group is off still is the highest pending one; EOIR ends only its own group's
    priority; DIR does nothing without EOImode."""
    b = Board()
    b.linux_init()
    b.mem.store(DIST, 4, 0x13)  # both groups forwarded by the distributor
    b.mem.store(DIST + 0x84, 4, 0xFFFF_FFFF & ~(1 << 1))  # SPI 33 in group 0
    b.mem.store(DIST + 0x400 + 33, 1, 0x40)
    b.enable_spi(33)
    b.enable_spi(34)
    b.gic.set_spi(33, True)
    b.gic.set_spi(34, True)
    assert b.rd("HPPIR0") == 1023, "group 0 is off in the CPU interface"
    assert b.rd("IAR1") == 1023, "the group-0 interrupt is the highest pending"
    assert not b.irq[0] and not b.fiq[0]
    b.wr("IGRPEN0", 1)
    assert b.fiq[0] and b.rd("IAR0") == 33
    b.wr("EOIR1", 33)
    assert b.rd("AP0R0") == 1 << (0x40 >> 3), "EOIR1 does not end a group-0 priority"
    b.wr("EOIR0", 33)
    assert b.rd("AP0R0") == 0
    b.gic.set_spi(33, False)
    assert b.rd("IAR1") == 34
    b.wr("DIR", 34)
    assert b.mem.load(DIST + 0x304, 4) & (1 << 2), "DIR without EOImode: ignored"
    b.wr("EOIR1", 34)
    assert not b.mem.load(DIST + 0x304, 4) & (1 << 2)
