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
from pemu.accel.tcg.opcodes import AND, ANDC, EXT16S, EXT16U, EXT32S, EXT32U, MOV, OR, SHR, XOR
from pemu.target.riscv import fp_helpers as fp
from pemu.target.riscv.context import DisasContext, sext
from pemu.target.riscv.insn_vector import VECTOR_WIDTHS, trans_vector

BOX = Const(fp.BOX)
BOX_H = Const(fp.BOX_H)
# load/store funct3 -> (access size, the NaN box of a loaded value, extension needed)
_FP_MEM = {1: (2, BOX_H, "zfhmin"), 2: (4, BOX, "f"), 3: (8, None, "d")}


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
    mem = _FP_MEM.get((insn >> 12) & 7)
    if mem is None or mem[2] not in ctx.ext:
        ctx.illegal()
        return
    size, box, _ = mem
    fd = ctx.fr[(insn >> 7) & 31]
    addr = _address(ctx, insn, sext(insn >> 20, 12))
    if box is None:
        ctx.b.ld(fd, addr, MemOp(size))
    else:
        t = ctx.b.temp()
        ctx.b.ld(t, addr, MemOp(size))
        ctx.b.binop(OR, fd, t, box)
    ctx.fp_state_written()  # after the load: a faulting load leaves FS as it was


def trans_store_fp(ctx: DisasContext, insn: int) -> None:
    if (insn >> 12) & 7 in VECTOR_WIDTHS:
        trans_vector(ctx, insn)
        return
    if ctx.fp_disabled():
        return
    mem = _FP_MEM.get((insn >> 12) & 7)
    if mem is None or mem[2] not in ctx.ext:
        ctx.illegal()
        return
    offset = sext((insn >> 25) << 5 | (insn >> 7) & 31, 12)
    addr = _address(ctx, insn, offset)
    # fsw/fsh store the low bits as they are, whatever the boxing
    ctx.b.st(ctx.fr[(insn >> 20) & 31], addr, MemOp(mem[0]))


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
    has = _has_format(ctx, fmt) and (fmt != fp.FMT_H or "zfh" in ctx.ext)
    helper = fp.FMA.get((fmt, insn & 0x7F)) if has else None
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


# NaN-boxed formats -> (value bits, zero-extension op, canonical NaN, box, sign bit)
_BOXED = {fp.FMT_S: (32, EXT32U, fp.CANONICAL_NAN_S, BOX, fp.F32_SIGN),
          fp.FMT_H: (16, EXT16U, fp.CANONICAL_NAN_H, BOX_H, fp.F16_SIGN)}


def _unboxed(ctx: DisasContext, reg: Temp, fmt: int = fp.FMT_S) -> Temp:
    """IR for NaN-unboxing a single or half: the low bits, or the canonical NaN."""
    bits, zext, nan, _, _ = _BOXED[fmt]
    b = ctx.b
    hi, lo, out = b.temp(), b.temp(), b.temp()
    b.binop(SHR, hi, reg, Const(bits))
    b.unop(zext, lo, reg)
    b.movcond(out, Cond.EQ, hi, Const((1 << (64 - bits)) - 1), lo, Const(nan))
    return out


def _sign_inject(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    if f3 > 2:
        return False
    b = ctx.b
    boxed = _BOXED.get(fmt)
    sign = boxed[4] if boxed else fp.F64_SIGN
    if boxed:
        a: Operand = _unboxed(ctx, ctx.fr[rs1], fmt)
        s: Operand = a if rs1 == rs2 else _unboxed(ctx, ctx.fr[rs2], fmt)
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
    if boxed:
        b.binop(OR, ctx.fr[rd], result, boxed[3])
    else:
        b.mov(ctx.fr[rd], result)
    ctx.fp_state_written()
    return True


def _minmax(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    helper = fp.MINMAX.get((fmt, f3)) or _zfa(ctx, fp.MINMAX_M, (fmt, f3))
    if helper is None:
        return False
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.fr[rs1], ctx.fr[rs2]])
    return True


