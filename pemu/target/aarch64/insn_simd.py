"""The Advanced SIMD and FP subset static glibc and busybox need at startup and in
their string functions: LD1/ST1, MOVI/MVNI, DUP/INS/UMOV, FMOV to and from general
registers, the logical and compare ops, UMAXP/UMINV/ADDV, SHRN and immediate shifts.

Bitwise ops are IR on the two 64-bit halves; lane arithmetic is one pure helper per
(op, lane size, lane count) from vector_ops.py.  A 64-bit (Q=0) result zeroes the
upper half, as every write of a V register does.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import CALL_PURE, Const, Helper, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import ADD, AND, ANDC, NOT, OR, ORC, SHL, SHR, XOR
from pemu.target.aarch64.context import MASK64, DisasContext
from pemu.target.aarch64.vector_ops import binary_helper, lanes, pack, signed, unary_helper

SIMD_DECODE = r"""
# -- Advanced SIMD (a subset) ----------------------------------------------------------
SIMD_3SAME   0 q:1 u:1 01110 size:2 1 rm:5 opcode:5 1 rn:5 rd:5
SIMD_MISC    0 q:1 u:1 01110 size:2 10000 opcode:5 10 rn:5 rd:5
SIMD_ACROSS  0 q:1 u:1 01110 size:2 11000 opcode:5 10 rn:5 rd:5
SIMD_EXT     0 q:1 101110 00 0 rm:5 0 imm4:4 0 rn:5 rd:5
SIMD_COPY    0 q:1 op:1 01110000 imm5:5 0 imm4:4 1 rn:5 rd:5
{
  SIMD_MODIMM  0 q:1 op:1 0111100000 abc:3 cmode:4 o2:1 1 defgh:5 rd:5
  SIMD_SHIFT   0 q:1 u:1 011110 immh:4 immb:3 opcode:5 1 rn:5 rd:5
}
SIMD_LDST_MULTI 0 q:1 0011 00 p:1 l:1 0 rm:5 opcode:4 size:2 rn:5 rt:5
"""


def _read_v(ctx: DisasContext, r: int) -> tuple[Temp, Temp]:
    return ctx.v(r, 0), ctx.v(r, 1)


def write_v(ctx: DisasContext, r: int, lo: Operand, hi: Operand, q: int = 1) -> None:
    ctx.b.mov(ctx.v(r, 0), lo)
    if q:
        ctx.b.mov(ctx.v(r, 1), hi)
    else:
        ctx.b.movi(ctx.v(r, 1), 0)


def _call2(ctx: DisasContext, helper, ins: list[Operand]) -> tuple[Temp, Temp]:
    lo, hi = ctx.temp(), ctx.temp()
    ctx.b.call(helper, [lo, hi], ins)
    return lo, hi


_THREE_SAME = {(0, 16): "add", (1, 16): "sub", (1, 17): "cmeq", (0, 17): "cmtst",
               (1, 6): "cmhi", (1, 7): "cmhs", (0, 6): "cmgt", (0, 7): "cmge",
               (1, 12): "umax", (1, 13): "umin", (1, 20): "umaxp", (1, 21): "uminp",
               (0, 23): "addp"}
_LOGIC = {0: AND, 1: ANDC, 2: OR, 3: ORC}


def trans_SIMD_3SAME(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    (nlo, nhi), (mlo, mhi) = _read_v(ctx, a.rn), _read_v(ctx, a.rm)
    if a.opcode == 3:  # logical: size selects the op
        lo, hi = ctx.temp(), ctx.temp()
        if a.u == 0:
            b.binop(_LOGIC[a.size], lo, nlo, mlo)
            b.binop(_LOGIC[a.size], hi, nhi, mhi)
        elif a.size == 0:
            b.binop(XOR, lo, nlo, mlo)
            b.binop(XOR, hi, nhi, mhi)
        else:  # BSL, BIT, BIF: a bitwise select with Vd, Vm or ~Vm as the mask
            dlo, dhi = _read_v(ctx, a.rd)
            for out, n, m, d in ((lo, nlo, mlo, dlo), (hi, nhi, mhi, dhi)):
                mask, yes, no = {1: (d, n, m), 2: (m, n, d), 3: (m, d, n)}[a.size]
                t = ctx.temp()
                b.binop(AND, out, yes, mask)
                b.binop(ANDC, t, no, mask)
                b.binop(OR, out, out, t)
        write_v(ctx, a.rd, lo, hi, a.q)
        return None
    name = _THREE_SAME.get((a.u, a.opcode))
    if name is None or (a.size == 3 and not a.q):
        return False
    esize = 8 << a.size
    n = (128 if a.q else 64) // esize
    lo, hi = _call2(ctx, binary_helper(name, esize, n), [nlo, nhi, mlo, mhi])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


_COMPARE_ZERO = {(0, 9): "cmeq", (0, 8): "cmgt", (1, 8): "cmge"}
_COMPARE_ZERO_SWAPPED = {(1, 9): "cmge", (0, 10): "cmgt"}  # CMLE: 0 >= x, CMLT: 0 > x


def _xtn(v: int, esize: int, n: int) -> int:
    return pack(lanes(v, esize * 2, n), esize)


def _cnt(v: int, esize: int, n: int) -> int:
    return pack([x.bit_count() for x in lanes(v, 8, n)], 8)


def trans_SIMD_MISC(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    nlo, nhi = _read_v(ctx, a.rn)
    esize = 8 << a.size
    n = (128 if a.q else 64) // esize
    key = (a.u, a.opcode)
    zero = Const(0)
    if key in _COMPARE_ZERO or key in _COMPARE_ZERO_SWAPPED:
        if a.size == 3 and not a.q:
            return False
        if key in _COMPARE_ZERO:
            ins = [nlo, nhi, zero, zero]
            helper = binary_helper(_COMPARE_ZERO[key], esize, n)
        else:
            ins = [zero, zero, nlo, nhi]
            helper = binary_helper(_COMPARE_ZERO_SWAPPED[key], esize, n)
        lo, hi = _call2(ctx, helper, ins)
    elif key == (1, 5) and a.size == 0:  # NOT
        lo, hi = ctx.temp(), ctx.temp()
        b.unop(NOT, lo, nlo)
        b.unop(NOT, hi, nhi)
    elif key == (0, 5) and a.size == 0:  # CNT
        lo, hi = _call2(ctx, unary_helper("cnt", _cnt, 8, n), [nlo, nhi, zero, zero])
    elif key == (0, 18) and a.size < 3:  # XTN, XTN2
        narrow = ctx.temp()
        lo, hi = _call2(ctx, unary_helper("xtn", _xtn, esize, 64 // esize), [nlo, nhi, zero, zero])
        b.mov(narrow, lo)
        if a.q:
            b.mov(ctx.v(a.rd, 1), narrow)
        else:
            write_v(ctx, a.rd, narrow, zero, 0)
        return None
    else:
        return False
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _across(fn):
    def op(v: int, esize: int, n: int) -> int:
        return fn(lanes(v, esize, n)) & ((1 << esize) - 1)
    return op


_ACROSS = {(1, 10): ("umaxv", _across(max)), (1, 26): ("uminv", _across(min)),
           (0, 27): ("addv", _across(sum))}


def trans_SIMD_ACROSS(ctx: DisasContext, a) -> bool | None:
    entry = _ACROSS.get((a.u, a.opcode))
    if entry is None or a.size == 3 or (a.size == 2 and not a.q):
        return False
    esize = 8 << a.size
    n = (128 if a.q else 64) // esize
    nlo, nhi = _read_v(ctx, a.rn)
    lo, _ = _call2(ctx, unary_helper(entry[0], entry[1], esize, n),
                   [nlo, nhi, Const(0), Const(0)])
    write_v(ctx, a.rd, lo, Const(0), 0)
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


def trans_SIMD_SHIFT(ctx: DisasContext, a) -> bool | None:
    if a.immh == 0:
        return False  # SIMD_MODIMM's space
    esize = 8 << (a.immh.bit_length() - 1)
    immhb = a.immh << 3 | a.immb
    zero = Const(0)
    nlo, nhi = _read_v(ctx, a.rn)
    if (a.u, a.opcode) == (0, 16):  # SHRN, SHRN2: narrow 2*esize lanes
        if esize == 64:
            return False
        shift = 2 * esize - immhb

        def shrn(v: int, e: int, k: int, s: int = shift) -> int:
            return pack([x >> s for x in lanes(v, 2 * e, k)], e)
        lo, _ = _call2(ctx, unary_helper(f"shrn{shift}", shrn, esize, 64 // esize),
                       [nlo, nhi, zero, zero])
        if a.q:
            ctx.b.mov(ctx.v(a.rd, 1), lo)
        else:
            write_v(ctx, a.rd, lo, zero, 0)
        return None
    if esize == 64 and not a.q:
        return False
    n = (128 if a.q else 64) // esize
    if a.opcode == 0:  # USHR, SSHR
        shift = 2 * esize - immhb
        sign = not a.u

        def shr(v: int, e: int, k: int, s: int = shift, sg: bool = sign) -> int:
            return pack([(signed(x, e) if sg else x) >> s for x in lanes(v, e, k)], e)
        helper = unary_helper(f"{'s' if sign else 'u'}shr{shift}", shr, esize, n)
    elif (a.u, a.opcode) == (0, 10):  # SHL
        shift = immhb - esize

        def shl(v: int, e: int, k: int, s: int = shift) -> int:
            return pack([x << s for x in lanes(v, e, k)], e)
        helper = unary_helper(f"shl{shift}", shl, esize, n)
    else:
        return False
    lo, hi = _call2(ctx, helper, [nlo, nhi, zero, zero])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _element(imm5: int) -> tuple[int, int] | None:
    """(esize, index) of a COPY instruction's imm5."""
    if not imm5 & 0xF:
        return None
    k = (imm5 & -imm5).bit_length() - 1
    return 8 << k, imm5 >> (k + 1)


