"""A64 scalar floating point (single and double precision): moves, arithmetic,
fused multiply-add, compares, conditional select, conversions and FRINT*.

S and D values live in the low word of their V register; every write zeroes the rest
of it.  Arithmetic goes through fp_helpers.py (exact soft-float, Arm NaN rules), whose
FPSR flag bits are accrued here.  Not yet: half precision, FPCR.FZ/DN.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Cond, Const, Helper, Operand, Temp
from pemu.accel.tcg.opcodes import AND, EXT32U, OR, SHR, XOR
from pemu.target.aarch64.context import ZERO, DisasContext
from pemu.target.aarch64.fp_helpers import (
    BINARY,
    COMPARE,
    FCVT,
    FMA,
    FRINT,
    FROM_INT,
    SQRT,
    TO_INT_MODES,
    fixed_point_helper,
    to_int_helper,
)
from pemu.target.aarch64.simd_common import write_v

FP_DECODE = r"""
# -- scalar floating point ------------------------------------------------------------
FP_1SRC      000 11110 type:2 1 opcode:6 10000 rn:5 rd:5
FP_2SRC      000 11110 type:2 1 rm:5 opcode:4 10 rn:5 rd:5
FP_3SRC      000 11111 type:2 o1:1 rm:5 o0:1 ra:5 rn:5 rd:5
FP_CMP       000 11110 type:2 1 rm:5 00 1000 rn:5 opc:5
FP_CCMP      000 11110 type:2 1 rm:5 cond:4 01 rn:5 op:1 nzcv:4
FP_CSEL      000 11110 type:2 1 rm:5 cond:4 11 rn:5 rd:5
FP_IMM       000 11110 type:2 1 imm8:8 100 imm5:5 rd:5
FP_INT       sf:1 0 0 11110 type:2 1 rmode:2 opcode:3 000000 rn:5 rd:5
FP_FIXED     sf:1 0 0 11110 type:2 0 rmode:2 opcode:3 scale:6 rn:5 rd:5
"""



def _read_f(ctx: DisasContext, r: int, t: int) -> Operand:
    return ctx.v(r, 0)  # helpers mask to the format's width


def _write_f(ctx: DisasContext, r: int, value: Operand, t: int) -> None:
    if t == 0:
        narrow = ctx.temp()
        ctx.b.unop(EXT32U, narrow, value)
        value = narrow
    write_v(ctx, r, value, ZERO, 0)


def _call(ctx: DisasContext, helper: Helper, ins: list[Operand]) -> Temp:
    """A (result, FPSR bits) helper: accrue the bits, return the result."""
    r, flags = ctx.temp(), ctx.temp()
    ctx.b.call(helper, [r, flags], ins)
    fpsr = ctx.glob("fpsr")
    ctx.b.binop(OR, fpsr, fpsr, flags)
    return r


def trans_FP_1SRC(ctx: DisasContext, a) -> bool | None:
    if a.type > 1:
        return False
    b = ctx.b
    n = _read_f(ctx, a.rn, a.type)
    sign = Const(1 << (31 if a.type == 0 else 63))
    op = a.opcode
    r = ctx.temp()
    if op == 0:  # FMOV
        b.mov(r, n)
    elif op == 1:  # FABS
        b.binop(AND, r, n, Const(sign.value - 1))
    elif op == 2:  # FNEG
        b.binop(XOR, r, n, sign)
    elif op == 3:
        r = _call(ctx, SQRT[a.type], [n, ctx.glob("fpcr")])
    elif op in (4, 5) and op - 4 != a.type:  # FCVT between S and D
        r = _call(ctx, FCVT[(a.type, op - 4)], [n, ctx.glob("fpcr")])
        _write_f(ctx, a.rd, r, op - 4)
        return None
    elif (op, a.type) in FRINT_KEYS:
        r = _call(ctx, FRINT[(op, a.type)], [n, ctx.glob("fpcr")])
    else:
        return False
    _write_f(ctx, a.rd, r, a.type)
    return None


FRINT_KEYS = set(FRINT)
_2SRC = ("fmul", "fdiv", "fadd", "fsub", "fmax", "fmin", "fmaxnm", "fminnm")


def trans_FP_2SRC(ctx: DisasContext, a) -> bool | None:
    if a.type > 1 or a.opcode > 8:
        return False
    n, m = _read_f(ctx, a.rn, a.type), _read_f(ctx, a.rm, a.type)
    fpcr = ctx.glob("fpcr")
    if a.opcode == 8:  # FNMUL: the rounded product, negated
        r = _call(ctx, BINARY[("fmul", a.type)], [n, m, fpcr])
        ctx.b.binop(XOR, r, r, Const(1 << (31 if a.type == 0 else 63)))
    else:
        r = _call(ctx, BINARY[(_2SRC[a.opcode], a.type)], [n, m, fpcr])
    _write_f(ctx, a.rd, r, a.type)
    return None


def trans_FP_3SRC(ctx: DisasContext, a) -> bool | None:
    if a.type > 1:
        return False
    ins = [_read_f(ctx, r, a.type) for r in (a.rn, a.rm, a.ra)] + [ctx.glob("fpcr")]
    r = _call(ctx, FMA[(a.o1, a.o0, a.type)], ins)
    _write_f(ctx, a.rd, r, a.type)
    return None


def _set_nzcv(ctx: DisasContext, packed: Operand) -> None:
    b = ctx.b
    for name, bit in (("nf", 31), ("zf", 30), ("cf", 29), ("vf", 28)):
        b.binop(SHR, ctx.glob(name), packed, Const(bit))
        b.binop(AND, ctx.glob(name), ctx.glob(name), Const(1))


def _compare(ctx: DisasContext, t: int, rn: int, m: Operand, signalling: bool) -> None:
    r = _call(ctx, COMPARE[(int(signalling), t)], [_read_f(ctx, rn, t), m])
    _set_nzcv(ctx, r)


def trans_FP_CMP(ctx: DisasContext, a) -> bool | None:
    if a.type > 1 or a.opc & 7:
        return False
    m = ZERO if a.opc & 8 else _read_f(ctx, a.rm, a.type)
    _compare(ctx, a.type, a.rn, m, bool(a.opc & 16))
    return None


def trans_FP_CCMP(ctx: DisasContext, a) -> bool | None:
    """FCCMP/FCCMPE: the comparison's flags if the condition holds, else #nzcv."""
    if a.type > 1:
        return False
    b = ctx.b
    holds = ctx.condition(a.cond)
    other, done = b.label(), b.label()
    b.brcond(Cond.EQ, holds, ZERO, other)
    _compare(ctx, a.type, a.rn, _read_f(ctx, a.rm, a.type), bool(a.op))
    b.br(done)
    b.set_label(other)
    for name, bit in (("nf", 3), ("zf", 2), ("cf", 1), ("vf", 0)):
        b.movi(ctx.glob(name), a.nzcv >> bit & 1)
    b.set_label(done)
    return None