def _fcvt_fp_fp(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, rm = _fields(insn)
    # fcvt.s.d is fmt S with rs2 = 1 (the source format); fcvt.d.s is fmt D with rs2 = 0
    helper = fp.FP_CONVERT.get((fmt, rs2)) if _has_format(ctx, rs2) else None
    helper = helper or _zfa(ctx, fp.ROUND, (fmt, rs2))
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.fr[rd], [ctx.fr[rs1], rm_op])
    return True


def _compare(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    helper = fp.COMPARE.get((fmt, f3)) or _zfa(ctx, fp.COMPARE_Q, (fmt, f3))
    if helper is None:
        return False
    _call_fp(ctx, helper, ctx.dest(rd), [ctx.fr[rs1], ctx.fr[rs2]], f_dest=False)
    return True


def _fcvt_to_int(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, kind, rm = _fields(insn)
    helper = fp.TO_INT.get((fmt, kind))
    if (fmt, kind, rm) == (fp.FMT_D, FCVTMOD_KIND, RM_RTZ) and "zfa" in ctx.ext:
        helper = fp.FCVTMOD_W_D  # fcvtmod.w.d: only with the static rm RTZ
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
        if fmt == fp.FMT_H and "zfh" not in ctx.ext:
            return False  # fclass.h is Zfh's; Zfhmin has only the moves
        ctx.b.call(fp.CLASSIFY[fmt], [ctx.dest(rd)], [ctx.fr[rs1]])
    elif rd:  # fmv.x.w/fmv.x.h (sign-extend the raw low bits) / fmv.x.d
        ctx.b.unop(_FMV_X[fmt], ctx.xr[rd], ctx.fr[rs1])  # type: ignore[arg-type]
    return True


_FMV_X = {fp.FMT_S: EXT32S, fp.FMT_D: MOV, fp.FMT_H: EXT16S}


def _fmv_f_x(ctx: DisasContext, insn: int, fmt: int) -> bool:
    rd, rs1, rs2, f3 = _fields(insn)
    if rs2 == FLI_RS2 and not f3 and "zfa" in ctx.ext:
        if fmt == fp.FMT_H and "zfh" not in ctx.ext:
            return False  # fli.h needs Zfh (Zfhmin is not enough)
        ctx.b.movi(ctx.fr[rd], fp.fli_bits(fmt, rs1))  # rs1 is the constant's index
        ctx.fp_state_written()
        return True
    if rs2 or f3:
        return False
    boxed = _BOXED.get(fmt)
    if boxed:  # the box's ones cover every bit above the value's
        ctx.b.binop(OR, ctx.fr[rd], ctx.xr[rs1], boxed[3])
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
    funct5 = insn >> 27
    emit = OP_FP_TABLE.get(funct5)
    if fmt == fp.FMT_H and "zfh" not in ctx.ext and funct5 not in _ZFHMIN_FUNCT5:
        emit = None
    if not _has_format(ctx, fmt) or emit is None or not emit(ctx, insn, fmt):
        ctx.illegal()


# Zfa's encodings inside existing OP-FP groups (rs2 / rm fields)
FLI_RS2 = 1
FCVTMOD_KIND = 8
RM_RTZ = 1


def _zfa(ctx: DisasContext, table: dict, key: tuple[int, int]) -> Helper | None:
    """A Zfa helper from ``table`` when the hart has Zfa (and Zfh for half precision)."""
    if "zfa" not in ctx.ext or (key[0] == fp.FMT_H and "zfh" not in ctx.ext):
        return None
    return table.get(key)


# What Zfhmin has of the half-precision OP-FP instructions: the conversions and moves
_ZFHMIN_FUNCT5 = frozenset({0x08, 0x1C, 0x1E})
_FORMAT_EXTENSION = {fp.FMT_S: "f", fp.FMT_D: "d", fp.FMT_H: "zfhmin"}


def _has_format(ctx: DisasContext, fmt: int) -> bool:
    """Does the hart have any instruction of format ``fmt`` (fmt 3, Q: never)?"""
    return _FORMAT_EXTENSION.get(fmt, "") in ctx.ext
