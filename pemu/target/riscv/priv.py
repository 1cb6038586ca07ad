"""The privileged architecture of one hart (spec 1.12): modes, traps, interrupts, xRET.

``PrivState`` holds the machine- and supervisor-level registers as Python ints (they
are read by helpers, never by translated code).  What translated code must see lives
in the CPU state block: the current privilege (``PRIV`` slot, read by the CSR helper)
and ``EXIT_REQUEST``, which anyone who may have made an interrupt deliverable sets so
the vCPU loop re-checks at the next block boundary.

Interrupt lines driven by devices (MSIP/MTIP from the ACLINT, MEIP/SEIP from the PLIC)
arrive on other threads through ``set_line``; software-writable pending bits (SSIP,
STIP without Sstc, the software SEIP) live in ``mip_sw``.  With Sstc enabled
(menvcfg.STCE) STIP follows ``time >= stimecmp`` and is computed on demand.

mstatus.FS is tracked exactly: translated code learns it from the block flags
(``FLAG_FS_OFF``: FP instructions are illegal; ``FLAG_FS_CLEAN``: the block calls
``MARK_FS_DIRTY`` after its first FP-state write), and the FP CSRs check it at run
time.  Any change of FS asks the vCPU loop to re-derive the flags.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pemu.accel.tcg import counters
from pemu.accel.tcg.ir import CALL_READS_STATE, CALL_SIDE_EFFECTS, CALL_WRITES_STATE, Helper
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.exceptions import ILLEGAL_INSN, trap_name
from pemu.target.riscv.hyp import (
    H_INTERRUPTS,
    H_IRQ_PRIORITY,
    HSTATUS_GVA,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    MIDELEG_FORCED,
    MIP_SGEIP,
    MIP_VSEIP,
    MIP_VSTIP,
    MSTATUS_GVA,
    MSTATUS_MPV,
    VIRTUAL_INSN,
    VS_INTERRUPTS,
    HypState,
    gva_for,
    trap_gpa,
)
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U
from pemu.target.riscv.pointer_masking import ENVCFG_PMM, FLAG_PM_SHIFT
from pemu.target.riscv.pointer_masking import code as pm_code
from pemu.target.riscv.pointer_masking import field as pmm_field

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
INTERRUPT_BIT = 1 << 63

# mstatus fields
MSTATUS_SIE = 1 << 1
MSTATUS_MIE = 1 << 3
MSTATUS_SPIE = 1 << 5
MSTATUS_MPIE = 1 << 7
MSTATUS_SPP = 1 << 8
MSTATUS_MPP_SHIFT = 11
MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT
MSTATUS_VS = 3 << 9  # the vector unit's state, like FS (only with V: see PrivState.vector)
MSTATUS_FS_SHIFT = 13
MSTATUS_FS = 3 << MSTATUS_FS_SHIFT  # 0 Off, 1 Initial, 2 Clean, 3 Dirty
MSTATUS_MPRV = 1 << 17
MSTATUS_SUM = 1 << 18
MSTATUS_MXR = 1 << 19
MSTATUS_TVM = 1 << 20
MSTATUS_TW = 1 << 21
MSTATUS_TSR = 1 << 22
MSTATUS_UXL = 2 << 32
MSTATUS_SXL = 2 << 34
MSTATUS_SD = 1 << 63
MSTATUS_WRITABLE = (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP
                    | MSTATUS_MPP | MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR
                    | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_VS)
SSTATUS_MASK = (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM
                | MSTATUS_MXR | MSTATUS_UXL | MSTATUS_SD | MSTATUS_VS)
# Changing these changes how memory accesses translate (TLB contents or block flags).
MSTATUS_MMU_BITS = MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR
# Changing these changes the block flags or the TLBs: the vCPU loop must look again.
MSTATUS_FLAG_BITS = MSTATUS_MMU_BITS | MSTATUS_FS

# interrupt numbers and mip/mie bits
IRQ_S_SOFT, IRQ_M_SOFT, IRQ_S_TIMER, IRQ_M_TIMER, IRQ_S_EXT, IRQ_M_EXT = 1, 3, 5, 7, 9, 11
MIP_SSIP, MIP_MSIP = 1 << IRQ_S_SOFT, 1 << IRQ_M_SOFT
MIP_STIP, MIP_MTIP = 1 << IRQ_S_TIMER, 1 << IRQ_M_TIMER
MIP_SEIP, MIP_MEIP = 1 << IRQ_S_EXT, 1 << IRQ_M_EXT
S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP
IRQ_LCOFI = 13  # Sscofpmf's local counter-overflow interrupt (pmu.py)
MIP_LCOFIP = 1 << IRQ_LCOFI
ALL_INTERRUPTS = S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP
# Highest priority first (spec 3.1.9): MEI, MSI, MTI, SEI, SSI, STI.
IRQ_PRIORITY = (IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER,
                IRQ_LCOFI)  # LCOFI after the standard ones (AIA's default order)
# Exceptions S-mode may handle (all but ECALL from M and the reserved/H causes).
MEDELEG_WRITABLE = 0xB3FF

MENVCFG_STCE = 1 << 63
MENVCFG_PBMTE = 1 << 62  # Svpbmt: S-mode page tables may give memory types
MENVCFG_ADUE = 1 << 61  # Svadu: the walk sets A/D (else they fault, Svade)
ENVCFG_FIOM = 1
ENVCFG_CBIE = 3 << 4  # Zicbom: cbo.inval below M (0 illegal, 1 flush, 3 invalidate)
ENVCFG_CBCFE = 1 << 6  # Zicbom: cbo.clean/cbo.flush below M
ENVCFG_CBZE = 1 << 7  # Zicboz: cbo.zero below M
# menvcfg/senvcfg bits pemu keeps; the extension bits exist whatever -cpu says (the CSR
# table is one for all harts), so a guest that probes them sees them writable
SENVCFG_WRITABLE = ENVCFG_FIOM | ENVCFG_CBIE | ENVCFG_CBCFE | ENVCFG_CBZE
MENVCFG_WRITABLE = MENVCFG_STCE | MENVCFG_PBMTE | MENVCFG_ADUE | SENVCFG_WRITABLE

# Block flags beyond the privilege level (bits 1:0, see target.riscv.context):
FLAG_MPRV = 1 << 2  # M-mode data accesses use MPP's translation: all take the slow path
FLAG_SUM = 1 << 3  # S-mode with SUM: data accesses use the S+SUM TLB
# mstatus.FS as the frontend needs it.  Neither bit set means "FP on, no tracking
# needed" (FS Dirty, or user mode, which translates with flags 0).
FLAG_FS_OFF = 1 << 4  # FS Off: every F/D instruction is illegal
FLAG_FS_CLEAN = 1 << 5  # FS Initial or Clean: the first FP-state write marks FS Dirty
FLAG_VIRT = 1 << 6  # V=1 (H): VS/VU-mode; the S CSRs are the VS ones, SUM is vsstatus's
# bits 9:7: the data accesses' pointer masking (pointer_masking.FLAG_PM_MASK)
# Zicboz: the envcfg registers refuse cbo.zero in this mode (never set in M-mode or in
# user mode, which translates with flags 0): only such blocks call the check helper,
# the kernel's page clearing (64 cbo.zero a page) runs without one
FLAG_CBO_ZERO_OFF = 1 << 10
# the menvcfg/senvcfg/henvcfg bits the block flags depend on: a write that changes one
# must re-derive the flags (on_flags_changed)
ENVCFG_FLAG_BITS = ENVCFG_PMM | ENVCFG_CBZE
_FS_FLAGS = (FLAG_FS_OFF, FLAG_FS_CLEAN, FLAG_FS_CLEAN, 0)  # by FS value

# bits of the ``inline_traps`` slot (see PrivState._update_inline_traps)
INLINE_ECALL_U = 1  # ecall from U, delegated to S, is entered by translated code
INLINE_SRET = 2  # sret from S (V=0, TSR clear, no interrupt pending) is translated code
ECALL_FROM_U = 8  # its cause (exceptions.ECALL_U), the medeleg bit tested
# FLAG_CBO_ZERO_OFF of the mode an inline trap entry/exit enters, as the envcfgs say now:
# bit INLINE_CBO_OFF_SHIFT + priv (U: 4, S: 5), so translated code shifts by 4 + priv
INLINE_CBO_OFF_SHIFT = 4

NEVER_NS = 1 << 80  # a host deadline that never comes
MISA = (2 << 62) | sum(1 << (ord(c) - ord("A")) for c in "ACDFIMSU")
MISA_V = 1 << (ord("V") - ord("A"))
MISA_H = 1 << (ord("H") - ord("A"))


def _slot_register(slot: int) -> property:
    """A PrivState register kept in state slot ``slot`` (so translated code reaches it)."""
    return property(lambda self: self.slots[slot],
                    lambda self, value: self.slots.__setitem__(slot, value))


def _irq_register(attr: str) -> property:
    """A PrivState interrupt register whose writes set the ``IRQ_PENDING`` hint."""

    def write(self: PrivState, value: int) -> None:
        setattr(self, attr, value)
        self.slots[rv.IRQ_PENDING] = 1

    return property(lambda self: getattr(self, attr), write)


TIME_COUNTER = 1  # the TM bit of mcounteren/scounteren


class PrivState:
    """Privileged registers of one hart.  ``now`` reads the 10 MHz ``time`` counter."""

    def __init__(self, hartid: int, slots: memoryview, now: Callable[[], int]) -> None:
        self.hartid = hartid
        self.slots = slots
        self.now = now
        self.lock = threading.Lock()
        self.wakeup = threading.Event()  # set whenever an interrupt line rises
        # -d int: one line per trap (a property: while set, traps stay in Python)
        self._log_trap: Callable[[str], None] | None = None
        # called (any thread) after an interrupt line of this hart rose
        self.on_line_raised: Callable[[PrivState], None] | None = None
        # called (hart's thread, inside a helper) when the block flags may have changed;
        # the hart replaces it (SystemCPU.flags_changed: the native dispatcher's flags
        # slot is updated in place and the block ends with a lookup, no exit to Python)
        self.on_flags_changed: Callable[[], None] = self.request_exit
        self.timebase_hz = 10_000_000
        # the hart has V: misa.V is set and mstatus.VS is writable (else it stays Off)
        self.vector = False
        # menvcfg after reset: PBMTE/ADUE for a hart with Svpbmt/Svadu (the hart sets it)
        self.menvcfg_reset = 0
        # the satp modes this hart translates with (-cpu sv39/sv48/sv57 properties)
        self.satp_modes: frozenset[int] = frozenset({8, 9, 10})
        self.smstateen = False  # the hart has Smstateen (csr_stateen.py)
        # the pointer-masking extensions of the hart (smmpm, smnpm, ssnpm): which PMM
        # fields are writable (pointer_masking.py)
        self.pm_extensions: frozenset[str] = frozenset()
        self.has_h = False  # the hart has H: V, the h*/vs* CSRs (hyp.py)
        self.hyp = HypState()
        # called (hart's thread) when V changed: the address space (TLB set) is another
        self.on_virt_changed: Callable[[], None] | None = None
        # interrupts beyond ALL_INTERRUPTS this hart has (MIP_LCOFIP with Sscofpmf):
        # writable in mie and mip, delegable in mideleg
        self.local_interrupts = 0
        # called after every privilege change while the PMU filters counters by mode (a
        # property: while set, privilege changes stay in Python)
        self._on_priv_change: Callable[[int], None] | None = None
        self._menvcfg = self._senvcfg = 0
        self.reset()

    def reset(self) -> None:
        self.priv = PRV_M
        self.slots[rv.MHARTID] = self.hartid  # read inline (csr_inline.py)
        self.mstatus = MSTATUS_UXL | MSTATUS_SXL
        self.misa = MISA | (MISA_V if self.vector else 0) | (MISA_H if self.has_h else 0)
        self.virt = False  # H's virtualization mode V
        # H: the data accesses translate as V=1 (V=1, or M with MPRV and MPV): the
        # softmmu's address space is a V=1 one (mmu_regime.RiscvMMU.space_key)
        self.space_virt = False
        self.hyp.reset()
        self.medeleg = 0
        self.mideleg = 0
        self.mie = 0
        self.mip_sw = 0
        self.mip_hw = 0
        self.mtvec = 0
        self.stvec = 0
        self.mscratch = 0
        self.sscratch = 0
        self.mepc = 0
        self.sepc = 0
        self.mcause = 0
        self.scause = 0
        self.mtval = 0
        self.stval = 0
        self.satp = 0
        self._mcounteren = self._scounteren = 0
        self._update_time_allowed()
        self.mcountinhibit = 0
        self.menvcfg = self.menvcfg_reset
        self.senvcfg = 0
        self.mseccfg = 0  # only its PMM field (Smmpm): pemu has no Smepmp or Zkr
        self.mstateen = [0, 0, 0, 0]
        self.stimecmp = MASK64
        self.timer_deadline_ns = NEVER_NS  # host monotonic_ns when time reaches stimecmp
        # H: the same for the guest's vstimecmp (timer_deadline_ns is the earlier one)
        self.s_deadline_ns = self.vs_deadline_ns = NEVER_NS
        self.cycle_offset = 0
        self.waiting = False  # in WFI

    # mstatus lives in the state block: translated code reads it and clears SIE inline
    # (csr_inline.trans_sstatus_inline); everything else goes through here
    @property
    def mstatus(self) -> int:
        return self.slots[rv.MSTATUS]

    @mstatus.setter
    def mstatus(self, value: int) -> None:
        self.slots[rv.MSTATUS] = value

    # the counter-enable registers decide where translated code may read time inline
    @property
    def mcounteren(self) -> int:
        return self._mcounteren

    @mcounteren.setter
    def mcounteren(self, value: int) -> None:
        self._mcounteren = value
        self._update_time_allowed()

    @property
    def scounteren(self) -> int:
        return self._scounteren

    @scounteren.setter
    def scounteren(self, value: int) -> None:
        self._scounteren = value
        self._update_time_allowed()

    def set_host_clock(self, epoch_ns: int, ns_per_tick: int, offset: int) -> None:
        """The formula of ``now()`` in host monotonic ns (ACLINT.add_clock_listener)."""
        self.slots[rv.CLOCK_EPOCH] = epoch_ns & MASK64
        self.slots[rv.CLOCK_OFFSET] = offset & MASK64
        self.slots[rv.CLOCK_NS_PER_TICK] = ns_per_tick
        self._update_time_allowed()

    def _update_time_allowed(self) -> None:
        # bit p: privilege p with V=0 reads time without a trap (csr_system's
        # _counter_allowed), and from the clock slots (none: every bit clear)
        allowed = 0
        if self.slots[rv.CLOCK_NS_PER_TICK]:
            allowed = 1 << PRV_M
            if self._mcounteren >> TIME_COUNTER & 1:
                allowed |= 1 << PRV_S
                if self._scounteren >> TIME_COUNTER & 1:
                    allowed |= 1 << PRV_U
        self.slots[rv.TIME_ALLOWED] = allowed

    # mip and mie: any write may make an interrupt pending, so it sets the hint slot
    # that inline sstatus.SIE writes test (csr_inline.py); pending_interrupt() clears
    # it when it finds none.  A line raised on another thread while the hart clears the
    # hint is not lost: set_line also kicks, and the exit looks again.
    mie = _irq_register("_mie")
    mip_sw = _irq_register("_mip_sw")
    mip_hw = _irq_register("_mip_hw")

    # the trap CSRs S-mode code reads and writes on every system call live in the
    # state block too: translated code accesses them inline (csr_inline.py)
    sscratch = _slot_register(rv.SSCRATCH)
    sepc = _slot_register(rv.SEPC)
    scause = _slot_register(rv.SCAUSE)
    stval = _slot_register(rv.STVAL)
    # ... and those of M-mode, which OpenSBI's trap handler reads and writes on every
    # IPI, remote fence and SBI call (several harts: each fork/exec brings some)
    mscratch = _slot_register(rv.MSCRATCH)
    mepc = _slot_register(rv.MEPC)
    mcause = _slot_register(rv.MCAUSE)
    mtval = _slot_register(rv.MTVAL)
    # the privilege and what the inline ecall trap entry reads (trap_inline.py)
    priv = _slot_register(rv.PRIV)
    stvec = _slot_register(rv.STVEC)

    @property
    def medeleg(self) -> int:
        return self.slots[rv.MEDELEG]

    @medeleg.setter
    def medeleg(self, value: int) -> None:
        self.slots[rv.MEDELEG] = value
        self._update_inline_traps()

    @property
    def log_trap(self) -> Callable[[str], None] | None:
        return self._log_trap

    @log_trap.setter
    def log_trap(self, fn: Callable[[str], None] | None) -> None:
        self._log_trap = fn
        self._update_inline_traps()

    @property
    def on_priv_change(self) -> Callable[[int], None] | None:
        return self._on_priv_change

    @on_priv_change.setter
    def on_priv_change(self, fn: Callable[[int], None] | None) -> None:
        self._on_priv_change = fn
        self._update_inline_traps()

    # the envcfgs decide cbo.zero's block flag, which an inline trap entry/exit sets
    @property
    def menvcfg(self) -> int:
        return self._menvcfg

    @menvcfg.setter
    def menvcfg(self, value: int) -> None:
        self._menvcfg = value
        self._update_inline_traps()

    @property
    def senvcfg(self) -> int:
        return self._senvcfg

    @senvcfg.setter
    def senvcfg(self, value: int) -> None:
        self._senvcfg = value
        self._update_inline_traps()

    def _update_inline_traps(self) -> None:
        """Which trap entries and exits translated code may do itself (the
        ``inline_traps`` slot): none while a trap must be logged or a privilege change
        must reach the PMU (Python hooks); ecall from U only while medeleg sends it to
        S.  What depends on the hart's extensions (H, pointer masking) is decided when
        the block is translated (trap_inline.py)."""
        if self._log_trap is not None or self._on_priv_change is not None:
            bits = 0
        else:
            bits = INLINE_SRET
            if self.slots[rv.MEDELEG] >> ECALL_FROM_U & 1:
                bits |= INLINE_ECALL_U
            # cbo.zero refused in S (V=0) and in U, as envcfg_refusal decides them
            s_off = not self._menvcfg & ENVCFG_CBZE
            u_off = s_off or not self._senvcfg & ENVCFG_CBZE
            bits |= (u_off << PRV_U | s_off << PRV_S) << INLINE_CBO_OFF_SHIFT
        self.slots[rv.INLINE_TRAPS] = bits

    # -- interrupt lines (any thread) -------------------------------------------------
    def set_line(self, bit: int, level: bool) -> None:
        with self.lock:
            if level:
                self.mip_hw |= bit
            else:
                self.mip_hw &= ~bit
        if counters.ENABLED and bit == MIP_MSIP:
            self._count_ipi(level)
        if level:
            self.kick()
            if self.on_line_raised is not None:
                self.on_line_raised(self)

    def _count_ipi(self, raised: bool) -> None:
        """PEMU_COUNTERS: how long an IPI (the ACLINT's MSIP: OpenSBI's IPIs and remote
        fences) stays raised, from the sender's write to the target's handler clearing
        it, in microseconds."""
        if raised:
            self._ipi_raised_ns = time.perf_counter_ns()
            return
        start = getattr(self, "_ipi_raised_ns", None)
        if start is not None:
            self._ipi_raised_ns = None
            counters.count("ipi:raised (MSIP)")
            counters.count("ipi:microseconds raised", (time.perf_counter_ns() - start) // 1000)

    def kick(self) -> None:
        """Make the vCPU loop look at interrupts at the next block boundary (any thread)."""
        if counters.ENABLED:
            counters.count(f"request:kick ({counters.caller_name()})")
        self.slots[rv.IRQ_PENDING] = 1  # a timer may have become due
        self.slots[rv.EXIT_REQUEST] = 1
        self.wakeup.set()

    def request_exit(self) -> None:
        """``kick`` for the hart's own thread (CSR writes, xRET): the hart is running,
        so nobody sleeps on ``wakeup`` and setting the Event (a lock) is not needed."""
        if counters.ENABLED:
            counters.count(f"request:{counters.caller_name()}")
        self.slots[rv.EXIT_REQUEST] = 1

    def recheck_interrupts(self) -> None:
        """An interrupt may have become deliverable (an enable bit was set, a pending bit
        or the timer changed): leave translated code only if one really is.  Lines that
        rise later kick by themselves, so nothing is missed by not exiting now."""
        if self.pending_interrupt() is not None:
            self.request_exit()

    def set_stimecmp(self, value: int) -> None:
        """Program the Sstc timer; the vCPU loop polls ``timer_deadline_ns``."""
        self.stimecmp = value
        self.s_deadline_ns = self._deadline_ns(value, 0)
        self._timer_changed()

    def set_vstimecmp(self, value: int) -> None:
        """H: program the guest's Sstc timer (compared with time + htimedelta)."""
        self.hyp.vstimecmp = value
        self.vs_deadline_ns = self._deadline_ns(value, self.hyp.htimedelta)
        self._timer_changed()

    def _deadline_ns(self, compare: int, offset: int) -> int:
        if compare == MASK64:
            return NEVER_NS
        delta = compare - ((self.now() + offset) & MASK64)
        return time.monotonic_ns() + max(0, delta) * 1_000_000_000 // self.timebase_hz

    def _timer_changed(self) -> None:
        self.timer_deadline_ns = min(self.s_deadline_ns, self.vs_deadline_ns)
        # the python loop reads the deadline when it (re)starts; the native one has
        # machine.DeadlineKicker watch it, so only an already-due timer needs an exit
        self.on_flags_changed()
        self.recheck_interrupts()

    def line_sink(self, bit: int) -> Callable[[bool], None]:
        return lambda level: self.set_line(bit, level)

    # -- mip ---------------------------------------------------------------------------
    @property
    def sstc_enabled(self) -> bool:
        return bool(self.menvcfg & MENVCFG_STCE)

    def mip(self) -> int:
        value = self.mip_sw | self.mip_hw
        if self.sstc_enabled:
            value &= ~MIP_STIP
            if self.now() >= self.stimecmp:
                value |= MIP_STIP
        if self.has_h:
            hyp = self.hyp
            value |= hyp.hvip & VS_INTERRUPTS  # hvip injects the VS interrupts
            if hyp.hgeip:  # AIA guest interrupt files
                sgeip, vseip = hyp.guest_external_pending()
                value |= (MIP_SGEIP if sgeip else 0) | (MIP_VSEIP if vseip else 0)
            if (hyp.henvcfg & MENVCFG_STCE and self.sstc_enabled
                    and (self.now() + hyp.htimedelta) & MASK64 >= hyp.vstimecmp):
                value |= MIP_VSTIP
        return value

    @property
    def mideleg_effective(self) -> int:
        """mideleg as the hart uses it: with H the VS interrupts are always delegated."""
        return self.mideleg | MIDELEG_FORCED if self.has_h else self.mideleg

    def pending_interrupt(self) -> int | None:
        """The interrupt to take now, or None (spec 3.1.9 and 4.1.3)."""
        pending = self.mip() & self.mie
        self.slots[rv.IRQ_PENDING] = 1 if pending else 0
        if not pending:
            return None
        priv = self.priv
        mideleg = self.mideleg_effective
        m_enabled = priv < PRV_M or self.mstatus & MSTATUS_MIE
        # HS-level interrupts preempt any V=1 code
        s_enabled = (priv < PRV_S or self.virt
                     or (priv == PRV_S and self.mstatus & MSTATUS_SIE))
        m_pending = pending & ~mideleg if m_enabled else 0
        s_pending = pending & mideleg if s_enabled and priv <= PRV_S else 0
        if self.has_h:
            hideleg = self.hyp.hideleg
            s_pending &= ~hideleg
            # the ones HS handed to VS: only while V=1, enabled by vsstatus.SIE in VS
            if self.virt and (priv == PRV_U or self.hyp.vsstatus & MSTATUS_SIE):
                s_pending |= pending & mideleg & hideleg
        enabled = m_pending | s_pending
        if not enabled:
            return None
        for irq in IRQ_PRIORITY:
            if enabled >> irq & 1:
                return irq
        if enabled & H_INTERRUPTS:
            for irq in H_IRQ_PRIORITY:
                if enabled >> irq & 1:
                    return irq
        return None

    # -- privilege transitions -----------------------------------------------------------
    def set_priv(self, priv: int) -> None:
        self.priv = priv
        if self._on_priv_change is not None:
            self._on_priv_change(priv)

    def take_trap(self, cause: int, tval: int, interrupt: bool = False,
                  trap: object = None) -> None:
        """Enter the trap handler for ``cause``; the faulting pc is in the pc slot.
        ``trap``: the exception raised, for what H records of it (hyp.GuestTrap)."""
        s = self.slots
        epc = s[rv.PC]
        priv = self.priv
        deleg = self.mideleg_effective if interrupt else self.medeleg
        code = cause | (INTERRUPT_BIT if interrupt else 0)
        if counters.ENABLED:
            counters.count(f"trap:{trap_name(cause, interrupt)} from {'USHM'[priv]}")
        if self.log_trap is not None:
            # QEMU's -d int line, so that logs of both can be compared
            self.log_trap(f"riscv_cpu_do_interrupt: hart:{self.hartid}, "
                          f"async:{int(interrupt)}, cause:{cause:016x}, epc:0x{epc:016x}, "
                          f"tval:0x{tval & MASK64:016x}, desc={trap_name(cause, interrupt)}")
        ms = self.mstatus
        virt = self.virt
        if self.has_h and priv <= PRV_S and deleg >> cause & 1:
            hdeleg = self.hyp.hideleg if interrupt else self.hyp.hedeleg
            if virt and hdeleg >> cause & 1:
                self._trap_to_vs(cause, code, epc, tval, interrupt)
                return
            hyp = self.hyp
            hs = hyp.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA)
            if virt:
                hs = hs & ~HSTATUS_SPVP | HSTATUS_SPV | (HSTATUS_SPVP if priv == PRV_S else 0)
            if not interrupt and gva_for(cause, virt, trap):  # type: ignore[arg-type]
                hs |= HSTATUS_GVA
            hyp.hstatus = hs
            hyp.htval = trap_gpa(trap) >> 2  # type: ignore[arg-type]
            hyp.htinst = 0
        elif self.has_h and not (priv <= PRV_S and deleg >> cause & 1):
            ms &= ~(MSTATUS_MPV | MSTATUS_GVA)
            if virt:
                ms |= MSTATUS_MPV
            if not interrupt and gva_for(cause, virt, trap):  # type: ignore[arg-type]
                ms |= MSTATUS_GVA
            self.hyp.mtval2 = trap_gpa(trap) >> 2  # type: ignore[arg-type]
            self.hyp.mtinst = 0
        if priv <= PRV_S and deleg >> cause & 1:
            self.scause, self.sepc, self.stval = code, epc, tval & MASK64
            ms = (ms & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)
                  | (MSTATUS_SPIE if ms & MSTATUS_SIE else 0)
                  | (MSTATUS_SPP if priv == PRV_S else 0))
            vector = self.stvec
            self.set_priv(PRV_S)
        else:
            self.mcause, self.mepc, self.mtval = code, epc, tval & MASK64
            ms = (ms & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP)
                  | (MSTATUS_MPIE if ms & MSTATUS_MIE else 0)
                  | (priv << MSTATUS_MPP_SHIFT))
            vector = self.mtvec
            self.set_priv(PRV_M)
        self.mstatus = ms
        self._vector_to(vector, cause, interrupt)
        self.set_virt(False)

    def _vector_to(self, vector: int, cause: int, interrupt: bool) -> None:
        base = vector & ~3
        if interrupt and vector & 1:
            base += 4 * cause
        self.slots[rv.PC] = base & MASK64
        self.waiting = False

    def _trap_to_vs(self, cause: int, code: int, epc: int, tval: int,
                    interrupt: bool) -> None:
        """A trap HS delegated to the guest: the VS registers take it, V stays 1."""
        hyp = self.hyp
        if interrupt and cause in (2, 6, 10):
            cause -= 1  # VS sees its interrupts as the S ones (VSSI -> SSI, ...)
            code -= 1
        hyp.vscause, hyp.vsepc, hyp.vstval = code, epc, tval & MASK64
        vs = hyp.vsstatus
        hyp.vsstatus = (vs & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)
                        | (MSTATUS_SPIE if vs & MSTATUS_SIE else 0)
                        | (MSTATUS_SPP if self.priv == PRV_S else 0))
        self.set_priv(PRV_S)
        self._vector_to(hyp.vstvec, cause, interrupt)

    def set_virt(self, virt: bool) -> None:
        """Enter or leave V=1: another address space, other block flags."""
        self.virt = virt
        self.sync_address_space()

    def sync_address_space(self) -> None:
        """After V, the privilege or mstatus.MPRV/MPV changed: switch to the V=1
        address space or back where the data accesses' regime did."""
        ms = self.mstatus
        space_virt = self.virt or bool(self.has_h and self.priv == PRV_M and ms & MSTATUS_MPRV
                                       and ms & MSTATUS_MPV)
        if space_virt != self.space_virt:
            self.space_virt = space_virt
            if self.on_virt_changed is not None:
                self.on_virt_changed()

    def mret(self) -> int:
        ms = self.mstatus
        new_priv = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        ms = (ms & ~(MSTATUS_MIE | MSTATUS_MPP)) | MSTATUS_MPIE
        if self.mstatus & MSTATUS_MPIE:
            ms |= MSTATUS_MIE
        if new_priv != PRV_M:
            ms &= ~MSTATUS_MPRV
        virt = bool(ms & MSTATUS_MPV) and new_priv != PRV_M
        ms &= ~MSTATUS_MPV
        self.mstatus = ms
        self.set_priv(new_priv)
        self.set_virt(virt)
        return self.mepc

    def sret(self) -> int:
        if self.virt:
            return self._sret_vs()
        ms = self.mstatus
        new_priv = PRV_S if ms & MSTATUS_SPP else PRV_U
        ms = (ms & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)) | MSTATUS_SPIE
        if self.mstatus & MSTATUS_SPIE:
            ms |= MSTATUS_SIE
        self.mstatus = ms
        self.set_priv(new_priv)
        if self.has_h:  # HS returns to V=hstatus.SPV
            hyp = self.hyp
            virt = bool(hyp.hstatus & HSTATUS_SPV)
            hyp.hstatus &= ~HSTATUS_SPV
            self.set_virt(virt)
        return self.sepc

    def _sret_vs(self) -> int:
        """sret in VS-mode: the guest's own return, through vsstatus and vsepc."""
        hyp = self.hyp
        vs = hyp.vsstatus
        new_priv = PRV_S if vs & MSTATUS_SPP else PRV_U
        vs = (vs & ~(MSTATUS_SIE | MSTATUS_SPP)) | MSTATUS_SPIE
        if hyp.vsstatus & MSTATUS_SPIE:
            vs |= MSTATUS_SIE
        hyp.vsstatus = vs
        self.set_priv(new_priv)
        return hyp.vsepc

    # -- what translated code depends on ----------------------------------------------------
    def block_flags(self) -> int:
        if self.virt:
            return self._virt_block_flags()
        priv = self.priv
        ms = self.mstatus
        flags = priv | _FS_FLAGS[(ms & MSTATUS_FS) >> MSTATUS_FS_SHIFT]
        if priv == PRV_M:
            if ms & MSTATUS_MPRV and (ms & MSTATUS_MPP) != MSTATUS_MPP:
                flags |= FLAG_MPRV
        elif priv == PRV_S and ms & MSTATUS_SUM:
            flags |= FLAG_SUM
        if self.pm_extensions:
            flags |= self.pointer_mask_code() << FLAG_PM_SHIFT
        if priv != PRV_M and self.envcfg_refusal(ENVCFG_CBZE) is not None:
            flags |= FLAG_CBO_ZERO_OFF
        return flags

    def _virt_block_flags(self) -> int:
        """V=1: SUM is vsstatus's; FP is on when both FS fields are, and marking is
        needed until both are Dirty."""
        priv = self.priv
        vs = self.hyp.vsstatus
        fs = min((self.mstatus & MSTATUS_FS), (vs & MSTATUS_FS)) >> MSTATUS_FS_SHIFT
        flags = priv | FLAG_VIRT | _FS_FLAGS[fs]
        if priv == PRV_S and vs & MSTATUS_SUM:
            flags |= FLAG_SUM
        if self.pm_extensions:
            flags |= self.pointer_mask_code() << FLAG_PM_SHIFT
        if self.envcfg_refusal(ENVCFG_CBZE) is not None:
            flags |= FLAG_CBO_ZERO_OFF
        return flags

    def envcfg_refusal(self, field: int) -> int | None:
        """The exception an instruction that envcfg ``field`` enables below M (the
        Zicbom/Zicboz cbo.* operations) raises in the current mode, None where it may
        run.  menvcfg gates every mode below M (illegal instruction); with V=1, henvcfg
        gates VS- and VU-mode and senvcfg VU-mode (virtual instruction); senvcfg gates
        U-mode (illegal instruction)."""
        priv = self.priv
        if priv == PRV_M:
            return None
        if not self.menvcfg & field:
            return ILLEGAL_INSN
        user_off = priv == PRV_U and not self.senvcfg & field
        if self.virt:
            return VIRTUAL_INSN if user_off or not self.hyp.henvcfg & field else None
        return ILLEGAL_INSN if user_off else None

    def pointer_mask_code(self) -> int:
        """How data accesses are pointer-masked now (a pointer_masking code, 0: not at
        all): the PMM of the effective mode (MPRV/MPV applied), sign-extending where
        that mode translates; nothing while MXR is in effect in that mode."""
        ms = self.mstatus
        priv, virt = self.priv, self.virt
        if priv == PRV_M and ms & MSTATUS_MPRV:
            priv = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
            virt = self.space_virt
        if priv == PRV_M:  # physical addresses: zero-extended
            return pm_code(pmm_field(self.mseccfg), False)
        if ms & MSTATUS_MXR or (virt and self.hyp.vsstatus & MSTATUS_MXR):
            return 0
        if virt:
            hyp = self.hyp
            pmm = pmm_field(hyp.henvcfg if priv == PRV_S else self.senvcfg)
            return pm_code(pmm, hyp.vsatp >> 60 != 0)
        pmm = pmm_field(self.menvcfg if priv == PRV_S else self.senvcfg)
        return pm_code(pmm, self.satp >> 60 != 0)

    def data_priv(self) -> tuple[int, bool]:
        """(privilege, SUM) that data accesses translate with (MPRV applied)."""
        ms = self.mstatus
        priv = self.priv
        if priv == PRV_M and ms & MSTATUS_MPRV:
            priv = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
            if self.space_virt:  # MPV: the guest's SUM
                return priv, bool(self.hyp.vsstatus & MSTATUS_SUM)
        return priv, bool(ms & MSTATUS_SUM)

    def read_mstatus(self) -> int:
        ms = self.mstatus
        # SD summarises the extension states: FS and VS (no XS).
        if (ms & MSTATUS_FS) == MSTATUS_FS or (ms & MSTATUS_VS) == MSTATUS_VS:
            ms |= MSTATUS_SD
        return ms

    # -- floating-point state (mstatus.FS, spec 3.1.6.6) ----------------------------------
    def fp_off(self) -> bool:
        if self.virt and not self.hyp.vsstatus & MSTATUS_FS:
            return True
        return not self.mstatus & MSTATUS_FS

    def mark_fs_dirty(self) -> None:
        """FP state was written: FS becomes Dirty.  The block flags change with it, so
        the vCPU loop must re-derive them (blocks translated for Dirty mark nothing)."""
        if (self.mstatus & MSTATUS_FS) != MSTATUS_FS:
            self.mstatus |= MSTATUS_FS
            self.request_exit()
        if self.virt and (self.hyp.vsstatus & MSTATUS_FS) != MSTATUS_FS:
            self.hyp.vsstatus |= MSTATUS_FS  # the guest's FS too (spec 8.2.11)
            self.request_exit()


def _mark_fs_dirty(env: object) -> None:
    env.ps.mark_fs_dirty()  # type: ignore[attr-defined]


# Called by blocks translated with FLAG_FS_CLEAN after their first FP-state write.  It
# reads and writes mstatus, a state slot that translated code reads and writes inline
# (csr_inline.py): cached copies are written back before the call and reloaded after.
MARK_FS_DIRTY = Helper("mark_fs_dirty", _mark_fs_dirty,
                       flags=CALL_SIDE_EFFECTS | CALL_READS_STATE | CALL_WRITES_STATE,
                       n_out=0, needs_env=True)
