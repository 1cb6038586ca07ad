"""What every Advanced SIMD handler shares: V registers as two 64-bit halves, writes
that zero the upper half of a 64-bit (Q=0) result, and calls of the pure lane helpers
of vector_ops.py (the IR has no vector ops)."""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Const, Helper, Operand, Temp
from pemu.accel.tcg.opcodes import AND, ANDC, OR, SHL, SHR
from pemu.target.aarch64.context import MASK64, DisasContext
from pemu.target.aarch64.vector_ops import flag_helper, full_helper
from pemu.target.decode import Args


def read_v(ctx: DisasContext, r: int) -> tuple[Temp, Temp]:
    return ctx.v(r, 0), ctx.v(r, 1)


# An operand of the lane helpers: a V register, or the two halves of a computed value
# (the by-element forms pass their element replicated in place of Vm).
Source = int | tuple[Operand, Operand]


def halves(ctx: DisasContext, src: Source) -> tuple[Operand, Operand]:
    return read_v(ctx, src) if isinstance(src, int) else src


def write_v(ctx: DisasContext, r: int, lo: Operand, hi: Operand, q: int = 1) -> None:
    ctx.b.mov(ctx.v(r, 0), lo)
    if q:
        ctx.b.mov(ctx.v(r, 1), hi)
    else:
        ctx.b.movi(ctx.v(r, 1), 0)


def write_narrow(ctx: DisasContext, r: int, value: Operand, q: int) -> None:
    """A 64-bit narrowed result: the lower half (upper zeroed), or with Q (the "2"
    forms: XTN2, SHRN2, ADDHN2...) the upper half, the lower one kept."""
    if q:
        ctx.b.mov(ctx.v(r, 1), value)
    else:
        write_v(ctx, r, value, Const(0), 0)


def call2(ctx: DisasContext, helper: Helper, ins: list[Operand]) -> tuple[Temp, Temp]:
    lo, hi = ctx.temp(), ctx.temp()
    ctx.b.call(helper, [lo, hi], ins)
    return lo, hi


def vec_op(ctx: DisasContext, name: str, fn: Callable[..., int], regs: list[Source]
           ) -> tuple[Temp, Temp]:
    """(low, high) of fn over the 128-bit values of ``regs`` (one pure helper,
    vector_ops.full_helper; ``name`` names every parameter fn closes over)."""
    ins: list[Operand] = [half for r in regs for half in halves(ctx, r)]
    return call2(ctx, full_helper(name, fn, len(regs)), ins)


def vec_op_saturating(ctx: DisasContext, name: str, fn: Callable[..., tuple[int, bool]],
                      regs: list[Source]) -> tuple[Temp, Temp]:
    """vec_op for fn returning (value, saturated): FPSR.QC accrues the second (a
    second pure helper computes it: helpers have at most two results)."""
    ins: list[Operand] = [half for r in regs for half in halves(ctx, r)]
    lo, hi = call2(ctx, full_helper(name, lambda *v: fn(*v)[0], len(regs)), ins)
    qc = ctx.temp()
    ctx.b.call(flag_helper(f"{name}_qc", fn, len(regs)), [qc], ins)
    fpsr = ctx.glob("fpsr")
    ctx.b.binop(OR, fpsr, fpsr, qc)
    return lo, hi


def arrangement(q: int, esize: int) -> int:
    """The number of esize-bit lanes of a 64-bit (Q=0) or 128-bit vector."""
    return (128 if q else 64) // esize


def lane_count(a, esize: int) -> int:
    """The lanes an instruction works on: one for the scalar forms (insn_simd_scalar
    passes its fields with ``scalar`` set and Q = 0), else by Q."""
    return 1 if getattr(a, "scalar", False) else arrangement(a.q, esize)


def full_width(a) -> bool:
    """64-bit lanes need a 128-bit vector (Q = 1), or the scalar form."""
    return bool(a.q or getattr(a, "scalar", False))


def scalar_view(a) -> Args:
    """A scalar instruction's fields as the vector handlers read them: Q = 0 and
    ``scalar`` set (one lane, the rest of the register zeroed)."""
    return Args({**a.fields(), "q": 0, "scalar": 1})


def is_scalar(a) -> bool:
    return bool(getattr(a, "scalar", False))


def get_element(ctx: DisasContext, r: int, esize: int, index: int) -> Temp:
    half, pos = divmod(index * esize, 64)
    t = ctx.temp()
    ctx.b.binop(SHR, t, ctx.v(r, half), Const(pos))
    if esize < 64:
        ctx.b.binop(AND, t, t, Const((1 << esize) - 1))
    return t


def set_element(ctx: DisasContext, r: int, esize: int, index: int, value: Operand) -> None:
    half, pos = divmod(index * esize, 64)
    b = ctx.b
    reg = ctx.v(r, half)
    mask = ((1 << esize) - 1) << pos
    t = ctx.temp()
    if esize < 64:
        b.binop(AND, t, value, Const((1 << esize) - 1))
        b.binop(SHL, t, t, Const(pos))
        b.binop(ANDC, reg, reg, Const(mask))
        b.binop(OR, reg, reg, t)
    else:
        b.mov(reg, value)


def replicate(ctx: DisasContext, value: Operand, esize: int) -> Temp:
    """64 bits of copies of value's low esize bits."""
    b = ctx.b
    t = ctx.temp()
    b.binop(AND, t, value, Const((1 << esize) - 1) if esize < 64 else Const(MASK64))
    e = esize
    while e < 64:
        s = ctx.temp()
        b.binop(SHL, s, t, Const(e))
        b.binop(OR, t, t, s)
        e *= 2
    return t


def dup(ctx: DisasContext, value: Operand, esize: int, q: int, rd: int) -> None:
    t = replicate(ctx, value, esize)
    write_v(ctx, rd, t, t, q)
