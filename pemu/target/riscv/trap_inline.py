"""The system call's round trip in translated code: ``ecall`` from U-mode into S-mode's
handler, and ``sret`` back, without leaving generated code.

A Linux guest makes thousands of system calls per second of guest time; each went out
to Python twice: the ecall as an exception (the exit, ``take_trap``, the lookup of the
handler's block under new flags) and the sret as a helper.  The common case is short:

* ``ecall`` from U (V=0) with medeleg's bit 8 set: sepc = pc, scause = 8, stval = 0,
  sstatus.SPIE = SIE, SIE = 0, SPP = U, privilege S, pc = stvec's base (a synchronous
  trap ignores the vectored mode);
* ``sret`` from S (V=0) with mstatus.TSR clear: SIE = SPIE, SPIE = 1, privilege SPP,
  SPP = U, MPRV = 0, pc = sepc, and the LR reservation is dropped (as the helper does).

Both end with a lookup under the new block flags, which they compute from mstatus and
store into the ``tb_flags`` slot the native dispatcher matches, as the inline sstatus
writes do (csr_inline.py); under the python loop (``native_flags`` 0) they also request
an exit so the loop re-derives its flags.

What keeps the rest in Python, where the helper and ``PrivState.take_trap`` remain
the one implementation:

* at translation: H (V=1 paths, hstatus.SPV/GVA, htval), pointer masking (the flags'
  PMM code depends on the new mode) and user-mode emulation (ecall is a system call
  there: this path is registered by system mode only);
* at run time, the ``inline_traps`` slot (PrivState._update_inline_traps): medeleg does
  not delegate ecall from U, or a Python hook must see the trap or the privilege change
  (``-d int``'s log, the PMU's mode filter);
* sret also takes the helper while the ``irq_pending`` slot is set: it may enable an
  interrupt (SIE from SPIE, or U-mode where S interrupts are always on) that must be
  taken before the next instruction, which the helper's recheck does.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Cond, Const, Label, Temp
from pemu.accel.tcg.opcodes import ADD, AND, OR, SHL, SHR, SUB, XOR
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.exceptions import ECALL_U
from pemu.target.riscv.mmu import PRV_S
from pemu.target.riscv.pointer_masking import EXTENSIONS as PM_EXTENSIONS
from pemu.target.riscv.priv import (
    FLAG_CBO_ZERO_OFF,
    FLAG_FS_CLEAN,
    FLAG_FS_OFF,
    FLAG_SUM,
    FLAG_VIRT,
    INLINE_CBO_OFF_SHIFT,
    INLINE_ECALL_U,
    INLINE_SRET,
    MSTATUS_FS_SHIFT,
    MSTATUS_MPRV,
    MSTATUS_SIE,
    MSTATUS_SPIE,
    MSTATUS_SPP,
    MSTATUS_SUM,
    MSTATUS_TSR,
)

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_SIE_TO_SPIE = MSTATUS_SPIE.bit_length() - MSTATUS_SIE.bit_length()
_SPP_SHIFT = MSTATUS_SPP.bit_length() - 1
_SUM_TO_FLAG = MSTATUS_SUM.bit_length() - FLAG_SUM.bit_length()
_FS_OFF_SHIFT = FLAG_FS_OFF.bit_length() - 1
_FS_CLEAN_SHIFT = FLAG_FS_CLEAN.bit_length() - 1


def can_inline(ctx: DisasContext) -> bool:
    """The block's hart and mode allow the inline paths at all (V=0, no H, no pointer
    masking: those make the new flags or the trap's side effects Python's job)."""
    return not (ctx.flags & FLAG_VIRT or "h" in ctx.ext or not ctx.ext.isdisjoint(PM_EXTENSIONS))


def emit_ecall_u(ctx: DisasContext) -> Label:
    """ecall from U: the inline trap entry, guarded by the ``inline_traps`` slot.  The
    caller emits the exception (the fallback) after this, places the label, and ends
    with goto_ptr (the shape of emit_sret)."""
    b = ctx.b
    slow, done = b.label(), b.label()
    allowed = b.temp()
    b.binop(AND, allowed, b.glob("inline_traps"), Const(INLINE_ECALL_U))
    b.brcond(Cond.EQ, allowed, Const(0), slow)
    b.pc_rel(b.glob("sepc"), ctx.pc & MASK64)
    b.movi(b.glob("scause"), ECALL_U)
    b.movi(b.glob("stval"), 0)
    ms = b.glob("mstatus")
    spie = b.temp()  # SPIE = SIE; SIE = 0; SPP = U (0)
    b.binop(AND, spie, ms, Const(MSTATUS_SIE))
    b.binop(SHL, spie, spie, Const(_SIE_TO_SPIE))
    b.binop(AND, ms, ms, Const(MASK64 & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)))
    b.binop(OR, ms, ms, spie)
    b.movi(b.glob("priv"), PRV_S)
    b.binop(AND, ctx.pc_reg, b.glob("stvec"), Const(MASK64 & ~3))
    _store_flags(ctx, ms, Const(PRV_S))
    b.br(done)
    b.set_label(slow)
    return done


def emit_sret(ctx: DisasContext) -> Label:
    """sret from S: the inline return where it is plain (see the module doc); the caller
    emits the helper call after this, places the label, and ends with goto_ptr."""
    b = ctx.b
    ms = b.glob("mstatus")
    slow, done = b.label(), b.label()
    blocked, t = b.temp(), b.temp()
    # blocked: not allowed now, TSR set, or an interrupt may become deliverable
    b.binop(AND, blocked, b.glob("inline_traps"), Const(INLINE_SRET))
    b.binop(XOR, blocked, blocked, Const(INLINE_SRET))
    b.binop(AND, t, ms, Const(MSTATUS_TSR))
    b.binop(OR, blocked, blocked, t)
    b.binop(OR, blocked, blocked, b.glob("irq_pending"))
    b.brcond(Cond.NE, blocked, Const(0), slow)
    new_priv, sie = b.temp(), b.temp()
    b.binop(AND, new_priv, ms, Const(MSTATUS_SPP))
    b.binop(SHR, new_priv, new_priv, Const(_SPP_SHIFT))  # 1 (S) or 0 (U)
    b.binop(AND, sie, ms, Const(MSTATUS_SPIE))
    b.binop(SHR, sie, sie, Const(_SIE_TO_SPIE))
    b.binop(AND, ms, ms, Const(MASK64 & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)))
    b.binop(OR, ms, ms, sie)
    b.binop(OR, ms, ms, Const(MSTATUS_SPIE))
    b.mov(b.glob("priv"), new_priv)
    b.movi(b.glob("res_addr"), rv.NO_RESERVATION)
    b.mov(ctx.pc_reg, b.glob("sepc"))
    _store_flags(ctx, ms, new_priv)
    b.br(done)
    b.set_label(slow)
    return done


def fs_flags(ctx: DisasContext, ms: Temp) -> Temp:
    """A new temp holding the block flags' FS bits (FLAG_FS_OFF, FLAG_FS_CLEAN) of
    mstatus ``ms`` (PrivState.block_flags, V=0)."""
    b = ctx.b
    flags, t, fs = b.temp(), b.temp(), b.temp()
    b.binop(SHR, fs, ms, Const(MSTATUS_FS_SHIFT))
    b.binop(AND, fs, fs, Const(3))
    b.setcond(t, Cond.EQ, fs, Const(0))  # Off
    b.binop(SHL, flags, t, Const(_FS_OFF_SHIFT))
    b.binop(SUB, t, fs, Const(1))
    b.setcond(t, Cond.LTU, t, Const(2))  # Initial or Clean
    b.binop(SHL, t, t, Const(_FS_CLEAN_SHIFT))
    b.binop(OR, flags, flags, t)
    return flags


def _store_flags(ctx: DisasContext, ms: Temp, priv: Temp | Const) -> None:
    """The block flags of privilege ``priv`` (S or U, V=0, no pointer masking) under
    mstatus ``ms`` (PrivState.block_flags) into the ``tb_flags`` slot; an exit request
    for the python loop, which holds the flags it started with."""
    b = ctx.b
    flags, t = fs_flags(ctx, ms), b.temp()
    b.binop(OR, flags, flags, priv)
    # SUM counts in S-mode only: priv is 1 there, so priv << 3 is FLAG_SUM's mask
    b.binop(SHR, t, ms, Const(_SUM_TO_FLAG))
    b.binop(AND, t, t, Const(FLAG_SUM))
    if isinstance(priv, Const):
        if priv.value != PRV_S:
            b.movi(t, 0)
    else:
        mask = b.temp()
        b.binop(SHL, mask, priv, Const(FLAG_SUM.bit_length() - 1))
        b.binop(AND, t, t, mask)
    b.binop(OR, flags, flags, t)
    # cbo.zero refused in the new mode: the bit _update_inline_traps keeps for it
    if isinstance(priv, Const):
        b.binop(SHR, t, b.glob("inline_traps"), Const(INLINE_CBO_OFF_SHIFT + priv.value))
    else:
        shift = b.temp()
        b.binop(ADD, shift, priv, Const(INLINE_CBO_OFF_SHIFT))
        b.binop(SHR, t, b.glob("inline_traps"), shift)
    b.binop(AND, t, t, Const(1))
    b.binop(SHL, t, t, Const(FLAG_CBO_ZERO_OFF.bit_length() - 1))
    b.binop(OR, flags, flags, t)
    b.mov(b.glob("tb_flags"), flags)
    # only ever store 1 into exit_request (another thread may set it at any time)
    no_exit = b.label()
    python_loop = b.temp()
    b.setcond(python_loop, Cond.EQ, b.glob("native_flags"), Const(0))
    b.brcond(Cond.EQ, python_loop, Const(0), no_exit)
    b.movi(b.glob("exit_request"), 1)
    b.set_label(no_exit)


__all__ = ["can_inline", "emit_ecall_u", "emit_sret", "fs_flags"]
