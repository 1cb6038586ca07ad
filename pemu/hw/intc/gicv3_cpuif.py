"""The GICv3 CPU interface: the ICC_* system registers, as the A64 CPU reaches them with
MRS/MSR.  Single security state (GICD_CTLR.DS=1): group 0 is signalled as FIQ and group
1 as IRQ, and EL1 sees both groups' registers.

``icc_sysregs(gic)`` answers ``{(op0, op1, CRn, CRm, op2): register}``; each register
has ``read(cpu_index) -> int`` and ``write(cpu_index, value)``.  Write-only registers
read 0 and read-only ones ignore writes (the CPU decides about traps, not the GIC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pemu.hw.intc.gic_core import GICV3_PRIORITY_BITS, SPURIOUS

if TYPE_CHECKING:
    from pemu.hw.intc.gicv3 import Gicv3

SysregKey = tuple[int, int, int, int, int]

CTLR_CBPR = 1 << 0
CTLR_EOIMODE = 1 << 1
CTLR_PMHE = 1 << 6
# Read-only ICC_CTLR_EL1 fields: PRIbits (priority bits - 1), IDbits 1 (24-bit INTID
# field, what QEMU's CPU interface reports), A3V (SGI1R may name Aff3).
CTLR_FIXED = ((GICV3_PRIORITY_BITS - 1) << 8) | (1 << 11) | (1 << 15)
SRE_VALUE = 0x7  # SRE, DFB, DIB: system-register access only, as QEMU's TCG GICv3


def _nothing(cpu: int) -> int:
    return 0


def _ignore(cpu: int, value: int) -> None:
    pass


@dataclass(frozen=True)
class IccRegister:
    """One ICC system register: what MRS and MSR do to it for a given CPU."""

    name: str
    read: Callable[[int], int] = _nothing
    write: Callable[[int, int], None] = _ignore


class Gicv3CpuInterface:
    """The actions behind the ICC registers of every CPU of one ``Gicv3``."""

    def __init__(self, gic: Gicv3) -> None:
        self.gic = gic
        self.core = gic.core

    # -- acknowledge / end ------------------------------------------------------------
    def iar(self, group: int) -> Callable[[int], int]:
        def read(cpu: int) -> int:
            with self.core.lock:
                return self.core.acknowledge(cpu, (group,))
        return read

    def eoir(self, group: int) -> Callable[[int, int], None]:
        def write(cpu: int, value: int) -> None:
            with self.core.lock:
                self.core.end_of_interrupt(cpu, value & 0xFF_FFFF, group)
        return write

    def dir(self, cpu: int, value: int) -> None:
        intid = value & 0xFF_FFFF
        with self.core.lock:
            self.core.deactivate_split(cpu, intid)

    def hppir(self, group: int) -> Callable[[int], int]:
        def read(cpu: int) -> int:
            with self.core.lock:
                intid, _ = self.core.highest_pending(cpu)
                if intid == SPURIOUS or int(self.core.group.test(cpu, intid)) != group:
                    return SPURIOUS
                c = self.core.cpus[cpu]
                if not (c.grpen1 if group else c.grpen0):
                    return SPURIOUS  # a group the CPU interface has off shows nothing
                return intid
        return read

    def rpr(self, cpu: int) -> int:
        with self.core.lock:
            return self.core.running_priority(cpu)

    # -- plain fields -----------------------------------------------------------------
    def pmr_read(self, cpu: int) -> int:
        return self.core.cpus[cpu].pmr

    def pmr_write(self, cpu: int, value: int) -> None:
        with self.core.lock:
            self.core.cpus[cpu].pmr = value & self.core.pmr_mask
            self.core.update_cpu(cpu)

    def bpr0_read(self, cpu: int) -> int:
        return self.core.cpus[cpu].bpr0

    def bpr0_write(self, cpu: int, value: int) -> None:
        with self.core.lock:
            self.core.cpus[cpu].bpr0 = max(self.core.min_bpr0, value & 7)
            self.core.update_cpu(cpu)

    def bpr1_read(self, cpu: int) -> int:
        c = self.core.cpus[cpu]
        return min(c.bpr0 + 1, 7) if c.cbpr else c.bpr1

    def bpr1_write(self, cpu: int, value: int) -> None:
        with self.core.lock:
            c = self.core.cpus[cpu]
            if not c.cbpr:  # with CBPR set, BPR0 rules group 1 and BPR1 ignores writes
                c.bpr1 = max(self.core.min_bpr0 + 1, value & 7)
            self.core.update_cpu(cpu)

    def ctlr_read(self, cpu: int) -> int:
        c = self.core.cpus[cpu]
        return (CTLR_FIXED | (CTLR_CBPR if c.cbpr else 0) | (CTLR_EOIMODE if c.eoimode else 0)
                | (CTLR_PMHE if self.gic.pmhe[cpu] else 0))

    def ctlr_write(self, cpu: int, value: int) -> None:
        with self.core.lock:
            c = self.core.cpus[cpu]
            c.cbpr = bool(value & CTLR_CBPR)
            c.eoimode = bool(value & CTLR_EOIMODE)
            self.gic.pmhe[cpu] = bool(value & CTLR_PMHE)
            self.core.update_cpu(cpu)

    def igrpen(self, group: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
        attr = f"grpen{group}"

        def read(cpu: int) -> int:
            return int(getattr(self.core.cpus[cpu], attr))

        def write(cpu: int, value: int) -> None:
            with self.core.lock:
                setattr(self.core.cpus[cpu], attr, bool(value & 1))
                self.core.update_cpu(cpu)
        return read, write

    def apr(self, group: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
        attr = f"ap{group}"

        def read(cpu: int) -> int:
            return getattr(self.core.cpus[cpu], attr)

        def write(cpu: int, value: int) -> None:
            # The OS writes 0 at start-up (and saved values on resume).
            with self.core.lock:
                setattr(self.core.cpus[cpu], attr, value & 0xFFFF_FFFF)
                self.core.update_cpu(cpu)
        return read, write

    def sgi(self, group: int) -> Callable[[int, int], None]:
        def write(cpu: int, value: int) -> None:
            self.gic.send_sgi(cpu, value, group)
        return write


def icc_sysregs(gic: Gicv3) -> dict[SysregKey, IccRegister]:
    ci = Gicv3CpuInterface(gic)
    grpen0, grpen1 = ci.igrpen(0), ci.igrpen(1)
    ap0, ap1 = ci.apr(0), ci.apr(1)
    regs = {
        (3, 0, 4, 6, 0): IccRegister("ICC_PMR_EL1", ci.pmr_read, ci.pmr_write),
        (3, 0, 12, 8, 0): IccRegister("ICC_IAR0_EL1", ci.iar(0)),
        (3, 0, 12, 8, 1): IccRegister("ICC_EOIR0_EL1", write=ci.eoir(0)),
        (3, 0, 12, 8, 2): IccRegister("ICC_HPPIR0_EL1", ci.hppir(0)),
        (3, 0, 12, 8, 3): IccRegister("ICC_BPR0_EL1", ci.bpr0_read, ci.bpr0_write),
        (3, 0, 12, 8, 4): IccRegister("ICC_AP0R0_EL1", *ap0),
        (3, 0, 12, 9, 0): IccRegister("ICC_AP1R0_EL1", *ap1),
        (3, 0, 12, 11, 1): IccRegister("ICC_DIR_EL1", write=ci.dir),
        (3, 0, 12, 11, 3): IccRegister("ICC_RPR_EL1", ci.rpr),
        (3, 0, 12, 11, 5): IccRegister("ICC_SGI1R_EL1", write=ci.sgi(1)),
        # The alias for the other security state: there is none (DS=1), so it does nothing.
        (3, 0, 12, 11, 6): IccRegister("ICC_ASGI1R_EL1"),
        (3, 0, 12, 11, 7): IccRegister("ICC_SGI0R_EL1", write=ci.sgi(0)),
        (3, 0, 12, 12, 0): IccRegister("ICC_IAR1_EL1", ci.iar(1)),
        (3, 0, 12, 12, 1): IccRegister("ICC_EOIR1_EL1", write=ci.eoir(1)),
        (3, 0, 12, 12, 2): IccRegister("ICC_HPPIR1_EL1", ci.hppir(1)),
        (3, 0, 12, 12, 3): IccRegister("ICC_BPR1_EL1", ci.bpr1_read, ci.bpr1_write),
        (3, 0, 12, 12, 4): IccRegister("ICC_CTLR_EL1", ci.ctlr_read, ci.ctlr_write),
        (3, 0, 12, 12, 5): IccRegister("ICC_SRE_EL1", lambda cpu: SRE_VALUE),
        (3, 0, 12, 12, 6): IccRegister("ICC_IGRPEN0_EL1", *grpen0),
        (3, 0, 12, 12, 7): IccRegister("ICC_IGRPEN1_EL1", *grpen1),
    }
    # Five priority bits need one active-priority register per group; the others exist
    # (the OS may clear them all) and read as zero.
    for n in (1, 2, 3):
        regs[(3, 0, 12, 8, 4 + n)] = IccRegister(f"ICC_AP0R{n}_EL1")
        regs[(3, 0, 12, 9, n)] = IccRegister(f"ICC_AP1R{n}_EL1")
    return regs
