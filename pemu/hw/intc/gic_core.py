"""The interrupt state and CPU-interface arithmetic that GICv2 and GICv3 share.

Both versions keep, per interrupt ID (INTID): enable, group (0 or 1), priority,
trigger (level or edge), the input line's level, a pending latch and the active bit.
INTIDs 0-15 (SGIs) and 16-31 (PPIs) are banked per CPU; 32 and up (SPIs) are shared
and routed to CPUs by the version's own rule (GICv2 ITARGETSR, GICv3 IROUTER), which it
hands to ``GicCore`` as one SPI bitmap per CPU.

Bitmaps are Python ints: bits 0-31 of a banked bitmap live in ``priv[cpu]``, bits 32+
in ``spi``, and ``get(cpu)`` joins them, so one register decoder serves the banked
(GICv3 redistributor, GICv2 word 0) and shared registers alike.

Pending state: an edge-triggered interrupt is pending while its latch is set (a rising
edge or a write to ISPENDR sets it, acknowledgement or ICPENDR clears it); a level one
while its line is high or its latch is set.  Acknowledging sets active; an active
interrupt is not signalled again until it is deactivated (it may be active and pending).

The CPU interface keeps the priority mask (PMR), binary points, the active-priority
bits (one bit per group priority, as the AP0R/AP1R registers show them) and the group
enables; ``GicCore.update`` drives each CPU's IRQ and FIQ outputs from all of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

NUM_PRIVATE = 32
SPURIOUS = 1023
GICV3_PRIORITY_BITS = 5  # as QEMU's TCG GICv3: 32 priority levels, all preemptive
GICV2_PRIORITY_BITS = 8  # as QEMU's GICv2: 256 levels, 128 of them preemptive
IDLE_PRIORITY = 0xFF
PRIVATE_MASK = 0xFFFF_FFFF
SGI_MASK = 0xFFFF


class BankedBits:
    """One per-interrupt bitmap: 32 banked bits per CPU plus the shared SPI bits."""

    __slots__ = ("priv", "spi")

    def __init__(self, num_cpus: int) -> None:
        self.priv = [0] * num_cpus
        self.spi = 0

    def get(self, cpu: int) -> int:
        return self.priv[cpu] | self.spi

    def put(self, cpu: int, value: int) -> None:
        self.priv[cpu] = value & PRIVATE_MASK
        self.spi = value & ~PRIVATE_MASK

    def test(self, cpu: int, intid: int) -> bool:
        return bool(self.get(cpu) >> intid & 1)

    def assign(self, cpu: int, intid: int, on: bool) -> None:
        bit = 1 << intid
        if intid < NUM_PRIVATE:
            self.priv[cpu] = self.priv[cpu] | bit if on else self.priv[cpu] & ~bit
        else:
            self.spi = self.spi | bit if on else self.spi & ~bit

    def clear(self) -> None:
        self.priv = [0] * len(self.priv)
        self.spi = 0


class CpuInterface:
    """What one CPU's interface holds (ICC_* on GICv3, GICC_* on GICv2)."""

    __slots__ = ("pmr", "bpr0", "bpr1", "ap0", "ap1", "grpen0", "grpen1", "eoimode",
                 "cbpr", "fiq_en", "irq_out", "fiq_out", "min_bpr0")

    def __init__(self, min_bpr0: int) -> None:
        self.min_bpr0 = min_bpr0
        self.reset()
        self.irq_out = False
        self.fiq_out = False

    def reset(self) -> None:
        self.pmr = 0  # masks everything until the OS opens it
        self.bpr0 = self.min_bpr0
        self.bpr1 = self.min_bpr0 + 1
        # Bit n: group priority n << (min_bpr0 + 1) is active (AP0R/AP1R, GICC_APR).
        self.ap0 = 0
        self.ap1 = 0
        self.grpen0 = False
        self.grpen1 = False
        self.eoimode = False  # split priority drop (EOIR) and deactivation (DIR)
        self.cbpr = False  # group 1 uses BPR0 as well
        self.fiq_en = True  # GICv2 without FIQEn signals group 0 as IRQ; GICv3 always FIQ


def group_priority(priority: int, bpr: int) -> int:
    """The part of a priority that decides preemption, for a group-0 style binary point
    (bits [7:bpr+1] count)."""
    return priority & (0xFF << (bpr + 1)) & 0xFF