def _get_element(ctx: DisasContext, r: int, esize: int, index: int) -> Temp:
    half, pos = divmod(index * esize, 64)
    t = ctx.temp()
    ctx.b.binop(SHR, t, ctx.v(r, half), Const(pos))
    if esize < 64:
        ctx.b.binop(AND, t, t, Const((1 << esize) - 1))
    return t


def _set_element(ctx: DisasContext, r: int, esize: int, index: int, value: Operand) -> None:
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


def _dup(ctx: DisasContext, value: Operand, esize: int, q: int, rd: int) -> None:
    b = ctx.b
    t = ctx.temp()
    b.binop(AND, t, value, Const((1 << esize) - 1) if esize < 64 else Const(MASK64))
    e = esize
    while e < 64:
        s = ctx.temp()
        b.binop(SHL, s, t, Const(e))
        b.binop(OR, t, t, s)
        e *= 2
    write_v(ctx, rd, t, t, q)


def trans_SIMD_COPY(ctx: DisasContext, a) -> bool | None:
    elem = _element(a.imm5)
    if elem is None:
        return False
    esize, index = elem
    if a.op:  # INS (element)
        if not a.q:
            return False
        src_index = a.imm4 >> (esize.bit_length() - 4)
        _set_element(ctx, a.rd, esize, index, _get_element(ctx, a.rn, esize, src_index))
        return None
    if a.imm4 == 0:  # DUP (element)
        if esize == 64 and not a.q:
            return False
        _dup(ctx, _get_element(ctx, a.rn, esize, index), esize, a.q, a.rd)
    elif a.imm4 == 1:  # DUP (general)
        if esize == 64 and not a.q:
            return False
        _dup(ctx, ctx.read(a.rn), esize, a.q, a.rd)
    elif a.imm4 == 3 and a.q:  # INS (general)
        _set_element(ctx, a.rd, esize, index, ctx.read(a.rn))
    elif a.imm4 == 7 and (esize == 64) == bool(a.q):  # UMOV
        ctx.write(a.rd, _get_element(ctx, a.rn, esize, index), int(esize == 64))
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
    nlo, nhi = _read_v(ctx, a.rn)
    mlo, mhi = _read_v(ctx, a.rm)
    lo, hi = _call2(ctx, helper, [nlo, nhi, mlo, mhi])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


