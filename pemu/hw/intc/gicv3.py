"""The Arm GICv3 as QEMU's virt board presents it without ``secure=on``: one security
state (GICD_CTLR.DS=1), affinity routing always on (ARE), no LPIs and no ITS.

  distributor     0x10000 bytes (virt: 0x08000000)   GICD_* : SPIs, their routing
  redistributors  0x20000 bytes per CPU (virt: 0x080a0000), in CPU order: an RD frame
                  (GICR_CTLR, TYPER, WAKER) and an SGI frame (the CPU's SGIs and PPIs)
  CPU interface   the ICC_* system registers: ``icc_sysregs()`` (gicv3_cpuif.py)

A CPU's affinity (GICR_TYPER, IROUTER, SGI1R targets) is ``mpidr_affinity(index)``: Aff0
is the index for up to 16 CPUs, as on QEMU's virt board, where a cluster has 16 CPUs.
The redistributor of a CPU whose GICR_WAKER.ProcessorSleep is set (the reset value)
does not signal it: the OS wakes it before it enables interrupts.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.core import Device
from pemu.hw.intc import gic_irq_regs
from pemu.hw.intc.gic_core import NUM_PRIVATE, GicCore
from pemu.hw.intc.gic_state import GicStateMixin, gic_vmstate
from pemu.hw.intc.gic_wiring import Frame, GicWiring
from pemu.hw.intc.gicv3_cpuif import IccRegister, SysregKey, icc_sysregs

DIST_SIZE = 0x10000
REDIST_STRIDE = 0x20000
SGI_FRAME = 0x10000

GICD_CTLR = 0x0000
GICD_TYPER = 0x0004
GICD_IIDR = 0x0008
GICD_IROUTER = 0x6000
GICD_IROUTER_END = 0x8000
GICR_CTLR = 0x0000
GICR_IIDR = 0x0004
GICR_TYPER = 0x0008
GICR_WAKER = 0x0014
ID_REGS = 0xFFD0

CTLR_GRP0 = 1 << 0
CTLR_GRP1 = 1 << 1
CTLR_ARE = 1 << 4  # affinity routing: always on here (RAO/WI)
CTLR_DS = 1 << 6  # security disabled: RAO/WI, so the OS may use group 0
WAKER_PROCESSOR_SLEEP = 1 << 1
WAKER_CHILDREN_ASLEEP = 1 << 2
TYPER_LAST = 1 << 4
IROUTER_IRM = 1 << 31
IROUTER_AFFINITY = 0xFF_00FF_FFFF

IIDR = 0x43B  # Arm as implementer, as QEMU 7.2 reports it
# PIDR4..7 then PIDR0..3 then CIDR0..3 (0xFFD0..0xFFFC): ArchRev 3 in PIDR2.
DIST_IDS = (0x44, 0, 0, 0, 0x92, 0xB4, 0x3B, 0, 0x0D, 0xF0, 0x05, 0xB1)
REDIST_IDS = (0x44, 0, 0, 0, 0x93, 0xB4, 0x3B, 0, 0x0D, 0xF0, 0x05, 0xB1)


def mpidr_affinity(cpu_index: int) -> int:
    """Aff3.Aff2.Aff1.Aff0 (32 bits, Aff3 on top) of a CPU: 16 CPUs per cluster."""
    return ((cpu_index // 16) << 8) | (cpu_index % 16)


def _irouter_affinity(value: int) -> int:
    """An IROUTER value's affinity in ``mpidr_affinity`` form."""
    return (value & 0xFF_FFFF) | ((value >> 32 & 0xFF) << 24)



