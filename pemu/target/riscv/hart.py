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
from pemu.target.riscv.cpu_state import RiscvCPUState
from pemu.target.riscv.csr_system import register_system_csrs
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.insn_priv import register_privileged_instructions
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.mmu import PMP
from pemu.target.riscv.mmu_regime import RiscvMMU
from pemu.target.riscv.priv import MENVCFG_ADUE, MENVCFG_PBMTE, MIP_STIP, NEVER_NS, PrivState


class RiscvHart(SystemCPU):
    """One hart in system mode; it is the ``env`` translated code and helpers get."""

    trap_class = RiscvTrap

    def __init__(self, hartid: int, translator: SystemTranslator, space: AddressSpace,
                 now: Callable[[], int], wakeup: threading.Event,
                 isa: RiscvIsa = DEFAULT_ISA) -> None:
        # what system mode adds to the frontend and the CSR table (both idempotent)
        register_system_csrs()
        register_aia_csrs()  # illegal unless the board sets ``hart.aia``
        register_privileged_instructions()
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
        # menvcfg at reset, as QEMU resets it: PBMTE with Svpbmt (firmware that predates
        # Svpbmt never sets it, while Linux uses the PBMT bits whenever the device tree
        # lists Svpbmt), ADUE with Svadu (the old always-updating walk)
        ps.menvcfg_reset = ps.menvcfg = ((MENVCFG_PBMTE if isa.has("svpbmt") else 0)
                                         | (MENVCFG_ADUE if isa.has("svadu") else 0))
        self.regime = RiscvMMU(ps, self.pmp, space, translator.dram, isa)
        super().__init__(translator, state, SoftMMU(self.regime, space, translator.dram))
        self.block_flags = ps.block_flags  # bound once: the loops call it at every exit
        ps.on_flags_changed = self.flags_changed

    def run(self) -> None:
        # which loop runs decides how an inline sstatus.SUM write makes its new block
        # flags seen (csr_inline.py): in the flags slot, or by leaving the python loop
        native = self.translator.native and not self.count_insns
        self.slots[rv.NATIVE_FLAGS] = int(native)
        super().run()

    # -- SystemCPU's target part -------------------------------------------------------
    def cpu_exec_interrupt(self) -> bool:
        ps = self.ps
        irq = ps.pending_interrupt()
        if irq is not None:
            ps.take_trap(irq, 0, interrupt=True)
        elif ps.waiting:
            return False
        return True

    def do_exception(self, trap: RiscvTrap) -> None:
        self.ps.take_trap(trap.cause, trap.tval)

    def timer_deadline_ns(self) -> int:
        return self.ps.timer_deadline_ns

    def request_exit(self) -> None:
        """Leave translated code at the next block entry (any thread)."""
        self.ps.kick()

    # -- what machine.Machine asks -------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """In WFI."""
        return self.ps.waiting

    def interrupt_ready(self) -> bool:
        """WFI may resume: some interrupt is pending and enabled in mie."""
        return bool(self.ps.mip() & self.ps.mie)

    def wake(self) -> None:
        self.ps.waiting = False
        self.slots[rv.EXIT_REQUEST] = 1

    def set_interrupt_listener(self, listener: Callable[[RiscvHart], None]) -> None:
        self.ps.on_line_raised = lambda _ps: listener(self)

    def armed_timer_ns(self) -> int | None:
        """When the Sstc timer (stimecmp) fires, if it is in use."""
        ps = self.ps
        if not ps.sstc_enabled or ps.timer_deadline_ns == NEVER_NS:
            return None
        return ps.timer_deadline_ns

    def timer_interrupt_pending(self) -> bool:
        return bool(self.ps.mip() & MIP_STIP)

    # -- reset -------------------------------------------------------------------------------
    def reset(self, pc: int) -> None:
        for i in range(rv.N_SLOTS):
            self.slots[i] = 0
        self.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        self.ps.reset()
        self.state.vector.reset()
        self.pmp.reset()
        self.mmu.switch()
        self.tlb_flush_all()
        self._bind_context(self.mmu.ctx)  # the native slots were zeroed above
        self.slots[rv.PC] = pc


__all__ = ["RiscvHart"]
