"""Emitters for the F and D extensions.

Arithmetic, conversions, comparisons, min/max, fclass and the fused multiply-adds go
through the pure helpers of fp_helpers (which NaN-unbox/box singles); their flags are
ORed into the fflags global.  Loads, stores, sign injection and fmv are inline IR.

mstatus.FS (system mode, from the block flags): with FS Off every emitter here emits
the illegal-instruction trap instead; with FS Initial/Clean an instruction that writes
an f register, or accrues non-zero fflags, marks FS Dirty (``fp_state_written``).
Stores, fmv.x.* and fclass only read FP state and mark nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Cond, Const, Helper, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import AND, ANDC, EXT32S, EXT32U, MOV, OR, SHR, XOR
from pemu.target.riscv import fp_helpers as fp
from pemu.target.riscv.context import DisasContext, sext
from pemu.target.riscv.insn_vector import VECTOR_WIDTHS, trans_vector

BOX = Const(fp.BOX)


def _fields(insn: int) -> tuple[int, int, int, int]:
    """rd, rs1, rs2, funct3."""
    return (insn >> 7) & 31, (insn >> 15) & 31, (insn >> 20) & 31, (insn >> 12) & 7


def _address(ctx: DisasContext, insn: int, offset: int) -> Operand:
    return ctx.address((insn >> 15) & 31, offset)


# -- loads and stores -------------------------------------------------------------------

def trans_load_fp(ctx: DisasContext, insn: int) -> None:
    if (insn >> 12) & 7 in VECTOR_WIDTHS:
        trans_vector(ctx, insn)
        return
    if ctx.fp_disabled():
        return
    f3 = (insn >> 12) & 7
    if f3 not in (2, 3):
        ctx.illegal()
        return
    fd = ctx.fr[(insn >> 7) & 31]
    addr = _address(ctx, insn, sext(insn >> 20, 12))
    if f3 == 3:
        ctx.b.ld(fd, addr, MemOp(8))
    else:
        t = ctx.b.temp()
        ctx.b.ld(t, addr, MemOp(4))
        ctx.b.binop(OR, fd, t, BOX)
    ctx.fp_state_written()  # after the load: a faulting load leaves FS as it was


def trans_store_fp(ctx: DisasContext, insn: int) -> None:
    if (insn >> 12) & 7 in VECTOR_WIDTHS:
        trans_vector(ctx, insn)
        return
    if ctx.fp_disabled():
        return
    f3 = (insn >> 12) & 7
    if f3 not in (2, 3):
        ctx.illegal()
        return
    offset = sext((insn >> 25) << 5 | (insn >> 7) & 31, 12)
    addr = _address(ctx, insn, offset)
    # fsw stores the low 32 bits as they are, whatever the boxing
    ctx.b.st(ctx.fr[(insn >> 20) & 31], addr, MemOp(4 if f3 == 2 else 8))


# -- helper calls ------------------------------------------------------------------------

def _call_fp(ctx: DisasContext, helper: Helper, dest: Temp, ins: list[Operand],
             f_dest: bool = True) -> None:
    """Call ``helper``, write its result to ``dest`` and accrue its flags.  ``f_dest``:
    dest is an f register (else an x register: only the flags change FP state)."""
    flags = ctx.b.temp()
    ctx.b.call(helper, [dest, flags], ins)
    ctx.accrue(flags)
    ctx.fp_state_written(None if f_dest else flags)


def trans_fma(ctx: DisasContext, insn: int) -> None:
    if ctx.fp_disabled():
        return
    fmt = (insn >> 25) & 3
    helper = fp.FMA.get((fmt, insn & 0x7F))
    rd, rs1, rs2, rm = _fields(insn)
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        ctx.illegal()
        return
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.fr[rs1], ctx.fr[rs2], ctx.fr[insn >> 27], rm_op])


# OP-FP emitters by funct5; each gets (ctx, insn, fmt) with fmt 0 (S) or 1 (D) and
# returns False when the encoding is reserved.
OpFpEmit = Callable[[DisasContext, int, int], bool]


def _arith2(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, rm = _fields(insn)
    rm_op = ctx.rounding_mode(rm)
    if rm_op is None:
        return False
    _call_fp(ctx, fp.ARITH2[(fmt, insn >> 27)], ctx.fr[rd], [ctx.fr[rs1], ctx.fr[rs2], rm_op])
    return True


def _sqrt(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, rm = _fields(insn)
    rm_op = ctx.rounding_mode(rm) if not rs2 else None
    if rm_op is None:
        return False
    _call_fp(ctx, fp.SQRT[fmt], ctx.fr[rd], [ctx.fr[rs1], rm_op])
    return True


def _unboxed(ctx: DisasContext, reg: Temp) -> Temp:
    """IR for NaN-unboxing a single: the low 32 bits, or the canonical NaN."""
    b = ctx.b
    hi, lo, out = b.temp(), b.temp(), b.temp()
    b.binop(SHR, hi, reg, Const(32))
    b.unop(EXT32U, lo, reg)
    b.movcond(out, Cond.EQ, hi, Const(0xFFFF_FFFF), lo, Const(fp.CANONICAL_NAN_S))
    return out


def _sign_inject(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    if f3 > 2:
        return False
    b = ctx.b
    sign = fp.F32_SIGN if fmt == fp.FMT_S else fp.F64_SIGN
    if fmt == fp.FMT_S:
        a: Operand = _unboxed(ctx, ctx.fr[rs1])
        s: Operand = a if rs1 == rs2 else _unboxed(ctx, ctx.fr[rs2])
    else:
        a = s = ctx.fr[rs1]
        if rs1 != rs2:
            s = ctx.fr[rs2]
    sign_bit, result = b.temp(), b.temp()
    if f3 == 0:  # fsgnj: sign of rs2
        b.binop(AND, sign_bit, s, Const(sign))
        b.binop(AND, result, a, Const(sign - 1))
        b.binop(OR, result, result, sign_bit)
    elif f3 == 1:  # fsgnjn: inverted sign of rs2
        b.binop(ANDC, sign_bit, Const(sign), s)
        b.binop(AND, result, a, Const(sign - 1))
        b.binop(OR, result, result, sign_bit)
    else:  # fsgnjx: sign of rs1 xor sign of rs2
        b.binop(AND, sign_bit, s, Const(sign))
        b.binop(XOR, result, a, sign_bit)
    if fmt == fp.FMT_S:
        b.binop(OR, ctx.fr[rd], result, BOX)
    else:
        b.mov(ctx.fr[rd], result)
    ctx.fp_state_written()
    return True


def _minmax(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    helper = fp.MINMAX.get((fmt, f3))
    if helper is None:
        return False
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.fr[rs1], ctx.fr[rs2]])
    return True


def _fcvt_fp_fp(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, rm = _fields(insn)
    # fcvt.s.d is fmt S with rs2 = 1 (the source format); fcvt.d.s is fmt D with rs2 = 0
    helper = {(fp.FMT_S, 1): fp.D_TO_S, (fp.FMT_D, 0): fp.S_TO_D}.get((fmt, rs2))
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.fr[rs1], rm_op])
    return True


def _compare(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    helper = fp.COMPARE.get((fmt, f3))
    if helper is None:
        return False
    _call_fp(ctx, helper, ctx.dest(rd), [ctx.fr[rs1], ctx.fr[rs2]], f_dest=False)
    return True


def _fcvt_to_int(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, kind, rm = _fields(insn)
    helper = fp.TO_INT.get((fmt, kind))
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.dest(rd), [ctx.fr[rs1], rm_op], f_dest=False)
    return True


def _fcvt_from_int(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, kind, rm = _fields(insn)
    helper = fp.FROM_INT.get((fmt, kind))
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.xr[rs1], rm_op])
    return True


def _fmv_x_fclass(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    if rs2 or f3 > 1:
        return False
    if f3 == 1:
        ctx.b.call(fp.CLASSIFY[fmt], [ctx.dest(rd)], [ctx.fr[rs1]])
    elif rd:  # fmv.x.w (sign-extends the raw low 32 bits) / fmv.x.d
        ctx.b.unop(EXT32S if fmt == fp.FMT_S else MOV, ctx.xr[rd],  # type: ignore[arg-type]
                   ctx.fr[rs1])
    return True


def _fmv_f_x(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    if rs2 or f3:
        return False
    if fmt == fp.FMT_S:
        ctx.b.binop(OR, ctx.fr[rd], ctx.xr[rs1], BOX)
    else:
        ctx.b.mov(ctx.fr[rd], ctx.xr[rs1])
    ctx.fp_state_written()
    return True


OP_FP_TABLE: dict[int, OpFpEmit] = {
    0x00: _arith2, 0x01: _arith2, 0x02: _arith2, 0x03: _arith2, 0x0B: _sqrt,
    0x04: _sign_inject, 0x05: _minmax, 0x08: _fcvt_fp_fp, 0x14: _compare,
    0x18: _fcvt_to_int, 0x1A: _fcvt_from_int, 0x1C: _fmv_x_fclass, 0x1E: _fmv_f_x,
}


def trans_op_fp(ctx: DisasContext, insn: int) -> None:
    if ctx.fp_disabled():
        return
    fmt = (insn >> 25) & 3
    emit = OP_FP_TABLE.get(insn >> 27)
    if fmt > fp.FMT_D or emit is None or not emit(ctx, insn, fmt):
        ctx.illegal()