class Gicv3(GicWiring, GicStateMixin, Device):
    """``Gicv3(num_cpus, cpu_irq, cpu_fiq, num_spis=256)``: see the module docstring."""

    model_name = "GICv3"
    type_name = "arm-gicv3"
    vmstate = gic_vmstate("arm_gicv3", extra=(("irouter", "u64[]"), ("waker_sleep", "bool[]"),
                                              ("pmhe", "bool[]")))

    def __init__(self, num_cpus: int, cpu_irq: list[Callable[[bool], None]],
                 cpu_fiq: list[Callable[[bool], None]], num_spis: int = 256,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.core = GicCore(num_cpus, NUM_PRIVATE + num_spis, cpu_irq, cpu_fiq)
        self.lock = self.core.lock
        self.num_cpus = num_cpus
        self.num_irqs = self.core.num_irqs
        self.core.cpu_awake = lambda cpu: not self.waker_sleep[cpu]
        self.core.spi_targets = lambda cpu: self._spi_routes[cpu]
        self.init_lines(num_cpus)
        self._sysregs: dict[SysregKey, IccRegister] | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.core.reset_state()
            self.irouter = [0] * self.num_irqs
            self.waker_sleep = [True] * self.num_cpus
            self.pmhe = [False] * self.num_cpus
            self._route_all()
            self.core.update()

    # -- wiring (set_spi, spi_line, ppi_line: gic_wiring.GicWiring) ----------------------
    def map(self, address_space, dist_base: int, redist_base: int) -> None:  # noqa: ANN001
        address_space.add_mmio("gic-dist", dist_base, DIST_SIZE,
                               Frame(self.dist_read, self.dist_write))
        address_space.add_mmio("gic-redist", redist_base, REDIST_STRIDE * self.num_cpus,
                               Frame(self.redist_read, self.redist_write))

    def icc_sysregs(self) -> dict[SysregKey, IccRegister]:
        if self._sysregs is None:
            self._sysregs = icc_sysregs(self)
        return self._sysregs

    # -- routing ----------------------------------------------------------------------
    def _route_all(self) -> None:
        self._spi_routes = [0] * self.num_cpus
        for intid in range(NUM_PRIVATE, self.num_irqs):
            self._route(intid)

    def _route(self, intid: int) -> None:
        """Put SPI ``intid`` in the route bitmap of the CPUs its IROUTER names."""
        value = self.irouter[intid]
        bit = 1 << intid
        for cpu in range(self.num_cpus):
            # IRM is 1 of N: every CPU may take it; the first acknowledgement wins.
            if value & IROUTER_IRM or _irouter_affinity(value) == mpidr_affinity(cpu):
                self._spi_routes[cpu] |= bit
            else:
                self._spi_routes[cpu] &= ~bit

    def send_sgi(self, cpu: int, value: int, group: int) -> None:
        """ICC_SGI1R/SGI0R written by ``cpu``: make the SGI pending on its targets, those
        where it is configured in ``group``."""
        intid = value >> 24 & 0xF
        if value >> 40 & 1:  # IRM: every CPU but the sender
            targets = [t for t in range(self.num_cpus) if t != cpu]
        else:
            upper = ((value >> 48 & 0xFF) << 24) | ((value >> 32 & 0xFF) << 16) \
                | ((value >> 16 & 0xFF) << 8)
            base = (value >> 44 & 0xF) * 16
            targets = [t for t in range(self.num_cpus)
                       if mpidr_affinity(t) & ~0xFF == upper
                       and 0 <= (mpidr_affinity(t) & 0xFF) - base < 16
                       and value >> ((mpidr_affinity(t) & 0xFF) - base) & 1]
        with self.lock:
            for t in targets:
                if int(self.core.group.test(t, intid)) == group:
                    self.core.latch.assign(t, intid, True)
                    self.core.update_cpu(t)

    # -- distributor ------------------------------------------------------------------
    def dist_read(self, offset: int, size: int) -> int:
        if size == 8 and not GICD_IROUTER <= offset < GICD_IROUTER_END:
            return self.dist_read(offset, 4) | self.dist_read(offset + 4, 4) << 32
        with self.lock:
            if offset == GICD_CTLR:
                return (CTLR_ARE | CTLR_DS | (CTLR_GRP0 if self.core.dist_grp0 else 0)
                        | (CTLR_GRP1 if self.core.dist_grp1 else 0))
            if offset == GICD_TYPER:
                # ITLinesNumber, CPUNumber, IDbits 9 (INTIDs below 1024), A3V.
                return ((self.num_irqs // 32 - 1) | min(self.num_cpus - 1, 7) << 5
                        | 9 << 19 | 1 << 24)
            if offset == GICD_IIDR:
                return IIDR
            if gic_irq_regs.handles(offset):
                return gic_irq_regs.read(self.core, 0, offset, size, NUM_PRIVATE,
                                         self.num_irqs)
            if GICD_IROUTER <= offset < GICD_IROUTER_END:
                intid, byte = divmod(offset - GICD_IROUTER, 8)
                if not NUM_PRIVATE <= intid < self.num_irqs:
                    return 0
                return (self.irouter[intid] >> (8 * byte)) & ((1 << (8 * size)) - 1)
            if offset >= ID_REGS:
                return _id_reg(DIST_IDS, offset)
            return 0

    def dist_write(self, offset: int, size: int, value: int) -> None:
        if size == 8 and not GICD_IROUTER <= offset < GICD_IROUTER_END:
            self.dist_write(offset, 4, value & 0xFFFF_FFFF)
            self.dist_write(offset + 4, 4, value >> 32)
            return
        with self.lock:
            if offset == GICD_CTLR:
                self.core.dist_grp0 = bool(value & CTLR_GRP0)
                self.core.dist_grp1 = bool(value & CTLR_GRP1)
                self.core.update()
            elif gic_irq_regs.handles(offset):
                gic_irq_regs.write(self.core, 0, offset, size, value, NUM_PRIVATE,
                                   self.num_irqs)
            elif GICD_IROUTER <= offset < GICD_IROUTER_END:
                intid, byte = divmod(offset - GICD_IROUTER, 8)
                if NUM_PRIVATE <= intid < self.num_irqs:
                    mask = ((1 << (8 * size)) - 1) << (8 * byte)
                    old = self.irouter[intid]
                    new = (old & ~mask) | ((value << (8 * byte)) & mask)
                    self.irouter[intid] = new & (IROUTER_AFFINITY | IROUTER_IRM)
                    self._route(intid)
                    self.core.update()

    # -- redistributors ---------------------------------------------------------------
    def redist_read(self, offset: int, size: int) -> int:
        cpu, offset = divmod(offset, REDIST_STRIDE)
        if size == 8 and offset != GICR_TYPER:
            return self.redist_read(cpu * REDIST_STRIDE + offset, 4) \
                | self.redist_read(cpu * REDIST_STRIDE + offset + 4, 4) << 32
        with self.lock:
            if offset >= SGI_FRAME:
                offset -= SGI_FRAME
                if gic_irq_regs.handles(offset):
                    return gic_irq_regs.read(self.core, cpu, offset, size, 0, NUM_PRIVATE)
                return _id_reg(REDIST_IDS, offset) if offset >= ID_REGS else 0
            if GICR_TYPER <= offset < GICR_TYPER + 8:
                typer = (mpidr_affinity(cpu) << 32 | cpu << 8
                         | (TYPER_LAST if cpu == self.num_cpus - 1 else 0))
                return (typer >> (8 * (offset - GICR_TYPER))) & ((1 << (8 * size)) - 1)
            if offset == GICR_IIDR:
                return IIDR
            if offset == GICR_WAKER:
                return (WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
                        if self.waker_sleep[cpu] else 0)
            if offset >= ID_REGS:
                return _id_reg(REDIST_IDS, offset)
            return 0  # GICR_CTLR: no LPIs, writes complete at once (RWP 0)

    def redist_write(self, offset: int, size: int, value: int) -> None:
        cpu, offset = divmod(offset, REDIST_STRIDE)
        if size == 8:
            self.redist_write(cpu * REDIST_STRIDE + offset, 4, value & 0xFFFF_FFFF)
            self.redist_write(cpu * REDIST_STRIDE + offset + 4, 4, value >> 32)
            return
        with self.lock:
            if offset >= SGI_FRAME:
                if gic_irq_regs.handles(offset - SGI_FRAME):
                    gic_irq_regs.write(self.core, cpu, offset - SGI_FRAME, size, value,
                                       0, NUM_PRIVATE)
            elif offset == GICR_WAKER:
                # ChildrenAsleep follows ProcessorSleep at once: there is no interface
                # to quiesce.
                self.waker_sleep[cpu] = bool(value & WAKER_PROCESSOR_SLEEP)
                self.core.update_cpu(cpu)


def _id_reg(ids: tuple[int, ...], offset: int) -> int:
    index = (offset - ID_REGS) >> 2
    return ids[index] if offset & 3 == 0 and index < len(ids) else 0

