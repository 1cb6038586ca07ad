"""Advanced SIMD: the decode table of every vector form, and the three-same integer
operations (logical, arithmetic, compares, halving, shifts by register, the saturating
ones, multiply-accumulate), modified immediates, DUP/INS/UMOV and EXT.  The other
groups are in insn_simd_misc/wide/perm/ldst/fp/scalar/elem.py.

Bitwise ops are IR on the two 64-bit halves; lane arithmetic is one pure helper per
(op, lane size, lane count) from vector_ops.py.  A 64-bit (Q=0) result zeroes the
upper half, as every write of a V register does.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import CALL_PURE, Const, Helper
from pemu.accel.tcg.opcodes import AND, ANDC, OR, ORC, XOR
from pemu.target.aarch64.context import MASK64, DisasContext
from pemu.target.aarch64.simd_common import (
    call2,
    dup,
    full_width,
    get_element,
    halves,
    is_scalar,
    lane_count,
    read_v,
    set_element,
    vec_op,
    vec_op_saturating,
    write_v,
)
from pemu.target.aarch64.vector_ops import (
    BINARY,
    binary_helper,
    lanes,
    pack,
    saturating,
)

SIMD_DECODE = r"""
# -- Advanced SIMD ----------------------------------------------------------------------
{
  SIMD_3SAME_FP 0 q:1 u:1 01110 a:1 sz:1 1 rm:5 11 fop:3 1 rn:5 rd:5
  SIMD_3SAME    0 q:1 u:1 01110 size:2 1 rm:5 opcode:5 1 rn:5 rd:5
}
SIMD_3DIFF   0 q:1 u:1 01110 size:2 1 rm:5 opcode:4 00 rn:5 rd:5
{
  SIMD_MISC_FP 0 q:1 u:1 01110 a:1 sz:1 10000 opcode:5 10 rn:5 rd:5
  SIMD_MISC    0 q:1 u:1 01110 size:2 10000 opcode:5 10 rn:5 rd:5
}
SIMD_PERM    0 q:1 001110 size:2 0 rm:5 0 opcode:3 10 rn:5 rd:5
SIMD_TBL     0 q:1 001110 000 rm:5 0 len:2 op:1 00 rn:5 rd:5
SIMD_LDST_SINGLE 0 q:1 0011 01 p:1 l:1 r:1 rm:5 opcode:3 s:1 size:2 rn:5 rt:5
SIMD_ACROSS  0 q:1 u:1 01110 size:2 11000 opcode:5 10 rn:5 rd:5
SIMD_EXT     0 q:1 101110 00 0 rm:5 0 imm4:4 0 rn:5 rd:5
SIMD_COPY    0 q:1 op:1 01110000 imm5:5 0 imm4:4 1 rn:5 rd:5
{
  SIMD_MODIMM  0 q:1 op:1 0111100000 abc:3 cmode:4 o2:1 1 defgh:5 rd:5
  SIMD_SHIFT   0 q:1 u:1 011110 immh:4 immb:3 opcode:5 1 rn:5 rd:5
}
SIMD_LDST_MULTI 0 q:1 0011 00 p:1 l:1 0 rm:5 opcode:4 size:2 rn:5 rt:5
"""


_THREE_SAME = {(0, 16): "add", (1, 16): "sub", (1, 17): "cmeq", (0, 17): "cmtst",
               (1, 6): "cmhi", (1, 7): "cmhs", (0, 6): "cmgt", (0, 7): "cmge",
               (1, 12): "umax", (1, 13): "umin", (1, 20): "umaxp", (1, 21): "uminp",
               (0, 23): "addp", (0, 12): "smax", (0, 13): "smin", (0, 20): "smaxp",
               (0, 21): "sminp", (0, 14): "sabd", (1, 14): "uabd", (0, 19): "mul",
               (1, 19): "pmul", (0, 0): "shadd", (1, 0): "uhadd", (0, 2): "srhadd",
               (1, 2): "urhadd", (0, 4): "shsub", (1, 4): "uhsub", (0, 8): "sshl",
               (1, 8): "ushl", (0, 10): "srshl", (1, 10): "urshl"}
_THREE_SAME_SAT = {(0, 1): "sqadd", (1, 1): "uqadd", (0, 5): "sqsub", (1, 5): "uqsub",
                   (0, 9): "sqshl", (1, 9): "uqshl", (0, 11): "sqrshl", (1, 11): "uqrshl",
                   (0, 22): "sqdmulh", (1, 22): "sqrdmulh"}
# accumulating: Vd + or - a BINARY op of Vn, Vm
_THREE_SAME_ACC = {(0, 15): ("sabd", 1), (1, 15): ("uabd", 1), (0, 18): ("mul", 1),
                   (1, 18): ("mul", -1)}
_WITH_64BIT_LANES = {"add", "sub", "cmeq", "cmtst", "cmhi", "cmhs", "cmgt", "cmge", "addp",
                     "sshl", "ushl", "srshl", "urshl", "sqadd", "uqadd", "sqsub", "uqsub",
                     "sqshl", "uqshl", "sqrshl", "uqrshl"}
# the scalar forms (on D registers, but the saturating ones)
_SCALAR = {"add", "sub", "cmeq", "cmtst", "cmhi", "cmhs", "cmgt", "cmge", "sshl", "ushl",
           "srshl", "urshl"}
_LOGIC = {0: AND, 1: ANDC, 2: OR, 3: ORC}


def trans_SIMD_3SAME(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    if a.opcode >= 24:  # the floating-point half: SIMD_3SAME_FP
        return False
    (nlo, nhi), (mlo, mhi) = read_v(ctx, a.rn), halves(ctx, a.rm)
    if a.opcode == 3:  # logical: size selects the op
        if is_scalar(a):
            return False
        lo, hi = ctx.temp(), ctx.temp()
        if a.u == 0:
            b.binop(_LOGIC[a.size], lo, nlo, mlo)
            b.binop(_LOGIC[a.size], hi, nhi, mhi)
        elif a.size == 0:
            b.binop(XOR, lo, nlo, mlo)
            b.binop(XOR, hi, nhi, mhi)
        else:  # BSL, BIT, BIF: a bitwise select with Vd, Vm or ~Vm as the mask
            dlo, dhi = read_v(ctx, a.rd)
            for out, n, m, d in ((lo, nlo, mlo, dlo), (hi, nhi, mhi, dhi)):
                mask, yes, no = {1: (d, n, m), 2: (m, n, d), 3: (m, d, n)}[a.size]
                t = ctx.temp()
                b.binop(AND, out, yes, mask)
                b.binop(ANDC, t, no, mask)
                b.binop(OR, out, out, t)
        write_v(ctx, a.rd, lo, hi, a.q)
        return None
    key = (a.u, a.opcode)
    name = _THREE_SAME.get(key) or _THREE_SAME_SAT.get(key)
    acc = _THREE_SAME_ACC.get(key)
    if acc:
        name = acc[0]
    if name is None or (a.size == 3 and (not full_width(a) or name not in _WITH_64BIT_LANES)):
        return False
    if is_scalar(a) and not (key in _THREE_SAME_SAT or (a.size == 3 and name in _SCALAR)):
        return False
    if (name == "pmul" and a.size) or (name in ("sqdmulh", "sqrdmulh") and a.size in (0, 3)):
        return False
    esize = 8 << a.size
    n = lane_count(a, esize)
    if key in _THREE_SAME_SAT:
        op = saturating(name)
        lo, hi = vec_op_saturating(ctx, f"a64_{name}_{n}x{esize}",
                                   lambda x, y: op(x, y, esize, n), [a.rn, a.rm])
    elif acc:
        op, sign = BINARY[name], acc[1]

        def accumulate(d: int, x: int, y: int) -> int:
            products = lanes(op(x, y, esize, n), esize, n)
            return pack([p + sign * q for p, q in zip(lanes(d, esize, n), products,
                                                      strict=True)], esize)
        lo, hi = vec_op(ctx, f"a64_{name}acc{'add' if sign > 0 else 'sub'}_{n}x{esize}", accumulate,
                        [a.rd, a.rn, a.rm])
    else:
        lo, hi = call2(ctx, binary_helper(name, esize, n), [nlo, nhi, mlo, mhi])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _replicate(value: int, esize: int) -> int:
    out = 0
    for i in range(0, 64, esize):
        out |= value << i
    return out


def trans_SIMD_MODIMM(ctx: DisasContext, a) -> bool | None:
    """MOVI/MVNI/ORR/BIC (vector, immediate), integer forms: AdvSIMDExpandImm."""
    imm8 = a.abc << 5 | a.defgh
    cmode, op = a.cmode, a.op
    if a.o2:
        return False
    if cmode >> 1 in (0, 1, 2, 3):  # 32-bit lanes, shifted by 0/8/16/24
        value = _replicate(imm8 << (8 * (cmode >> 1)), 32)
    elif cmode >> 1 in (4, 5):  # 16-bit lanes, shifted by 0/8
        value = _replicate(imm8 << (8 * (cmode >> 1 & 1)), 16)
    elif cmode >> 1 == 6:  # 32-bit lanes, shifting ones in
        shift = 8 * ((cmode & 1) + 1)
        value = _replicate((imm8 << shift) | ((1 << shift) - 1), 32)
        return _movi(ctx, a, value, op)
    elif cmode == 14 and not op:
        value = _replicate(imm8, 8)
    elif cmode == 14 and op:  # each bit of imm8 makes a byte of ones
        value = sum(0xFF << (8 * i) for i in range(8) if imm8 >> i & 1)
        return _movi(ctx, a, value, 0)
    else:
        return False  # FMOV (vector, immediate)
    if cmode & 1 and cmode < 12:  # ORR / BIC (vector, immediate)
        b = ctx.b
        lo, hi = ctx.temp(), ctx.temp()
        opc = ANDC if op else OR
        b.binop(opc, lo, ctx.v(a.rd, 0), Const(value))
        b.binop(opc, hi, ctx.v(a.rd, 1), Const(value))
        write_v(ctx, a.rd, lo, hi, a.q)
        return None
    return _movi(ctx, a, value, op)


def _movi(ctx: DisasContext, a, value: int, invert: int) -> None:
    if invert:
        value = ~value & MASK64
    write_v(ctx, a.rd, Const(value), Const(value), a.q)


def _element(imm5: int) -> tuple[int, int] | None:
    """(esize, index) of a COPY instruction's imm5."""
    if not imm5 & 0xF:
        return None
    k = (imm5 & -imm5).bit_length() - 1
    return 8 << k, imm5 >> (k + 1)


