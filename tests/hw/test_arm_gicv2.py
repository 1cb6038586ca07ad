"""The GICv2 as Linux's arm,cortex-a15-gic driver drives it: banked registers answer
for the CPU making the access."""

from __future__ import annotations

from pemu.hw.intc import gicv2 as g
from pemu.memory.accessing_cpu import accessing
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

DIST = 0x0800_0000
CPU_IF = 0x0801_0000


class Board:
    def __init__(self, num_cpus: int = 2) -> None:
        self.irq = [False] * num_cpus
        self.fiq = [False] * num_cpus

        def sink(levels: list[bool], cpu: int):
            return lambda level: levels.__setitem__(cpu, level)

        self.gic = g.Gicv2(num_cpus, [sink(self.irq, c) for c in range(num_cpus)],
                           [sink(self.fiq, c) for c in range(num_cpus)], num_spis=64)
        self.mem = AddressSpace()
        self.gic.map(self.mem, DIST, CPU_IF)

    def dist(self, off: int, value: int | None = None, cpu: int = 0, size: int = 4) -> int:
        with accessing(cpu):
            if value is None:
                return self.mem.load(DIST + off, size)
            self.mem.store(DIST + off, size, value)
            return 0

    def cpuif(self, off: int, value: int | None = None, cpu: int = 0) -> int:
        with accessing(cpu):
            if value is None:
                return self.mem.load(CPU_IF + off, 4)
            self.mem.store(CPU_IF + off, 4, value)
            return 0

    def linux_init(self) -> None:
        self.dist(g.GICD_CTLR, 0)
        for intid in range(32, self.gic.num_irqs, 4):
            self.dist(g.GICD_ITARGETSR + intid, 0x01010101)
            self.dist(0x400 + intid, 0xA0A0A0A0)
        self.dist(g.GICD_CTLR, 1)
        for cpu in range(self.gic.num_cpus):
            self.dist(0x180, 0xFFFF0000, cpu=cpu)  # PPIs off
            self.dist(0x100, 0x0000FFFF, cpu=cpu)  # SGIs on
            for intid in range(0, 32, 4):
                self.dist(0x400 + intid, 0xA0A0A0A0, cpu=cpu)
            self.cpuif(g.GICC_PMR, 0xF0, cpu=cpu)
            self.cpuif(g.GICC_CTLR, 1, cpu=cpu)


def test_sgis_are_always_enabled():
    b = Board()
    assert b.dist(0x100) == 0xFFFF
    b.dist(0x180, 0xFFFF_FFFF)
    assert b.dist(0x100) == 0xFFFF, "ICENABLER0 cannot turn SGIs off (as QEMU's GICv2)"


