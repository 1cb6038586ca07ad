"""The system registers of an EL1 CPU (what Linux touches), bound to their encodings.

Plain registers hold their value in ``cpu.regs`` by name; those with side effects call
the CPU (translation regime, PSTATE, timers).  The debug, PMU and auxiliary registers
read as zero and ignore writes: the model announces them (ID_AA64DFR0 as QEMU's), the
kernel only saves, restores and resets them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pemu.target.aarch64.cpu_state import FPCR, FPSR, TPIDR_EL0, TPIDR_EL1
from pemu.target.aarch64.exceptions import UNDEFINED, Aarch64Trap
from pemu.target.aarch64.generic_timer import CNTFRQ, Timer
from pemu.target.aarch64.sysregs import SysReg, constant, raz_wi, special, stored

if TYPE_CHECKING:
    from pemu.target.aarch64.system_cpu import Aarch64CPU

SCTLR_RESET = 0x30D0_0800  # the RES1 bits; MMU and caches off
TCR_MASK = 0x0000_007F_FFFF_FFBF


def _timer_regs(prefix: str, crm: int, timer_of) -> list[tuple[int, SysReg]]:
    def tmr(cpu: Aarch64CPU) -> Timer:
        return timer_of(cpu)

    def after(cpu: Aarch64CPU) -> None:
        cpu.timer.update()
        cpu.check_interrupts()

    def w_tval(cpu, v):
        tmr(cpu).write_tval(v)
        after(cpu)

    def w_ctl(cpu, v):
        tmr(cpu).write_ctl(v)
        after(cpu)

    def w_cval(cpu, v):
        tmr(cpu).cval = v
        after(cpu)

    return [
        special(f"{prefix}_TVAL_EL0", (3, 3, 14, crm, 0), lambda c: tmr(c).read_tval(), w_tval,
                el0=True),
        special(f"{prefix}_CTL_EL0", (3, 3, 14, crm, 1), lambda c: tmr(c).read_ctl(), w_ctl,
                el0=True),
        special(f"{prefix}_CVAL_EL0", (3, 3, 14, crm, 2), lambda c: tmr(c).cval, w_cval,
                el0=True),
    ]


def _debug_regs() -> list[tuple[int, SysReg]]:
    regs = [raz_wi("MDCCINT_EL1", (2, 0, 0, 2, 0)), stored("MDSCR_EL1", (2, 0, 0, 2, 2)),
            raz_wi("OSLAR_EL1", (2, 0, 1, 0, 4)), constant("OSLSR_EL1", (2, 0, 1, 1, 4), 0x8),
            stored("OSDLR_EL1", (2, 0, 1, 3, 4), mask=1), raz_wi("DBGPRCR_EL1", (2, 0, 1, 4, 4)),
            raz_wi("DBGCLAIMSET_EL1", (2, 0, 7, 8, 6)), raz_wi("DBGCLAIMCLR_EL1", (2, 0, 7, 9, 6)),
            constant("DBGAUTHSTATUS_EL1", (2, 0, 7, 14, 6), 0),
            raz_wi("MDCCSR_EL0", (2, 3, 0, 1, 0)), raz_wi("OSECCR_EL1", (2, 0, 0, 6, 2))]
    for n in range(16):  # breakpoint and watchpoint value/control registers
        for op2, what in ((4, "DBGBVR"), (5, "DBGBCR"), (6, "DBGWVR"), (7, "DBGWCR")):
            regs.append(raz_wi(f"{what}{n}_EL1", (2, 0, 0, n, op2)))
    return regs


def _pmu_regs() -> list[tuple[int, SysReg]]:
    regs = [raz_wi(f"PMU_{op2}", (3, 3, 9, 12, op2)) for op2 in range(8)]
    regs += [raz_wi(f"PMU_C13_{op2}", (3, 3, 9, 13, op2)) for op2 in range(3)]
    regs += [raz_wi("PMUSERENR_EL0", (3, 3, 9, 14, 0)), raz_wi("PMOVSSET_EL0", (3, 3, 9, 14, 3)),
             raz_wi("PMINTENSET_EL1", (3, 0, 9, 14, 1)), raz_wi("PMINTENCLR_EL1", (3, 0, 9, 14, 2))]
    regs += [raz_wi(f"PMEV_{crm}_{op2}", (3, 3, 14, crm, op2))
             for crm in range(8, 16) for op2 in range(8)]
    return regs


def _write_at_el1(name: str):
    """A register EL0 may read but only EL1 write."""
    def write(cpu: Aarch64CPU, value: int) -> None:
        if cpu.el == 0:
            raise Aarch64Trap(UNDEFINED, 0)
        cpu.regs[name] = value
    return write


def standard_sysregs(cpu: Aarch64CPU) -> dict[int, SysReg]:
    """The register table of a fresh CPU (devices add theirs later)."""
    m = cpu.model
    regime = type(cpu).translation_changed

    def slot(index: int, mask: int = 0xFFFF_FFFF_FFFF_FFFF):
        def read(c: Aarch64CPU) -> int:
            return c.slots[index]

        def write(c: Aarch64CPU, v: int) -> None:
            c.slots[index] = v & mask
        return read, write

    def ccsidr(c: Aarch64CPU) -> int:
        sel = c.regs.get("CSSELR_EL1", 0)
        index = {0: 0, 1: 1, 2: 2}.get(sel, -1)
        return m.ccsidr[index] if 0 <= index < len(m.ccsidr) else 0

    entries = [
        # identification
        constant("MIDR_EL1", (3, 0, 0, 0, 0), m.midr),
        constant("MPIDR_EL1", (3, 0, 0, 0, 5), lambda c: c.mpidr),
        constant("REVIDR_EL1", (3, 0, 0, 0, 6), m.revidr),
        constant("ID_AA64PFR0_EL1", (3, 0, 0, 4, 0), lambda c: c.id_aa64pfr0),
        constant("ID_AA64DFR0_EL1", (3, 0, 0, 5, 0), m.id_aa64dfr0),
        constant("ID_AA64ISAR0_EL1", (3, 0, 0, 6, 0), m.id_aa64isar0),
        constant("ID_AA64MMFR0_EL1", (3, 0, 0, 7, 0), m.id_aa64mmfr0),
        constant("CTR_EL0", (3, 3, 0, 0, 1), m.ctr, el0=True),
        constant("DCZID_EL0", (3, 3, 0, 0, 7), m.dczid, el0=True),
        constant("CLIDR_EL1", (3, 1, 0, 0, 1), m.clidr),
        constant("AIDR_EL1", (3, 1, 0, 0, 7), 0),
        constant("CCSIDR_EL1", (3, 1, 0, 0, 0), ccsidr),
        stored("CSSELR_EL1", (3, 2, 0, 0, 0), mask=0xF),
        # translation
        stored("SCTLR_EL1", (3, 0, 1, 0, 0), SCTLR_RESET, on_write=regime),
        raz_wi("ACTLR_EL1", (3, 0, 1, 0, 1)),
        stored("CPACR_EL1", (3, 0, 1, 0, 2), mask=0x3330_0000),
        stored("TTBR0_EL1", (3, 0, 2, 0, 0), on_write=regime),
        stored("TTBR1_EL1", (3, 0, 2, 0, 1), on_write=regime),
        stored("TCR_EL1", (3, 0, 2, 0, 2), mask=TCR_MASK, on_write=regime),
        stored("MAIR_EL1", (3, 0, 10, 2, 0)),
        stored("AMAIR_EL1", (3, 0, 10, 3, 0)),
        stored("CONTEXTIDR_EL1", (3, 0, 13, 0, 1), mask=0xFFFF_FFFF),
        stored("PAR_EL1", (3, 0, 7, 4, 0)),
        # exceptions
        stored("ESR_EL1", (3, 0, 5, 2, 0), mask=0xFFFF_FFFF),
        raz_wi("AFSR0_EL1", (3, 0, 5, 1, 0)),
        raz_wi("AFSR1_EL1", (3, 0, 5, 1, 1)),
        stored("FAR_EL1", (3, 0, 6, 0, 0)),
        stored("VBAR_EL1", (3, 0, 12, 0, 0), mask=~0x7FF & 0xFFFF_FFFF_FFFF_FFFF),
        constant("ISR_EL1", (3, 0, 12, 1, 0),
                 lambda c: (0x80 if c.irq_level else 0) | (0x40 if c.fiq_level else 0)),
        stored("SPSR_EL1", (3, 0, 4, 0, 0), mask=0xFFFF_FFFF),
        stored("ELR_EL1", (3, 0, 4, 0, 1)),
        special("SP_EL0", (3, 0, 4, 1, 0), lambda c: c.read_sp(0), lambda c, v: c.write_sp(0, v)),
        special("SPSel", (3, 0, 4, 2, 0), lambda c: c.spsel, lambda c, v: c.set_spsel(v & 1)),
        constant("CurrentEL", (3, 0, 4, 2, 2), lambda c: c.el << 2),
        special("DAIF", (3, 3, 4, 2, 1), lambda c: c.daif, lambda c, v: c.set_daif(v & 0x3C0)),
        special("FPCR", (3, 3, 4, 4, 0), *slot(FPCR, 0x07FF_9F00), el0=True),
        special("FPSR", (3, 3, 4, 4, 1), *slot(FPSR, 0xF800_009F), el0=True),
        # thread ids
        special("TPIDR_EL1", (3, 0, 13, 0, 4), *slot(TPIDR_EL1)),  # inline: insn_el1.py
        special("TPIDR_EL0", (3, 3, 13, 0, 2), *slot(TPIDR_EL0), el0=True),
        special("TPIDRRO_EL0", (3, 3, 13, 0, 3), lambda c: c.regs.get("TPIDRRO_EL0", 0),
                _write_at_el1("TPIDRRO_EL0"), el0=True),
        # generic timer
        constant("CNTFRQ_EL0", (3, 3, 14, 0, 0), CNTFRQ, el0=True),
        constant("CNTPCT_EL0", (3, 3, 14, 0, 1), lambda c: c.timer.counter.ticks(), el0=True),
        constant("CNTVCT_EL0", (3, 3, 14, 0, 2), lambda c: c.timer.counter.ticks(), el0=True),
        stored("CNTKCTL_EL1", (3, 0, 14, 1, 0), mask=0x3FF),
        *_timer_regs("CNTP", 2, lambda c: c.timer.phys),
        *_timer_regs("CNTV", 3, lambda c: c.timer.virt),
        *_debug_regs(),
        *_pmu_regs(),
    ]
    table = dict(entries)
    return table


__all__ = ["SCTLR_RESET", "standard_sysregs"]
