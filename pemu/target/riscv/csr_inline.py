"""CSR accesses that translated code does itself, without the ``csr_access`` helper.

A helper call costs a ctypes callback into Python and the CSR table's dispatch (about
8 us per access with the native backend), and a Linux guest's kernel makes hundreds of
thousands of them per boot.  What is done inline here, with the helper left as the
fallback for every other case (a run-time test picks it):

* ``sscratch``, ``sepc``, ``scause``, ``stval`` (every trap entry and exit reads or
  writes them): plain registers kept in state slots (cpu_state.py), read and written
  in place from S- and M-mode; M-mode's ``mscratch``, ``mepc``, ``mcause``, ``mtval``
  and reads of ``mhartid`` the same way (OpenSBI's trap handler: ~20 CSR accesses per
  IPI, remote fence or SBI call, the traffic of an SMP guest that forks and execs);
* reads of ``sstatus`` (mstatus, masked, with SD computed), and of ``mstatus`` in M-mode;
* ``csrw/csrs/csrc sstatus`` that changes nothing, or clears SIE alone (the irqsave
  locks around every spinlock): no side effects at all;
* ``csrw/csrs/csrc sstatus`` in S-mode that change no more than SUM, SIE, SPIE, SPP and
  FS (the user-access window opened and closed around every copy to or from user
  memory; interrupts enabled again after a lock; the kernel entry's ``csrrc`` of
  SUM|FS|VS and the exit's ``csrw`` of the saved status: ~40 k helper calls of
  Debian's boot): SUM and FS are part of the block flags (SUM selects the S+SUM MMU
  index, FS Off/Clean the FP checks), so the new flags are stored into the
  ``tb_flags`` slot the native dispatcher matches, and the block ends with a lookup
  as after any sstatus write.  MXR (a TLB flush) and VS (read-only zero without V)
  take the helper.  The python loop holds the
  flags it started with, so there (``native_flags`` slot 0) the inline code also
  requests an exit when they changed, as the helper's ``flags_changed`` would.
  Setting SIE is inline only while the ``irq_pending`` slot is zero: Python clears it
  when it finds no interrupt pending in mip & mie and everything that may raise one
  sets it (priv.py), so an interrupt that setting SIE makes deliverable still takes
  the helper, which exits to take it before the next instruction.

* reads of ``time`` (rdtime: the kernel's clocksource, tens of thousands per boot),
  where the ``time_allowed`` slot says this privilege may read it: the ACLINT's
  formula from the clock slots (accel/tcg/guest_clock.py), the value the helper
  would return.

A hypervisor extension that redirects the S CSRs to their VS twins when V=1 must keep
such blocks off this path (their flags would say so).
"""

from __future__ import annotations

from pemu.accel.tcg.guest_clock import emit_guest_ticks
from pemu.accel.tcg.ir import Cond, Const, Label, Operand, Temp
from pemu.accel.tcg.opcodes import AND, OR, SHL, SHR, XOR
from pemu.target.riscv import csr
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.mmu import PRV_M, PRV_S
from pemu.target.riscv.priv import (
    FLAG_FS_CLEAN,
    FLAG_FS_OFF,
    FLAG_SUM,
    MSTATUS_FS,
    MSTATUS_SIE,
    MSTATUS_SPIE,
    MSTATUS_SPP,
    MSTATUS_SUM,
    MSTATUS_VS,
    MSTATUS_WRITABLE,
    SSTATUS_MASK,
)
from pemu.target.riscv.trap_inline import fs_flags

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
CSR_SSTATUS = 0x100
CSR_MSTATUS = 0x300
CSR_TIME = 0xC01
_SIE_SHIFT = MSTATUS_SIE.bit_length() - 1
_SUM_TO_FLAG = MSTATUS_SUM.bit_length() - FLAG_SUM.bit_length()  # mstatus.SUM -> FLAG_SUM
_WRITABLE = SSTATUS_MASK & MSTATUS_WRITABLE  # what a write of sstatus may change
# what an S-mode write changes inline: not MXR (a TLB flush), not VS (read-only zero
# without V, which the helper knows)
_INLINE_BITS = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_FS