def trans_FP_CSEL(ctx: DisasContext, a) -> bool | None:
    if a.type > 1:
        return False
    r = ctx.temp()
    ctx.b.movcond(r, Cond.NE, ctx.condition(a.cond), ZERO, _read_f(ctx, a.rn, a.type),
                  _read_f(ctx, a.rm, a.type))
    _write_f(ctx, a.rd, r, a.type)
    return None


def fp_immediate(imm8: int, t: int) -> int:
    """VFPExpandImm: sign, 3 exponent bits (NOT(b) b b..), 4 fraction bits."""
    sign, b6, exp_lo, frac = imm8 >> 7, imm8 >> 6 & 1, imm8 >> 4 & 3, imm8 & 15
    if t == 0:
        exp = ((b6 ^ 1) << 7) | ((0x1F if b6 else 0) << 2) | exp_lo
        return sign << 31 | exp << 23 | frac << 19
    exp = ((b6 ^ 1) << 10) | ((0xFF if b6 else 0) << 2) | exp_lo
    return sign << 63 | exp << 52 | frac << 48


def trans_FP_IMM(ctx: DisasContext, a) -> bool | None:
    if a.type > 1 or a.imm5:
        return False
    _write_f(ctx, a.rd, Const(fp_immediate(a.imm8, a.type)), a.type)
    return None


def trans_FP_INT(ctx: DisasContext, a) -> bool | None:
    """FMOV (general), SCVTF/UCVTF, FCVT[NPMZA][SU] to a general register."""
    if a.opcode in (6, 7):
        return _fmov_general(ctx, a)
    if a.type > 1:
        return False
    width = 64 if a.sf else 32
    fpcr = ctx.glob("fpcr")
    if a.opcode in (2, 3) and a.rmode == 0:  # SCVTF, UCVTF
        r = _call(ctx, FROM_INT[(a.type, width, a.opcode == 2)], [ctx.read(a.rn, a.sf), fpcr])
        _write_f(ctx, a.rd, r, a.type)
        return None
    key = (a.rmode, a.opcode & 4)
    if a.opcode in (0, 1, 4, 5) and key in TO_INT_MODES:
        helper = to_int_helper(a.type, width, not a.opcode & 1, TO_INT_MODES[key])
        r = _call(ctx, helper, [_read_f(ctx, a.rn, a.type), fpcr])
        ctx.write(a.rd, r, a.sf)
        return None
    return False


def trans_FP_FIXED(ctx: DisasContext, a) -> bool | None:
    """SCVTF/UCVTF and FCVTZS/FCVTZU with a fixed-point operand of 64 - scale
    fraction bits (GCC's int / 2^n and x * 2^n conversions)."""
    fbits = 64 - a.scale
    width = 64 if a.sf else 32
    if a.type > 1 or fbits > width:
        return False
    fpcr = ctx.glob("fpcr")
    if a.rmode == 0 and a.opcode in (2, 3):
        helper = fixed_point_helper(a.type, width, a.opcode == 2, fbits, True)
        _write_f(ctx, a.rd, _call(ctx, helper, [ctx.read(a.rn, a.sf), fpcr]), a.type)
        return None
    if a.rmode == 3 and a.opcode in (0, 1):
        helper = fixed_point_helper(a.type, width, a.opcode == 0, fbits, False)
        ctx.write(a.rd, _call(ctx, helper, [_read_f(ctx, a.rn, a.type), fpcr]), a.sf)
        return None
    return False


def _fmov_general(ctx: DisasContext, a) -> bool | None:
    """FMOV between a general register and S, D or the upper half of V (V.D[1])."""
    if a.rmode == 0 and (a.sf, a.type) in ((0, 0), (1, 1)):
        half = 0
    elif a.rmode == 1 and (a.sf, a.type) == (1, 2):
        half = 1
    else:
        return False
    if a.opcode == 6:  # to general
        ctx.write(a.rd, ctx.v(a.rn, half), a.sf)
        return None
    value = ctx.read(a.rn, a.sf)
    if half:
        ctx.b.mov(ctx.v(a.rd, 1), value)
    else:
        write_v(ctx, a.rd, value, ZERO, 0)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")] + ["FP_DECODE", "fp_immediate"]
