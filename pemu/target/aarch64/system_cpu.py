"""An AArch64 CPU in system mode: EL0/EL1, PSTATE, exception entry and return,
IRQ/FIQ inputs, the generic timer and the system-register table.

The execution loops are accel/tcg's (system_cpu.SystemCPU).  The CPU starts at EL1
with SP_EL1 selected and DAIF masked, as QEMU starts one without EL2/EL3.  PSTATE's
NZCV and DAIF live in the state block (translated code computes NZCV and reads and
writes DAIF inline: Linux masks and unmasks interrupts around every lock); EL and
SPSel live here: both are in the block flags and change only through helpers.  The
IRQ/FIQ inputs are mirrored in a state slot (as DAIF's I and F bits), so that code
unmasking interrupts can tell by itself whether it must leave for one.  The state
block's SP slot is the stack pointer in use; the other one (SP_EL0 or SP_EL1) is kept
in its bank and swapped at every EL or SPSel change: SP_EL1 in ``sp_el1``, SP_EL0 in a
state slot, so that translated code reads and writes it inline at EL1 with SPSel = 1
(Linux keeps ``current`` there and reads it all the time).

Every exception is taken to EL1 (there is no EL2/EL3): vectors at VBAR_EL1 + 0x000
(current EL, SP_EL0), 0x200 (current EL, SP_ELx) or 0x400 (from EL0), + 0x80 per type
(synchronous, IRQ, FIQ, SError).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu.accel.tcg.softmmu import (
    ACCESS_READ,
    ACCESS_WRITE,
    PAGE_SHIFT,
    PERM_R,
    PERM_W,
    SoftMMU,
)
from pemu.accel.tcg.system_cpu import SystemCPU, SystemTranslator
from pemu.memory.address_space import AddressSpace
from pemu.target.aarch64 import cpu_state as a64
from pemu.target.aarch64.cpu_models import Aarch64CpuModel
from pemu.target.aarch64.el1_sysregs import SCTLR_RESET, standard_sysregs
from pemu.target.aarch64.exceptions import (
    ALIGNMENT,
    BRK,
    EC_BRK64,
    EC_SVC64,
    ESR_IL,
    EXCEPTION,
    SVC,
    UNDEFINED,
    Aarch64Trap,
    abort_trap,
)
from pemu.target.aarch64.generic_timer import Counter, GenericTimer
from pemu.target.aarch64.sysregs import SysReg
from pemu.target.aarch64.vmsa import Aarch64MMU

DAIF_D, DAIF_A, DAIF_I, DAIF_F = 0x200, 0x100, 0x80, 0x40
DAIF_ALL = 0x3C0
VECTOR_SYNC, VECTOR_IRQ, VECTOR_FIQ, VECTOR_SERROR = 0, 0x80, 0x100, 0x180
FSC_ALIGNMENT = 0x21

# PSCI (or another firmware call) over HVC/SMC: (cpu, immediate) -> handled?
ConduitHandler = Callable[["Aarch64CPU", int], bool]


class Aarch64CPU(SystemCPU):
    """One CPU in system mode; it is the ``env`` translated code and helpers get."""

    trap_class = Aarch64Trap

    def __init__(self, index: int, translator: SystemTranslator, space: AddressSpace,
                 counter: Counter, wakeup: threading.Event, model: Aarch64CpuModel) -> None:
        self.index = index
        self.model = model
        # Aff1.Aff0 with 16 CPUs per cluster, as QEMU's virt (and the GICv3's routing)
        self.mpidr = 0x8000_0000 | (index // 16) << 8 | index % 16
        # the board adds the GIC field when a GICv3 CPU interface is wired
        self.id_aa64pfr0 = model.id_aa64pfr0
        state = translator.target.new_state()
        self.el = 1
        self.spsel = 1
        self.sp_el1 = 0  # SP_EL1 while SP_EL0 is in use (SP_EL0's bank is a state slot)
        self.regs: dict[str, int] = {"SCTLR_EL1": SCTLR_RESET}
        self.timer = GenericTimer(counter)
        self.timer_lines = self.timer.lines  # "virt", "phys": the board wires them to PPIs
        self.irq_level = False
        self.fiq_level = False
        self._wfi = False
        self.powered_off = False
        self.conduit: ConduitHandler | None = None
        self.wakeup = wakeup
        self._listener: Callable[[Aarch64CPU], None] | None = None
        self.regime = Aarch64MMU(self, space, translator.dram)
        super().__init__(translator, state, SoftMMU(self.regime, space, translator.dram))
        self.daif = DAIF_ALL
        self.sysregs: dict[int, SysReg] = standard_sysregs(self)
        self._mirrored = [(slot, reg) for reg in self.sysregs.values()
                          for name, slot in a64.SYSREG_MIRRORS.items() if reg.name == name]
        self.refresh_sysreg_mirrors()
        counter.add_listener(self._counter_rebased)

    def _counter_rebased(self, start_ns: int) -> None:
        self.slots[a64.COUNTER_START_NS] = start_ns

    def refresh_sysreg_mirrors(self) -> None:
        """The copies of SYSREG_MIRRORS that translated code reads (insn_el1.mrs)."""
        for slot, reg in self._mirrored:
            self.slots[slot] = reg.read(self)  # type: ignore[misc]

    # -- block flags and PSTATE ------------------------------------------------------------
    @property
    def daif(self) -> int:
        return self.slots[a64.DAIF]

    @daif.setter
    def daif(self, value: int) -> None:
        self.slots[a64.DAIF] = value & DAIF_ALL

    @property
    def icache_stale(self) -> bool:
        """IC IALLU(IS) ran: the next ISB or ERET compares every translated page."""
        return bool(self.slots[a64.ICACHE_STALE])

    @icache_stale.setter
    def icache_stale(self, stale: bool) -> None:
        self.slots[a64.ICACHE_STALE] = int(stale)

    def block_flags(self) -> int:
        return a64.FLAG_SYSTEM | self.el | self.spsel << a64.FLAG_SPSEL_SHIFT

    def pstate(self) -> int:
        """PSTATE as SPSR records it (AArch64: NZCV, DAIF, M[3:0] = EL and SPSel)."""
        return self.state.nzcv | self.daif | self.el << 2 | self.spsel

    def _sp_bank(self) -> int:
        return 1 if self.el and self.spsel else 0

    def _set_el_spsel(self, el: int, spsel: int) -> None:
        """Change EL/SPSel, swapping the stack pointer in use."""
        self._write_bank(self._sp_bank(), self.slots[a64.SP])
        self.el, self.spsel = el, spsel
        self.slots[a64.SP] = self._read_bank(self._sp_bank())

    def _read_bank(self, bank: int) -> int:
        return self.sp_el1 if bank else self.slots[a64.SP_EL0]

    def _write_bank(self, bank: int, value: int) -> None:
        if bank:
            self.sp_el1 = value
        else:
            self.slots[a64.SP_EL0] = value

    def read_sp(self, bank: int) -> int:
        return self.slots[a64.SP] if bank == self._sp_bank() else self._read_bank(bank)

    def write_sp(self, bank: int, value: int) -> None:
        if bank == self._sp_bank():
            self.slots[a64.SP] = value
        else:
            self._write_bank(bank, value)

    def set_spsel(self, spsel: int) -> None:
        self._set_el_spsel(self.el, spsel)
        self.flags_changed()

    def set_daif(self, daif: int) -> None:
        self.daif = daif
        self.check_interrupts()

    def check_interrupts(self) -> None:
        """An interrupt may be deliverable now (unmasked, or a line rose)."""
        if (self.irq_level and not self.daif & DAIF_I) or \
                (self.fiq_level and not self.daif & DAIF_F):
            self.request_exit()

    # -- exceptions --------------------------------------------------------------------------
    def take_exception(self, vector: int, return_pc: int, esr: int | None = None,
                       far: int | None = None) -> None:
        regs = self.regs
        regs["SPSR_EL1"] = self.pstate()
        regs["ELR_EL1"] = return_pc
        if esr is not None:
            regs["ESR_EL1"] = esr
        if far is not None:
            regs["FAR_EL1"] = far
        offset = 0x400 if self.el == 0 else 0x200 if self.spsel else 0
        self._set_el_spsel(1, 1)
        self.daif = DAIF_ALL
        self.slots[a64.EXCL_ADDR] = a64.NO_EXCLUSIVE
        self.slots[a64.PC] = (regs.get("VBAR_EL1", 0) + offset + vector) & a64.MASK64
        self.flags_changed()

    def exception_return(self) -> int:
        """ERET: PSTATE from SPSR_EL1; returns the new pc (ELR_EL1)."""
        regs = self.regs
        spsr = regs.get("SPSR_EL1", 0)
        el = spsr >> 2 & 3
        if el > 1 or spsr & 0x10:
            el = 1  # EL2/EL3 or AArch32: an illegal return (PSTATE.IL not modelled)
        self.state.nzcv = spsr
        self.daif = spsr & DAIF_ALL
        self._set_el_spsel(el, spsr & 1)
        self.slots[a64.EXCL_ADDR] = a64.NO_EXCLUSIVE
        self.sync_icache()
        self.flags_changed()
        self.check_interrupts()
        return regs.get("ELR_EL1", 0)

    def do_exception(self, trap: Aarch64Trap) -> None:
        pc = self.slots[a64.PC]
        kind = trap.kind
        if kind == EXCEPTION:
            self.take_exception(VECTOR_SYNC, pc, trap.syndrome, trap.addr)
        elif kind == SVC:
            self.take_exception(VECTOR_SYNC, pc + 4, EC_SVC64 << 26 | ESR_IL | trap.syndrome)
        elif kind == BRK:
            self.take_exception(VECTOR_SYNC, pc, EC_BRK64 << 26 | ESR_IL | trap.syndrome)
        elif kind == ALIGNMENT:
            t = abort_trap(self.el, ACCESS_READ, trap.addr, FSC_ALIGNMENT)
            self.take_exception(VECTOR_SYNC, pc, t.syndrome, trap.addr)
        else:  # UNDEFINED and anything unknown
            self.take_exception(VECTOR_SYNC, pc, ESR_IL)

    @staticmethod
    def undefined_here() -> Aarch64Trap:
        return Aarch64Trap(UNDEFINED, 0)

    # -- interrupts, WFI, power --------------------------------------------------------------
    def set_irq(self, level: bool) -> None:
        """The IRQ input (level; any thread)."""
        self.irq_level = bool(level)
        self._mirror_lines()
        if level:
            self._line_rose()

    def set_fiq(self, level: bool) -> None:
        self.fiq_level = bool(level)
        self._mirror_lines()
        if level:
            self._line_rose()

    def _mirror_lines(self) -> None:
        """The inputs where translated code unmasking DAIF.I/F looks (insn_el1.py)."""
        self.slots[a64.IRQ_LINES] = (DAIF_I if self.irq_level else 0) | \
            (DAIF_F if self.fiq_level else 0)

    def _line_rose(self) -> None:
        self.request_exit()
        self.wakeup.set()
        if self._listener is not None:
            self._listener(self)

    def cpu_exec_interrupt(self) -> bool:
        if self.powered_off:
            return False
        self.timer.update()
        if self._wfi:
            if not (self.irq_level or self.fiq_level):
                return False
            self._wfi = False
        pc = self.slots[a64.PC]
        if self.fiq_level and not self.daif & DAIF_F:
            self.take_exception(VECTOR_FIQ, pc)
        elif self.irq_level and not self.daif & DAIF_I:
            self.take_exception(VECTOR_IRQ, pc)
        return True

    def wait_for_interrupt(self) -> None:
        """WFI (the pc is already past it)."""
        self.timer.update()
        if not (self.irq_level or self.fiq_level):
            self._wfi = True
        self.request_exit()

    def timer_deadline_ns(self) -> int:
        return self.timer.deadline_ns()

    @property
    def waiting(self) -> bool:
        """In WFI, or powered off (waiting for PSCI CPU_ON)."""
        return self._wfi or self.powered_off

    def interrupt_ready(self) -> bool:
        if self.powered_off:
            return False
        self.timer.update()
        return self.irq_level or self.fiq_level

    def wake(self) -> None:
        self._wfi = False
        self.slots[a64.EXIT_REQUEST] = 1

    def set_interrupt_listener(self, listener: Callable[[Aarch64CPU], None]) -> None:
        self._listener = listener

    def armed_timer_ns(self) -> int | None:
        return self.timer.armed_ns()

    def timer_interrupt_pending(self) -> bool:
        return self.timer.pending()

    def power_on(self, pc: int, context_id: int) -> None:
        """PSCI CPU_ON: start at EL1, MMU off, x0 = context_id."""
        self.reset(pc)
        self.state.set_x(0, context_id)
        self.powered_off = False
        self.request_exit()
        self.wakeup.set()

    def power_off(self) -> None:
        self.powered_off = True
        self.request_exit()

    # -- translation regime, caches ----------------------------------------------------------
    def translation_changed(self) -> None:
        """SCTLR/TCR/TTBRn written: the TLB set of the new key, and no entry cached
        under another regime (only a TTBR0 or ASID change keeps the other sets)."""
        regs = self.regs
        regime = (regs.get("SCTLR_EL1", 0) & 1, regs.get("TCR_EL1", 0) & ~(0xFF << 48),
                  regs.get("TTBR1_EL1", 0) & ((1 << 48) - 1))
        if regime != getattr(self, "_regime", None):
            self._regime = regime
            self.tlb_flush_all()
        self.refresh_sysreg_mirrors()  # TCR_EL1
        self.mmu.switch()
        self.flags_changed()

    def sync_icache(self) -> None:
        """A context synchronisation event after IC maintenance: drop stale code."""
        if self.icache_stale:
            for cpu in self.translator.harts:
                cpu.icache_stale = False  # type: ignore[attr-defined]
            self.flush_icache()

    def invalidate_code_at(self, vaddr: int) -> None:
        """IC IVAU: drop the translations of the page holding ``vaddr`` if its bytes
        changed (a fault while translating it: check every page at the next ISB)."""
        try:
            paddr, _, _ = self.regime.translate(vaddr, ACCESS_READ, self.el)
        except Aarch64Trap:
            self.icache_stale = True
            return
        translator = self.translator
        ppn = paddr >> PAGE_SHIFT
        snapshot = translator.snapshots.get(ppn)
        if snapshot is not None and translator._page_bytes(ppn) != snapshot:
            translator.invalidate_page(ppn)
            # only this page's pcs leave the jump caches: flushing them whole (a MiB
            # of native jump cache each) per patched instruction made ftrace's and the
            # static keys' boot-time patching crawl
            vpn = vaddr >> PAGE_SHIFT
            for cpu in translator.harts:
                for ctx in cpu.mmu.contexts.values():
                    ctx.forget_code_page(vpn)

    def address_translate(self, vaddr: int, write: bool, el: int) -> None:
        """AT S1E{0,1}{R,W}: PAR_EL1 = the output address, or the fault."""
        result = self.regime.probe(vaddr, ACCESS_WRITE if write else ACCESS_READ, el)
        if isinstance(result, Aarch64Trap):
            fst = result.syndrome & 0x3F
            self.regs["PAR_EL1"] = 1 | fst << 1
            return
        paddr, perms = result
        if not perms & (PERM_W if write else PERM_R):
            self.regs["PAR_EL1"] = 1 | 0x0C << 1
            return
        self.regs["PAR_EL1"] = paddr & 0xFFFF_FFFF_F000 | 0xFF << 56 | 3 << 7

    # -- reset -------------------------------------------------------------------------------
    def reset(self, pc: int) -> None:
        for i in range(a64.N_SLOTS):
            self.slots[i] = 0
        self.slots[a64.EXCL_ADDR] = a64.NO_EXCLUSIVE
        self.slots[a64.ZF] = 1  # NZCV is UNKNOWN after reset; QEMU's reads 0b0100
        self.el, self.spsel, self.daif = 1, 1, DAIF_ALL
        self._mirror_lines()
        self.sp_el1 = 0
        self.regs = {"SCTLR_EL1": SCTLR_RESET}
        self._regime = None
        self.timer.reset()
        self._wfi = False
        self.mmu.switch()
        self.tlb_flush_all()
        self._bind_context(self.mmu.ctx)  # the native slots were zeroed above
        self.refresh_sysreg_mirrors()
        self._counter_rebased(self.timer.counter.start_ns)
        self.slots[a64.PC] = pc


__all__ = ["Aarch64CPU", "ConduitHandler"]