# CSR number -> (state slot global, writable bits: 0 for a read-only CSR, whose writes
# the helper refuses); reads return the slot as it is
EPC_WRITABLE = MASK64 & ~1  # IALIGN is 16 with the C extension: bit 0 reads 0
SLOT_CSRS: dict[int, tuple[str, int]] = {
    0x140: ("sscratch", MASK64),
    0x141: ("sepc", EPC_WRITABLE),
    0x142: ("scause", MASK64),
    0x143: ("stval", MASK64),
    0x340: ("mscratch", MASK64),
    0x341: ("mepc", EPC_WRITABLE),
    0x342: ("mcause", MASK64),
    0x343: ("mtval", MASK64),
    0xF14: ("mhartid", 0),
}


def trans_slot_csr(ctx: DisasContext, number: int, kind: int, rd: int,
                   value: Operand, action: int) -> bool:
    """csrrw/csrrs/csrrc (``kind`` 1/2/3) on a register of ``SLOT_CSRS``, inline.
    False (nothing emitted) if this access needs the helper."""
    entry = SLOT_CSRS.get(number)
    if entry is None or ctx.priv < (number >> 8) & 3:
        return False  # from a lower privilege the helper raises the illegal instruction
    name, writable = entry
    if not writable and action & ~csr.ACTION_READ:
        return False  # a write of a read-only CSR: the helper raises the illegal insn
    b = ctx.b
    reg = b.glob(name)
    old: Temp | None = None
    if rd:  # rd may be the source register: keep the old value before writing
        old = b.mov(b.temp(), reg)
    if action & ~csr.ACTION_READ:
        new = b.temp()
        if kind == 1:
            b.mov(new, value)
        elif kind == 2:
            b.binop(OR, new, reg, value)
        else:
            b.binop(XOR, new, value, Const(MASK64))
            b.binop(AND, new, new, reg)
        if writable != MASK64:
            b.binop(AND, new, new, Const(writable))
        b.mov(reg, new)
    if old is not None:
        b.mov(ctx.dest(rd), old)
    return True


def trans_sstatus_read(ctx: DisasContext, rd: int) -> bool:
    """csrr rd, sstatus from S- or M-mode: mstatus as sstatus shows it, inline."""
    if ctx.priv < PRV_S:
        return False
    ctx.b.mov(ctx.dest(rd), _sstatus_view(ctx, ctx.b.glob("mstatus")))
    return True


def trans_mstatus_read(ctx: DisasContext, rd: int) -> bool:
    """csrr rd, mstatus from M-mode (OpenSBI's trap handler reads it twice per trap):
    the slot with SD computed, inline."""
    if ctx.priv != PRV_M:
        return False  # from below M the helper raises the illegal instruction
    ctx.b.mov(ctx.dest(rd), _status_view(ctx, ctx.b.glob("mstatus"), MASK64))
    return True


def _sstatus_view(ctx: DisasContext, ms: Temp) -> Temp:
    """mstatus as sstatus shows it."""
    return _status_view(ctx, ms, SSTATUS_MASK)


def _status_view(ctx: DisasContext, ms: Temp, mask: int) -> Temp:
    """mstatus's bits of ``mask``, with SD summarising FS and VS (PrivState.read_mstatus)."""
    b = ctx.b
    old, sd, vs_dirty = b.temp(), b.temp(), b.temp()
    b.binop(AND, sd, ms, Const(MSTATUS_FS))
    b.setcond(sd, Cond.EQ, sd, Const(MSTATUS_FS))
    b.binop(AND, vs_dirty, ms, Const(MSTATUS_VS))
    b.setcond(vs_dirty, Cond.EQ, vs_dirty, Const(MSTATUS_VS))
    b.binop(OR, sd, sd, vs_dirty)
    b.binop(SHL, sd, sd, Const(63))
    if mask == MASK64:
        b.mov(old, ms)
    else:
        b.binop(AND, old, ms, Const(mask))
    b.binop(OR, old, old, sd)
    return old