def test_identification_and_banked_targets():
    b = Board(num_cpus=3)
    assert b.dist(0xFE8) & 0xF0 == 0x20
    assert b.dist(g.GICD_TYPER) & 0xFF == (3 - 1) << 5 | (96 // 32 - 1)
    assert b.cpuif(g.GICC_IIDR) >> 16 & 0xF == 2
    for cpu in range(3):
        assert b.dist(g.GICD_ITARGETSR, cpu=cpu) == (1 << cpu) * 0x01010101


def test_spi_level_to_target_cpu_ack_and_eoi():
    b = Board()
    b.linux_init()
    b.dist(g.GICD_ITARGETSR + 40, 2, size=1)  # CPU 1
    b.dist(0x104, 1 << 8)
    b.gic.set_spi(40, True)
    assert b.irq == [False, True] and b.fiq == [False, False], "group 0 without FIQEn: IRQ"
    assert b.cpuif(g.GICC_IAR, cpu=0) == 1023
    assert b.cpuif(g.GICC_HPPIR, cpu=1) == 40
    assert b.cpuif(g.GICC_IAR, cpu=1) == 40
    assert b.irq == [False, False]
    assert b.cpuif(g.GICC_RPR, cpu=1) == 0xA0
    b.gic.set_spi(40, False)
    b.cpuif(g.GICC_EOIR, 40, cpu=1)
    assert b.cpuif(g.GICC_RPR, cpu=1) == 0xFF
    assert b.irq == [False, False]


def test_sgi_sources_and_target_filters():
    b = Board(num_cpus=3)
    b.linux_init()
    b.dist(g.GICD_SGIR, (0 << 24) | (0b100 << 16) | 3, cpu=0)  # SGI 3 to CPU 2
    b.dist(g.GICD_SGIR, (0 << 24) | (0b100 << 16) | 3, cpu=1)  # and again from CPU 1
    assert b.irq == [False, False, True]
    assert b.dist(g.GICD_SPENDSGIR, cpu=2) == 0b011 << 24
    assert b.cpuif(g.GICC_IAR, cpu=2) == 3 | 0 << 10
    b.cpuif(g.GICC_EOIR, 3, cpu=2)
    assert b.irq[2], "CPU 1's request is still pending"
    assert b.cpuif(g.GICC_IAR, cpu=2) == 3 | 1 << 10
    b.cpuif(g.GICC_EOIR, 3 | 1 << 10, cpu=2)
    assert b.irq == [False, False, False]
    b.dist(g.GICD_SGIR, (1 << 24) | 5, cpu=1)  # all but me
    assert b.irq == [True, False, True]
    b.dist(g.GICD_SGIR, (2 << 24) | 6, cpu=1)  # only me
    assert b.irq == [True, True, True]
    assert b.dist(g.GICD_SPENDSGIR + 4, cpu=1) == 0b10 << 16, "SGI 6 from CPU 1 itself"
    b.dist(g.GICD_CPENDSGIR + 4, 0xFF << 16, cpu=1)
    assert b.dist(g.GICD_SPENDSGIR + 4, cpu=1) == 0
    assert b.irq == [True, False, True]


def test_fiq_enable_and_group_1_ack_control():
    b = Board()
    b.linux_init()
    b.cpuif(g.GICC_CTLR, 1 | 8)  # FIQEn: group 0 as FIQ
    b.dist(0x104, 1 << 1)
    b.gic.set_spi(33, True)
    assert b.fiq[0] and not b.irq[0]
    b.dist(0x84, 1 << 1)  # IGROUPR: 33 in group 1, whose interface enable is off
    assert not b.fiq[0] and not b.irq[0]
    b.dist(g.GICD_CTLR, 3)
    b.cpuif(g.GICC_CTLR, 1 | 2 | 8)
    assert b.irq[0]
    assert b.cpuif(g.GICC_HPPIR) == 1022
    assert b.cpuif(g.GICC_IAR) == 1022, "AckCtl clear: GICC_IAR takes group 0 only"
    b.cpuif(g.GICC_CTLR, 1 | 2 | 4 | 8)
    assert b.cpuif(g.GICC_IAR) == 33
    assert not b.irq[0]


def test_ppi_banked_and_split_eoi():
    b = Board()
    b.linux_init()
    b.dist(0x100, 1 << 27, cpu=1)
    b.gic.ppi_line(1, 27).raise_()
    assert b.irq == [False, True]
    assert b.dist(0x100, cpu=0) & (1 << 27) == 0, "CPU 0's PPI 27 is its own"
    b.cpuif(g.GICC_CTLR, 1 | g.CTLR_EOIMODE, cpu=1)
    assert b.cpuif(g.GICC_IAR, cpu=1) == 27
    b.gic.ppi_line(1, 27).lower()
    b.cpuif(g.GICC_EOIR, 27, cpu=1)
    assert b.dist(0x300, cpu=1) & (1 << 27), "still active until GICC_DIR"
    b.gic.ppi_line(1, 27).raise_()
    assert not b.irq[1]
    b.cpuif(g.GICC_DIR, 27, cpu=1)
    assert b.irq[1]


def test_migration_round_trip():
    b = Board()
    b.linux_init()
    b.dist(g.GICD_SGIR, (0b10 << 16) | 2, cpu=0)
    state = save_device(b.gic)
    c = Board()
    load_device(c.gic, state)
    assert c.irq == [False, True]
    assert c.cpuif(g.GICC_IAR, cpu=1) == 2
    assert c.dist(g.GICD_ITARGETSR + 32, cpu=0) == 0x01010101


def test_uniprocessor_targets_and_eight_priority_bits():
    b = Board(num_cpus=1)
    b.linux_init()
    assert b.dist(g.GICD_ITARGETSR + 32) == 0, "RAZ/WI with one CPU"
    b.dist(0x104, 1 << 8)
    b.dist(0x400 + 40, 0x81, size=1)
    assert b.dist(0x400 + 40, size=1) == 0x81
    b.cpuif(g.GICC_PMR, 0xFF)
    assert b.cpuif(g.GICC_PMR) == 0xFF
    b.gic.set_spi(40, True)
    assert b.irq == [True], "every SPI reaches the only CPU"
    assert b.cpuif(g.GICC_IAR) == 40
    assert b.cpuif(g.GICC_RPR) == 0x80, "group priority: bits 7-1 at BPR 0"
    assert b.cpuif(g.GICC_APR0 + 8) == 1, "preemption level 0x40 is bit 0 of APR2"