def trans_SIMD_COPY(ctx: DisasContext, a) -> bool | None:
    elem = _element(a.imm5)
    if elem is None:
        return False
    esize, index = elem
    if a.op:  # INS (element)
        if not a.q:
            return False
        src_index = a.imm4 >> (esize.bit_length() - 4)
        set_element(ctx, a.rd, esize, index, get_element(ctx, a.rn, esize, src_index))
        return None
    if a.imm4 == 0:  # DUP (element)
        if esize == 64 and not a.q:
            return False
        dup(ctx, get_element(ctx, a.rn, esize, index), esize, a.q, a.rd)
    elif a.imm4 == 1:  # DUP (general)
        if esize == 64 and not a.q:
            return False
        dup(ctx, ctx.read(a.rn), esize, a.q, a.rd)
    elif a.imm4 == 3 and a.q:  # INS (general)
        set_element(ctx, a.rd, esize, index, ctx.read(a.rn))
    elif a.imm4 == 7 and (esize == 64) == bool(a.q):  # UMOV
        ctx.write(a.rd, get_element(ctx, a.rn, esize, index), int(esize == 64))
    else:
        return False
    return None


def trans_SIMD_EXT(ctx: DisasContext, a) -> bool | None:
    """EXT: bytes imm4.. of the pair Vm:Vn (Vn the low part)."""
    if not a.q and a.imm4 >= 8:
        return False
    width = 128 if a.q else 64
    pos = a.imm4 * 8

    def ext(lo_n: int, hi_n: int, lo_m: int, hi_m: int) -> tuple[int, int]:
        n = (lo_n | hi_n << 64) & ((1 << width) - 1)
        m = (lo_m | hi_m << 64) & ((1 << width) - 1)
        r = ((m << width | n) >> pos) & ((1 << width) - 1)
        return r & MASK64, r >> 64
    helper = _EXT_HELPERS.setdefault((width, pos), Helper(f"a64_ext{width}_{pos}", ext,
                                                          flags=CALL_PURE, n_out=2))
    nlo, nhi = read_v(ctx, a.rn)
    mlo, mhi = read_v(ctx, a.rm)
    lo, hi = call2(ctx, helper, [nlo, nhi, mlo, mhi])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


_EXT_HELPERS: dict[tuple[int, int], Helper] = {}
__all__ = [name for name in dir() if name.startswith("trans_")] + ["SIMD_DECODE"]