def trans_sstatus_inline(ctx: DisasContext, rd: int, value: Operand, kind: int
                         ) -> list[Label]:
    """csrrw/csrrs/csrrc (``kind`` 1/2/3) writing sstatus, inline when it is one of the
    cases of the module doc; else falls through to the helper call the caller emits,
    after which the caller places the returned labels in order.  The shape is nested
    if/else, as the python backend needs: if quiet { ... } else { if inline { ... }
    else { helper } }."""
    if ctx.priv < PRV_S:
        return []  # illegal from U-mode: the helper raises it
    b = ctx.b
    ms = b.glob("mstatus")
    old = _sstatus_view(ctx, ms) if rd else None  # before any write: rd may be the source
    flips = b.temp()  # the mstatus bits the write changes
    if kind == 1:
        b.binop(XOR, flips, ms, value)
    elif kind == 2:
        b.binop(XOR, flips, ms, Const(MASK64))
        b.binop(AND, flips, flips, value)
    else:
        b.binop(AND, flips, ms, value)
    b.binop(AND, flips, flips, Const(_WRITABLE))
    # quiet: nothing changes but SIE, cleared (the irqsave locks): no flags, no interrupt
    t = b.temp()
    b.binop(AND, t, ms, Const(MSTATUS_SIE))
    b.binop(XOR, t, t, Const(MASK64))
    b.binop(AND, t, t, flips)
    not_quiet, done = b.label(), b.label()
    b.brcond(Cond.NE, t, Const(0), not_quiet)
    b.binop(XOR, ms, ms, flips)
    _write_rd(ctx, rd, old)
    b.br(done)
    b.set_label(not_quiet)
    if ctx.priv != PRV_S:
        return [done]
    # the bits of _INLINE_BITS, SIE set only while no interrupt may be pending
    slow, inline_done, no_exit = b.label(), b.label(), b.label()
    blockers, sie_on = b.temp(), b.temp()
    b.binop(AND, blockers, flips, Const(MASK64 & ~_INLINE_BITS))
    b.setcond(sie_on, Cond.NE, b.glob("irq_pending"), Const(0))
    b.binop(SHL, sie_on, sie_on, Const(_SIE_SHIFT))
    b.binop(AND, sie_on, sie_on, flips)  # (SIE flips to set only where it is clear:
    b.binop(XOR, t, ms, Const(MASK64))  # clear SIE's flip to clear)
    b.binop(AND, sie_on, sie_on, t)
    b.binop(OR, blockers, blockers, sie_on)
    b.brcond(Cond.NE, blockers, Const(0), slow)
    b.binop(XOR, ms, ms, flips)
    # the block flags with SUM and FS as mstatus now has them (S-mode, V=0: nothing
    # else in them depends on sstatus)
    flags = fs_flags(ctx, ms)
    b.binop(AND, t, ms, Const(MSTATUS_SUM))
    b.binop(SHR, t, t, Const(_SUM_TO_FLAG))
    b.binop(OR, flags, flags, t)
    b.binop(OR, flags, flags, Const(ctx.flags & ~(FLAG_SUM | FLAG_FS_OFF | FLAG_FS_CLEAN)))
    b.mov(b.glob("tb_flags"), flags)
    # the python loop must be left to see new flags; only ever store 1 into
    # exit_request (another thread may set it at any time)
    must_exit, python_loop = b.temp(), b.temp()
    b.setcond(must_exit, Cond.NE, flags, Const(ctx.flags))
    b.setcond(python_loop, Cond.EQ, b.glob("native_flags"), Const(0))
    b.binop(AND, must_exit, must_exit, python_loop)
    b.brcond(Cond.EQ, must_exit, Const(0), no_exit)
    b.movi(b.glob("exit_request"), 1)
    b.set_label(no_exit)
    _write_rd(ctx, rd, old)
    b.br(inline_done)
    b.set_label(slow)
    return [inline_done, done]


def trans_time_read(ctx: DisasContext, rd: int) -> list[Label]:
    """csrr rd, time with V=0: inline when the ``time_allowed`` slot has this
    privilege's bit (else the helper the caller emits next raises the trap or computes
    it); the caller places the returned label after that helper call."""
    b = ctx.b
    allowed, slow, done = b.temp(), b.label(), b.label()
    b.binop(AND, allowed, b.glob("time_allowed"), Const(1 << ctx.priv))
    b.brcond(Cond.EQ, allowed, Const(0), slow)
    emit_guest_ticks(b, ctx.dest(rd), b.glob("clock_epoch"), b.glob("clock_ns_per_tick"),
                     b.glob("clock_offset"))
    b.br(done)
    b.set_label(slow)
    return [done]


def _write_rd(ctx: DisasContext, rd: int, old: Temp | None) -> None:
    if old is not None:
        ctx.b.mov(ctx.dest(rd), old)


__all__ = ["SLOT_CSRS", "trans_mstatus_read", "trans_slot_csr", "trans_sstatus_inline",
           "trans_sstatus_read", "trans_time_read"]
