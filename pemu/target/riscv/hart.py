"""A RISC-V hart in system mode: privileged state, PMP, and interrupt/trap entry.

The execution loops are accel/tcg's (system_cpu.SystemCPU); a hart adds what is
RISC-V: the block flags (privilege, SUM, MPRV, FS), taking interrupts and traps, WFI,
the Sstc timer, and the page walk the softmmu uses (mmu_regime.RiscvMMU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu.accel.tcg.softmmu import SoftMMU
from pemu.accel.tcg.system_cpu import SystemCPU, SystemTranslator
from pemu.memory.address_space import AddressSpace
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.aia_csrs import register_aia_csrs
from pemu.target.riscv.aia_hyp_csrs import register_aia_hyp_csrs
from pemu.target.riscv.cpu_state import RiscvCPUState
from pemu.target.riscv.csr_hyp import register_hyp_csrs
from pemu.target.riscv.csr_pmu import register_pmu_csrs
from pemu.target.riscv.csr_system import register_system_csrs
from pemu.target.riscv.debug_triggers import TriggerSet, register_trigger_csrs
from pemu.target.riscv.debugger_points import DebuggerHit, DebuggerPoints
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.hyp import MIP_VSTIP
from pemu.target.riscv.insn_hyp import register_hyp_instructions
from pemu.target.riscv.insn_priv import register_privileged_instructions
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.mmu import PMP
from pemu.target.riscv.mmu_regime import RiscvMMU
from pemu.target.riscv.pmu import Pmu
from pemu.target.riscv.pointer_masking import EXTENSIONS as PM_EXTENSIONS
from pemu.target.riscv.priv import (
    MENVCFG_ADUE,
    MENVCFG_PBMTE,
    MIP_LCOFIP,
    MIP_STIP,
    NEVER_NS,
    PrivState,
)


class RiscvHart(SystemCPU):
    """One hart in system mode; it is the ``env`` translated code and helpers get."""

    trap_class = RiscvTrap

    def __init__(self, hartid: int, translator: SystemTranslator, space: AddressSpace,
                 now: Callable[[], int], wakeup: threading.Event,
                 isa: RiscvIsa = DEFAULT_ISA) -> None:
        # what system mode adds to the frontend and the CSR table (both idempotent)
        register_system_csrs()
        register_pmu_csrs()  # mcycle, minstret, hpm*, mcountinhibit, scountovf
        register_aia_csrs()  # illegal unless the board sets ``hart.aia``
        register_privileged_instructions()
        register_hyp_csrs()  # illegal unless the hart has H
        register_aia_hyp_csrs()  # illegal unless the hart has H and an AIA
        register_hyp_instructions()
        register_trigger_csrs()  # illegal unless the hart has ``triggers`` (debug=true)
        self.hartid = hartid
        state: RiscvCPUState = translator.target.new_state()  # type: ignore[assignment]
        self.ps = ps = PrivState(hartid, state.slots, now)
        if state.vector.vlenb:
            ps.vector = True
            ps.reset()  # misa.V
        ps.wakeup = wakeup
        self.pmp = PMP(on_change=self.tlb_flush_all)
        ps.satp_modes = isa.satp_modes
        ps.smstateen = isa.has("smstateen")
        ps.pm_extensions = frozenset(e for e in PM_EXTENSIONS if isa.has(e))
        if isa.has("h"):
            ps.has_h = True
            ps.reset()  # misa.H
        # menvcfg at reset, as QEMU resets it: PBMTE with Svpbmt (firmware that predates
        # Svpbmt never sets it, while Linux uses the PBMT bits whenever the device tree
        # lists Svpbmt), ADUE with Svadu (the old always-updating walk)
        ps.menvcfg_reset = ps.menvcfg = ((MENVCFG_PBMTE if isa.has("svpbmt") else 0)
                                         | (MENVCFG_ADUE if isa.has("svadu") else 0))
        self.regime = RiscvMMU(ps, self.pmp, space, translator.dram, isa)
        super().__init__(translator, state, SoftMMU(self.regime, space, translator.dram))
        self.block_flags = ps.block_flags  # bound once: the loops call it at every exit
        ps.on_flags_changed = self.flags_changed
        ps.on_virt_changed = self._virt_changed
        # Sdtrig (QEMU's debug=true): a change takes effect at the next block boundary
        self.triggers = TriggerSet(self._triggers_changed) if isa.has("debug") else None
        self._triggers_pending = False
        self._watch_pages: frozenset[int] = frozenset()
        self.debugger: DebuggerPoints | None = None  # the gdb stub's points
        # the counters (Zihpm; Sscofpmf's overflow interrupt where the isa has it)
        self.pmu = Pmu(ps.now, isa.has("sscofpmf"), lambda: ps.priv)
        self.pmu.on_overflow = self._counter_overflowed
        self.pmu.on_mode_filter = self._pmu_mode_filter
        if isa.has("sscofpmf"):
            ps.local_interrupts = MIP_LCOFIP

    def _virt_changed(self) -> None:
        """V flipped (H): V=1 translates in its own address space (vsatp + hgatp)."""
        self.mmu.switch()
        self.flags_changed()

    def run(self) -> None:
        # which loop runs decides how an inline sstatus.SUM write makes its new block
        # flags seen (csr_inline.py): in the flags slot, or by leaving the python loop
        native = self.translator.native and not self.count_insns
        self.slots[rv.NATIVE_FLAGS] = int(native)
        super().run()

    # -- SystemCPU's target part -------------------------------------------------------
    def cpu_exec_interrupt(self) -> bool:
        if self._triggers_pending:
            self.apply_triggers()
        self.pmu.latch_overflows()
        ps = self.ps
        irq = ps.pending_interrupt()
        if irq is not None:
            ps.take_trap(irq, 0, interrupt=True)
        elif ps.waiting:
            return False
        return True

    def do_exception(self, trap: RiscvTrap) -> None:
        if isinstance(trap, DebuggerHit):
            self.ps.request_exit()  # to the pause gate, once the stub has closed it
            self.debugger.on_hit(self, trap)  # type: ignore[union-attr]
            return
        self.ps.take_trap(trap.cause, trap.tval, trap=trap)

    def timer_deadline_ns(self) -> int:
        return min(self.ps.timer_deadline_ns, self.pmu.overflow_ns)

    def request_exit(self) -> None:
        """Leave translated code at the next block entry (any thread)."""
        self.ps.kick()

    # -- counters ----------------------------------------------------------------------------
    def _counter_overflowed(self) -> None:
        self.ps.mip_sw |= MIP_LCOFIP
        self.ps.recheck_interrupts()

    def _pmu_mode_filter(self, on: bool) -> None:
        self.ps.on_priv_change = self.pmu.priv_changed if on else None

    # -- debug triggers ----------------------------------------------------------------------
    def _triggers_changed(self) -> None:
        # called inside a CSR helper: dropping translations here could drop the block
        # that is running, so the loop applies the change when it leaves it
        self._triggers_pending = True
        self.ps.request_exit()

    def apply_triggers(self) -> None:
        """Make the triggers' (and the debugger's) current settings effective; outside
        translated code (at a block boundary, or with the hart parked)."""
        self._triggers_pending = False
        translator = self.translator
        break_pcs: set[int] = set()
        for h in translator.harts:
            if getattr(h, "triggers", None) is not None:
                break_pcs |= h.triggers.exec_pcs()
            if getattr(h, "debugger", None) is not None:
                break_pcs |= h.debugger.pcs
        if break_pcs != translator.break_pcs:
            translator.break_pcs = frozenset(break_pcs)
            translator.flush()  # blocks translated without (or with) the checks
        pages = self.triggers.data_pages() if self.triggers is not None else frozenset()
        if self.debugger is not None:
            pages |= self.debugger.watch_pages()
        if pages != self._watch_pages:
            self._watch_pages = pages
            self.mmu.watch_data(pages, self._check_data_trigger if pages else None)
            self.tlb_flush_all()  # the pages may be in the TLB

    def _check_data_trigger(self, vaddr: int, size: int, access: int) -> None:
        if self.debugger is not None:
            self.debugger.check_data(vaddr, size, access)
        if self.triggers is not None:
            self.triggers.check_data(vaddr, size, access, self.ps.priv)

    # -- what machine.Machine asks -------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """In WFI."""
        return self.ps.waiting

    @property
    def wakeup_event(self) -> threading.Event:
        """Set when an interrupt line rises or the hart is kicked (MTTCG: its own)."""
        return self.ps.wakeup

    def interrupt_ready(self) -> bool:
        """WFI may resume: some interrupt is pending and enabled in mie."""
        self.pmu.latch_overflows()  # a counter may have wrapped while it waited
        return bool(self.ps.mip() & self.ps.mie)

    def masked_wakeup(self) -> tuple[int, int] | None:
        """Why WFI resumes when no interrupt will be taken: (pc, the interrupts pending
        and enabled in mie but masked by the global enable), or None if one will be
        taken (or none is pending).  The code after such a WFI is usually a loop that
        polls memory and comes straight back to it (OpenSBI's HSM wait, entered with
        an IPI still pending, spins so until Linux starts the hart)."""
        ps = self.ps
        pending = ps.mip() & ps.mie
        if not pending or ps.pending_interrupt() is not None:
            return None
        return self.slots[rv.PC], pending

    def wake(self) -> None:
        self.ps.waiting = False
        self.slots[rv.EXIT_REQUEST] = 1

    def set_interrupt_listener(self, listener: Callable[[RiscvHart], None]) -> None:
        self.ps.on_line_raised = lambda _ps: listener(self)

    def armed_timer_ns(self) -> int | None:
        """When the Sstc timer (stimecmp) fires or a counter overflows, if either is
        in use."""
        ps = self.ps
        deadline = ps.timer_deadline_ns if ps.sstc_enabled else NEVER_NS
        deadline = min(deadline, self.pmu.overflow_ns)
        return None if deadline == NEVER_NS else deadline

    def timer_interrupt_pending(self) -> bool:
        return bool(self.ps.mip() & (MIP_STIP | MIP_VSTIP | MIP_LCOFIP))

    # -- reset -------------------------------------------------------------------------------
    def reset(self, pc: int) -> None:
        # the clock slots belong to the ACLINT, which may have been reset before us
        clock = self.slots[rv.CLOCK_EPOCH:rv.CLOCK_OFFSET + 1].tolist()
        for i in range(rv.N_SLOTS):
            self.slots[i] = 0
        self.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        for i, value in enumerate(clock):
            self.slots[rv.CLOCK_EPOCH + i] = value
        self.ps.reset()
        self.pmu.reset()
        self.state.vector.reset()
        self.pmp.reset()
        if self.triggers is not None:
            self.triggers.reset()
            self.apply_triggers()
        self.mmu.switch()
        self.tlb_flush_all()
        self._bind_context(self.mmu.ctx)  # the native slots were zeroed above
        self.slots[rv.PC] = pc


__all__ = ["RiscvHart"]
