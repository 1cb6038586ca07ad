"""The Arm GICv2 as QEMU's virt board presents it with ``gic-version=2`` (no security
extensions, no virtualization extensions): Linux's "arm,cortex-a15-gic" driver.

  distributor    0x1000 bytes (virt: 0x08000000): GICD_*; the SGI/PPI registers
                 (word 0 of each per-interrupt block, ITARGETSR0-7) are banked per CPU
  CPU interface  0x2000 bytes (virt: 0x08010000): GICC_*, banked per CPU

Banked registers answer for the CPU making the access (``pemu.memory.accessing_cpu``).
SPIs go to the CPUs named in their ITARGETSR byte; with several named, all of them are
signalled and the first acknowledgement takes it.  An SGI remembers each CPU that sent
it (GICv2 keeps one pending bit per source): GICC_IAR reports the source in bits 10-12
and the SGI stays pending while other sources wait.  Group 0 is signalled as IRQ unless
GICC_CTLR.FIQEn is set; Linux leaves every interrupt in group 0.

Where the architecture leaves room, this follows QEMU 7.2's GICv2 (checked by
tests/hw/test_arm_gic_qemu_oracle.py): 8 priority bits (BPR from 0, GICC_APR0-3), with
one CPU the ITARGETSRs read as zero and every SPI goes to it, GICC_HPPIR shows only an
interrupt that beats the priority mask, a group-1 interrupt GICC_IAR may not take
(AckCtl clear) reads as 1022, and without security extensions the aliased registers
(GICC_AIAR, AEOIR, AHPPIR, NSAPRn) read as zero and ignore writes; SGIs are always
enabled.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.core import Device
from pemu.hw.intc import gic_irq_regs
from pemu.hw.intc.gic_core import GICV2_PRIORITY_BITS, NUM_PRIVATE, SPURIOUS, GicCore
from pemu.hw.intc.gic_state import GicStateMixin, gic_vmstate
from pemu.hw.intc.gic_wiring import Frame, GicWiring
from pemu.memory.accessing_cpu import current_cpu_index

DIST_SIZE = 0x1000
CPU_IF_SIZE = 0x2000

GICD_CTLR = 0x000
GICD_TYPER = 0x004
GICD_IIDR = 0x008
GICD_ITARGETSR = 0x800
GICD_ITARGETSR_END = 0xC00
GICD_SGIR = 0xF00
GICD_CPENDSGIR = 0xF10
GICD_SPENDSGIR = 0xF20
ID_REGS = 0xFD0

GICC_CTLR = 0x00
GICC_PMR = 0x04
GICC_BPR = 0x08
GICC_IAR = 0x0C
GICC_EOIR = 0x10
GICC_RPR = 0x14
GICC_HPPIR = 0x18
GICC_ABPR = 0x1C
GICC_APR0 = 0xD0
GICC_APR_END = 0xE0
GICC_IIDR = 0xFC
GICC_DIR = 0x1000

CTLR_GRP0 = 1 << 0
CTLR_GRP1 = 1 << 1
CTLR_ACKCTL = 1 << 2
CTLR_FIQEN = 1 << 3
CTLR_CBPR = 1 << 4
CTLR_BYPASS = 0xF << 5  # FIQBypDis/IRQBypDis: kept, nothing to bypass to
CTLR_EOIMODE = 1 << 9

DIST_IIDR = 0x0200_043B
CPU_IIDR = 0x0002_043B  # architecture version 2, Arm (QEMU's value)
# PIDR4..7, PIDR0..3, CIDR0..3 at 0xFD0: ArchRev 2 in PIDR2.
DIST_IDS = (0x04, 0, 0, 0, 0x90, 0xB4, 0x2B, 0, 0x0D, 0xF0, 0x05, 0xB1)



class Gicv2(GicWiring, GicStateMixin, Device):
    """``Gicv2(num_cpus, cpu_irq, cpu_fiq, num_spis=256)``: see the module docstring."""

    model_name = "GICv2"
    type_name = "arm_gic"
    vmstate = gic_vmstate("arm_gic", extra=(("itargets", "u8[]"), ("sgi_sources", "u8[]"),
                                            ("ackctl", "bool[]"), ("bypass", "u8[]")))

    def __init__(self, num_cpus: int, cpu_irq: list[Callable[[bool], None]],
                 cpu_fiq: list[Callable[[bool], None]], num_spis: int = 256,
                 id: str | None = None) -> None:
        if not 1 <= num_cpus <= 8:
            raise ValueError(f"GICv2: {num_cpus} CPUs (it serves 1 to 8)")
        super().__init__(id)
        self.core = GicCore(num_cpus, NUM_PRIVATE + num_spis, cpu_irq, cpu_fiq,
                            priority_bits=GICV2_PRIORITY_BITS)
        self.lock = self.core.lock
        self.num_cpus = num_cpus
        self.num_irqs = self.core.num_irqs
        self.core.spi_targets = lambda cpu: self._spi_routes[cpu]
        self.core.group0_is_fiq = lambda cpu: self.core.cpus[cpu].fiq_en
        self.init_lines(num_cpus)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.core.reset_state()
            for c in self.core.cpus:
                c.fiq_en = False
            for cpu in range(self.num_cpus):
                self.core.enabled.priv[cpu] |= 0xFFFF  # SGIs: always enabled
            self.itargets = [0] * self.num_irqs
            self.sgi_sources = [0] * (16 * self.num_cpus)  # [cpu * 16 + sgi]: sender bits
            self.ackctl = [False] * self.num_cpus
            self.bypass = [0] * self.num_cpus
            self._route_all()
            self.core.update()

    # -- wiring (set_spi, spi_line, ppi_line: gic_wiring.GicWiring) ----------------------
    def map(self, address_space, dist_base: int, cpu_base: int) -> None:  # noqa: ANN001
        address_space.add_mmio("gic-dist", dist_base, DIST_SIZE,
                               Frame(self.dist_read, self.dist_write))
        address_space.add_mmio("gic-cpu", cpu_base, CPU_IF_SIZE,
                               Frame(self.cpu_read, self.cpu_write))

    def _cpu(self) -> int:
        index = current_cpu_index()
        return index if index < self.num_cpus else 0

    # -- routing and SGIs -------------------------------------------------------------
    def _route_all(self) -> None:
        routes = [0] * self.num_cpus
        for intid in range(NUM_PRIVATE, self.num_irqs):
            # A uniprocessor GIC has no target registers: everything goes to CPU 0.
            targets = self.itargets[intid] if self.num_cpus > 1 else 1
            for cpu in range(self.num_cpus):
                if targets >> cpu & 1:
                    routes[cpu] |= 1 << intid
        self._spi_routes = routes

    def _set_sgi_sources(self, cpu: int, sgi: int, sources: int) -> None:
        self.sgi_sources[cpu * 16 + sgi] = sources & 0xFF
        self.core.latch.assign(cpu, sgi, bool(sources))

    def send_sgi(self, sender: int, value: int) -> None:
        """GICD_SGIR written by ``sender``."""
        sgi = value & 0xF
        target_filter = value >> 24 & 3
        if target_filter == 0:
            targets = value >> 16 & 0xFF
        elif target_filter == 1:
            targets = ((1 << self.num_cpus) - 1) & ~(1 << sender)
        elif target_filter == 2:
            targets = 1 << sender
        else:
            return  # reserved
        for cpu in range(self.num_cpus):
            if targets >> cpu & 1:
                self._set_sgi_sources(cpu, sgi, self.sgi_sources[cpu * 16 + sgi] | 1 << sender)
                self.core.update_cpu(cpu)

    # -- distributor ------------------------------------------------------------------
    def dist_read(self, offset: int, size: int) -> int:
        cpu = self._cpu()
        with self.lock:
            if offset == GICD_CTLR:
                return (CTLR_GRP0 if self.core.dist_grp0 else 0) | \
                    (CTLR_GRP1 if self.core.dist_grp1 else 0)
            if offset == GICD_TYPER:
                return (self.num_irqs // 32 - 1) | (self.num_cpus - 1) << 5
            if offset == GICD_IIDR:
                return DIST_IIDR
            if gic_irq_regs.handles(offset):
                return gic_irq_regs.read(self.core, cpu, offset, size, 0, self.num_irqs)
            if GICD_ITARGETSR <= offset < GICD_ITARGETSR_END:
                first = offset - GICD_ITARGETSR
                return sum(self._target_byte(cpu, first + i) << (8 * i) for i in range(size))
            if GICD_CPENDSGIR <= offset < GICD_SPENDSGIR + 0x10:
                first = (offset - GICD_CPENDSGIR) & 0xF
                return sum(self.sgi_sources[cpu * 16 + first + i] << (8 * i)
                           for i in range(size) if first + i < 16)
            if offset >= ID_REGS:
                index = (offset - ID_REGS) >> 2
                return DIST_IDS[index] if index < len(DIST_IDS) else 0
            return 0

    def _target_byte(self, cpu: int, intid: int) -> int:
        if self.num_cpus == 1:
            return 0  # RAZ/WI on a uniprocessor GIC
        if intid < NUM_PRIVATE:
            return 1 << cpu  # banked: the CPU reading is the only target
        return self.itargets[intid] if intid < self.num_irqs else 0

    def dist_write(self, offset: int, size: int, value: int) -> None:
        cpu = self._cpu()
        with self.lock:
            if offset == GICD_CTLR:
                self.core.dist_grp0 = bool(value & CTLR_GRP0)
                self.core.dist_grp1 = bool(value & CTLR_GRP1)
                self.core.update()
            elif gic_irq_regs.handles(offset):
                block = offset & ~0x7F
                if block in (gic_irq_regs.ISPENDR, gic_irq_regs.ICPENDR,
                             gic_irq_regs.ICENABLER) and offset == block:
                    # SGI pending bits are set and cleared per source (SPENDSGIR), and
                    # SGIs are always enabled (as QEMU's GICv2): word 0 ignores them.
                    value &= ~0xFFFF
                gic_irq_regs.write(self.core, cpu, offset, size, value, 0, self.num_irqs)
            elif GICD_ITARGETSR <= offset < GICD_ITARGETSR_END:
                first = offset - GICD_ITARGETSR
                valid = (1 << self.num_cpus) - 1
                for i in range(size):
                    if NUM_PRIVATE <= first + i < self.num_irqs:
                        self.itargets[first + i] = value >> (8 * i) & valid
                self._route_all()
                self.core.update()
            elif offset == GICD_SGIR:
                self.send_sgi(cpu, value)
            elif GICD_CPENDSGIR <= offset < GICD_SPENDSGIR + 0x10:
                setting = offset >= GICD_SPENDSGIR
                first = (offset - GICD_CPENDSGIR) & 0xF
                for i in range(size):
                    if first + i < 16:
                        slot = cpu * 16 + first + i
                        bits = value >> (8 * i) & 0xFF
                        sources = self.sgi_sources[slot] | bits if setting \
                            else self.sgi_sources[slot] & ~bits
                        self._set_sgi_sources(cpu, first + i, sources)
                self.core.update_cpu(cpu)

    # -- CPU interface ----------------------------------------------------------------
    def _acknowledge(self, cpu: int) -> int:
        intid, group, _ = self.core.can_take(cpu)
        if intid != SPURIOUS and group == 1 and not self.ackctl[cpu]:
            return 1022  # a group-1 interrupt that GICC_IAR may not take
        intid = self.core.acknowledge(cpu, (0, 1))
        if intid >= 16:
            return intid
        # An SGI: take the lowest sender; the others keep it pending.
        sources = self.sgi_sources[cpu * 16 + intid]
        source = (sources & -sources).bit_length() - 1 if sources else 0
        self._set_sgi_sources(cpu, intid, sources & ~(1 << source))
        self.core.update_cpu(cpu)
        return intid | source << 10

    def _hppir(self, cpu: int) -> int:
        intid, prio = self.core.highest_pending(cpu)
        if intid == SPURIOUS or prio >= self.core.cpus[cpu].pmr:
            return SPURIOUS
        if self.core.group.test(cpu, intid) and not self.ackctl[cpu]:
            return 1022
        if intid < 16:
            sources = self.sgi_sources[cpu * 16 + intid]
            return intid | max(0, (sources & -sources).bit_length() - 1) << 10
        return intid

    def cpu_read(self, offset: int, size: int) -> int:
        cpu = self._cpu()
        with self.lock:
            c = self.core.cpus[cpu]
            if offset == GICC_CTLR:
                return ((CTLR_GRP0 if c.grpen0 else 0) | (CTLR_GRP1 if c.grpen1 else 0)
                        | (CTLR_ACKCTL if self.ackctl[cpu] else 0)
                        | (CTLR_FIQEN if c.fiq_en else 0) | (CTLR_CBPR if c.cbpr else 0)
                        | self.bypass[cpu] << 5 | (CTLR_EOIMODE if c.eoimode else 0))
            if offset == GICC_PMR:
                return c.pmr
            if offset == GICC_BPR:
                return c.bpr0
            if offset == GICC_ABPR:
                return min(c.bpr0 + 1, 7) if c.cbpr else c.bpr1
            if offset == GICC_IAR:
                return self._acknowledge(cpu)
            if offset == GICC_RPR:
                return self.core.running_priority(cpu)
            if offset == GICC_HPPIR:
                return self._hppir(cpu)
            if GICC_APR0 <= offset < GICC_APR_END:
                return (c.ap0 >> (8 * (offset - GICC_APR0))) & 0xFFFF_FFFF
            if offset == GICC_IIDR:
                return CPU_IIDR
            return 0

    def cpu_write(self, offset: int, size: int, value: int) -> None:
        cpu = self._cpu()
        with self.lock:
            c = self.core.cpus[cpu]
            if offset == GICC_CTLR:
                c.grpen0 = bool(value & CTLR_GRP0)
                c.grpen1 = bool(value & CTLR_GRP1)
                self.ackctl[cpu] = bool(value & CTLR_ACKCTL)
                c.fiq_en = bool(value & CTLR_FIQEN)
                c.cbpr = bool(value & CTLR_CBPR)
                self.bypass[cpu] = (value & CTLR_BYPASS) >> 5
                c.eoimode = bool(value & CTLR_EOIMODE)
            elif offset == GICC_PMR:
                c.pmr = value & self.core.pmr_mask
            elif offset == GICC_BPR:
                c.bpr0 = max(self.core.min_bpr0, value & 7)
            elif offset == GICC_ABPR:
                if not c.cbpr:
                    c.bpr1 = max(self.core.min_bpr0 + 1, value & 7)
            elif offset == GICC_EOIR:
                self.core.end_of_interrupt(cpu, value & 0x3FF)
            elif offset == GICC_DIR:
                self.core.deactivate_split(cpu, value & 0x3FF)
            elif GICC_APR0 <= offset < GICC_APR_END and offset & 3 == 0:
                shift = 8 * (offset - GICC_APR0)
                c.ap0 = (c.ap0 & ~(0xFFFF_FFFF << shift)) | (value & 0xFFFF_FFFF) << shift
            else:
                return
            self.core.update_cpu(cpu)