_EXT_HELPERS: dict[tuple[int, int], Helper] = {}
_REGS = {7: 1, 10: 2, 6: 3, 2: 4}  # LD1/ST1 opcode -> consecutive registers


def trans_SIMD_LDST_MULTI(ctx: DisasContext, a) -> bool | None:
    """LD1/ST1 (multiple structures, 1-4 registers): memory in register order."""
    nregs = _REGS.get(a.opcode)
    if nregs is None or (not a.p and a.rm):
        return False
    b = ctx.b
    regbytes = 16 if a.q else 8
    base = ctx.read(a.rn, sp=True)
    for i in range(nregs):
        r = (a.rt + i) % 32
        for half in range(2 if a.q else 1):
            off = i * regbytes + half * 8
            addr: Operand = base
            if off:
                addr = ctx.temp()
                b.binop(ADD, addr, base, Const(off))
            if a.l:
                t = ctx.temp()
                b.ld(t, addr, MemOp(8))
                b.mov(ctx.v(r, half), t)
            else:
                b.st(ctx.v(r, half), addr, MemOp(8))
        if a.l and not a.q:
            b.movi(ctx.v(r, 1), 0)
    if a.p:
        moved = ctx.temp()
        step: Operand = Const(nregs * regbytes) if a.rm == 31 else ctx.read(a.rm)
        b.binop(ADD, moved, base, step)
        ctx.write(a.rn, moved, sp=True)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")] + ["SIMD_DECODE"]