class GicCore:
    """Interrupt state, arbitration and the CPU interfaces' logic; no register layout.

    ``spi_targets(cpu)`` gives the SPI bits routed to ``cpu`` (the version's routing).
    ``cpu_irq[i]``/``cpu_fiq[i]`` are called when CPU i's output changes, under
    ``self.lock``.
    """

    def __init__(self, num_cpus: int, num_irqs: int, cpu_irq: list[Callable[[bool], None]],
                 cpu_fiq: list[Callable[[bool], None]],
                 priority_bits: int = GICV3_PRIORITY_BITS) -> None:
        if num_irqs % 32 or not NUM_PRIVATE < num_irqs <= 1020:
            raise ValueError(f"GIC: {num_irqs} interrupts (want a multiple of 32, 64..1020)")
        if len(cpu_irq) != num_cpus or len(cpu_fiq) != num_cpus:
            raise ValueError("GIC: one IRQ and one FIQ output per CPU")
        self.num_cpus = num_cpus
        self.num_irqs = num_irqs
        self.valid = (1 << num_irqs) - 1
        self.lock = threading.RLock()
        self._irq_sinks = list(cpu_irq)
        self._fiq_sinks = list(cpu_fiq)
        self.enabled = BankedBits(num_cpus)
        self.group = BankedBits(num_cpus)  # 1 = group 1
        self.edge = BankedBits(num_cpus)  # 1 = edge-triggered (ICFGR 0b10)
        self.level = BankedBits(num_cpus)  # the input lines
        self.latch = BankedBits(num_cpus)  # pending by edge or software
        self.active = BankedBits(num_cpus)
        self.priv_priority = [bytearray(NUM_PRIVATE) for _ in range(num_cpus)]
        self.spi_priority = bytearray(num_irqs)
        self.priority_bits = priority_bits
        self.pmr_mask = (0xFF << (8 - priority_bits)) & 0xFF
        # The smallest binary point: every implemented priority bit preempts, but a
        # group priority has at most 7 bits (BPR0 = 0 leaves bit 0 as subpriority).
        self.min_bpr0 = 7 - min(priority_bits, 7)
        self.ap_shift = self.min_bpr0 + 1  # group priority -> active-priority bit
        self.cpus = [CpuInterface(self.min_bpr0) for _ in range(num_cpus)]
        self.dist_grp0 = False
        self.dist_grp1 = False
        # Set by the version: may the CPU interface signal at all (GICR_WAKER, GICC_CTLR)?
        self.cpu_awake: Callable[[int], bool] = lambda cpu: True
        self.spi_targets: Callable[[int], int] = lambda cpu: 0
        self.group0_is_fiq: Callable[[int], bool] = lambda cpu: True

    def reset_state(self) -> None:
        """Power-on values of the interrupt state (lines keep their levels)."""
        for bits in (self.enabled, self.group, self.latch, self.active):
            bits.clear()
        # SGIs are always edge-triggered; PPIs and SPIs power on level-sensitive.
        self.edge.clear()
        for cpu in range(self.num_cpus):
            self.edge.priv[cpu] = SGI_MASK
            self.priv_priority[cpu][:] = bytes(NUM_PRIVATE)
        self.spi_priority[:] = bytes(self.num_irqs)
        for c in self.cpus:
            c.reset()
        self.dist_grp0 = self.dist_grp1 = False

    # -- per-interrupt views ---------------------------------------------------------
    def priority(self, cpu: int, intid: int) -> int:
        if intid < NUM_PRIVATE:
            return self.priv_priority[cpu][intid]
        return self.spi_priority[intid]

    def set_priority(self, cpu: int, intid: int, value: int) -> None:
        # All eight bits are kept, as QEMU's distributor does; only the CPU interface's
        # group priorities are cut to the implemented bits.
        if intid < NUM_PRIVATE:
            self.priv_priority[cpu][intid] = value & 0xFF
        elif intid < self.num_irqs:
            self.spi_priority[intid] = value & 0xFF

    def pending(self, cpu: int) -> int:
        return self.latch.get(cpu) | (self.level.get(cpu) & ~self.edge.get(cpu))

    def set_line(self, cpu: int, intid: int, level: bool) -> None:
        """An input line changed: a PPI of ``cpu``, or an SPI (``cpu`` ignored)."""
        with self.lock:
            was = self.level.test(cpu, intid)
            if was == level:
                return
            self.level.assign(cpu, intid, level)
            if level and self.edge.test(cpu, intid):
                self.latch.assign(cpu, intid, True)
            self.update_for(cpu, intid)

    # -- arbitration -----------------------------------------------------------------
    def _group_enabled_mask(self, cpu: int) -> int:
        """The interrupts whose group the distributor forwards.  The CPU interface's own
        group enables act later (``can_take``): a pending interrupt of a group the CPU
        interface has off still is the highest pending one, and hides lower-priority
        interrupts of the other group from IAR, as the architecture's pseudocode (and
        QEMU) have it."""
        mask = 0
        group = self.group.get(cpu)
        if self.dist_grp1:
            mask |= group
        if self.dist_grp0:
            mask |= ~group
        return mask

    def candidates(self, cpu: int) -> int:
        routed = PRIVATE_MASK | self.spi_targets(cpu)
        return (self.pending(cpu) & self.enabled.get(cpu) & ~self.active.get(cpu)
                & self._group_enabled_mask(cpu) & routed & self.valid)

    def highest_pending(self, cpu: int) -> tuple[int, int]:
        """(INTID, priority) of the highest-priority interrupt this CPU could take, or
        (1023, 0xFF).  Ties go to the lowest INTID."""
        best, best_prio = SPURIOUS, IDLE_PRIORITY + 1
        bits = self.candidates(cpu)
        while bits:
            low = bits & -bits
            intid = low.bit_length() - 1
            prio = self.priority(cpu, intid)
            if prio < best_prio:
                best, best_prio = intid, prio
            bits ^= low
        return best, min(best_prio, IDLE_PRIORITY)

    def running_priority(self, cpu: int) -> int:
        c = self.cpus[cpu]
        active = c.ap0 | c.ap1
        if not active:
            return IDLE_PRIORITY
        return ((active & -active).bit_length() - 1) << self.ap_shift

    def group_priority_of(self, cpu: int, group: int, prio: int) -> int:
        c = self.cpus[cpu]
        if group == 0 or c.cbpr:
            return group_priority(prio, c.bpr0)
        return group_priority(prio, c.bpr1 - 1)  # BPR1 counts one bit less than BPR0

    def can_take(self, cpu: int) -> tuple[int, int, int]:
        """(INTID, group, priority) of the interrupt that would be acknowledged now, or
        (1023, -1, 0xFF): it must beat the priority mask and preempt the running one."""
        intid, prio = self.highest_pending(cpu)
        if intid == SPURIOUS or prio >= self.cpus[cpu].pmr:
            return SPURIOUS, -1, IDLE_PRIORITY
        group = int(self.group.test(cpu, intid))
        c = self.cpus[cpu]
        if not (c.grpen1 if group else c.grpen0):
            return SPURIOUS, -1, IDLE_PRIORITY
        if self.group_priority_of(cpu, group, prio) >= self.running_priority(cpu):
            return SPURIOUS, -1, IDLE_PRIORITY
        return intid, group, prio

    def update_cpu(self, cpu: int) -> None:
        c = self.cpus[cpu]
        irq = fiq = False
        if self.cpu_awake(cpu):
            intid, group, _ = self.can_take(cpu)
            if intid != SPURIOUS:
                if group == 0 and self.group0_is_fiq(cpu):
                    fiq = True
                else:
                    irq = True
        if irq != c.irq_out:
            c.irq_out = irq
            self._irq_sinks[cpu](irq)
        if fiq != c.fiq_out:
            c.fiq_out = fiq
            self._fiq_sinks[cpu](fiq)

    def update(self) -> None:
        for cpu in range(self.num_cpus):
            self.update_cpu(cpu)

    # -- the CPU interface's actions ---------------------------------------------------
    def acknowledge(self, cpu: int, groups: tuple[int, ...]) -> int:
        """Take the interrupt the CPU would be signalled, if it is in ``groups``: it
        becomes active, its pending latch clears, its group priority becomes active."""
        intid, group, prio = self.can_take(cpu)
        if intid == SPURIOUS or group not in groups:
            return SPURIOUS
        self.activate(cpu, intid, group, prio)
        return intid

    def activate(self, cpu: int, intid: int, group: int, prio: int) -> None:
        self.active.assign(cpu, intid, True)
        self.latch.assign(cpu, intid, False)
        bit = 1 << (self.group_priority_of(cpu, group, prio) >> self.ap_shift)
        c = self.cpus[cpu]
        if group == 0:
            c.ap0 |= bit
        else:
            c.ap1 |= bit
        self.update_for(cpu, intid)

    def drop_priority(self, cpu: int) -> bool:
        """End of interrupt, step 1: the highest active priority is no longer running.
        False if nothing was active."""
        c = self.cpus[cpu]
        active = c.ap0 | c.ap1
        if not active:
            return False
        low = active & -active
        c.ap0 &= ~low
        c.ap1 &= ~low
        return True

    def deactivate(self, cpu: int, intid: int) -> None:
        if intid < self.num_irqs:
            self.active.assign(cpu, intid, False)

    def deactivate_split(self, cpu: int, intid: int) -> None:
        """DIR: deactivate, when EOImode splits it from the priority drop.  Without
        EOImode the write is UNPREDICTABLE; it is ignored, as QEMU does."""
        if self.cpus[cpu].eoimode and intid < self.num_irqs:
            self.deactivate(cpu, intid)
            self.update_for(cpu, intid)

    def end_of_interrupt(self, cpu: int, intid: int, group: int | None = None) -> None:
        """EOIR: drop the running priority, and deactivate unless EOImode splits it.
        ``group`` (GICv3's EOIR0/EOIR1): only if the running priority is that group's;
        otherwise the write does nothing, as in QEMU."""
        if intid >= self.num_irqs:
            return  # special INTIDs (1020-1023) are never acknowledged, so never ended
        c = self.cpus[cpu]
        if group is not None:
            active = c.ap0 | c.ap1
            if not (c.ap1 if group else c.ap0) & active & -active:
                return
        if self.drop_priority(cpu) and not c.eoimode:
            self.deactivate(cpu, intid)
        self.update_for(cpu, intid)

    def update_for(self, cpu: int, intid: int) -> None:
        """Recompute the outputs an interrupt's change can affect: its CPU's for a
        banked one, every CPU's for an SPI."""
        if intid < NUM_PRIVATE:
            self.update_cpu(cpu)
        else:
            self.update()
