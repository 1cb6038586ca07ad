"""A64 data processing: immediate and register forms, with exact NZCV.

32-bit forms (sf=0) compute on zero-extended W values and write W results, which
zero the upper half; flags are computed at the operation's width.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Cond, Const, Operand, Temp
from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    ANDC,
    BSWAP,
    CLZ,
    DIV,
    DIVU,
    EQV,
    EXT8S,
    EXT8U,
    EXT16S,
    EXT16U,
    EXT32S,
    EXT32U,
    MUL,
    MULSH,
    MULUH,
    NEG,
    NOT,
    OR,
    ORC,
    ROTR,
    SAR,
    SHL,
    SHR,
    SUB,
    XOR,
    Opcode,
)
from pemu.target.aarch64.context import MASK64, ZERO, DisasContext, imm
from pemu.target.aarch64.helpers import CLS, CRC32, RBIT, REV16, REV32

M32 = Const(0xFFFF_FFFF)


def _ones(n: int) -> int:
    return (1 << n) - 1


def decode_bit_masks(n: int, imms: int, immr: int, immediate: bool, datasize: int
                     ) -> tuple[int, int] | None:
    """The Arm ARM's DecodeBitMasks: (wmask, tmask), or None for a reserved encoding."""
    length = ((n << 6) | (~imms & 0x3F)).bit_length() - 1
    if length < 1:
        return None
    levels = _ones(length)
    if immediate and (imms & levels) == levels:
        return None
    s, r = imms & levels, immr & levels
    esize = 1 << length
    if esize > datasize:
        return None
    d = (s - r) & (esize - 1)
    welem, telem = _ones(s + 1), _ones(d + 1)
    welem = ((welem >> r) | (welem << (esize - r))) & _ones(esize) if r else welem
    wmask = tmask = 0
    for i in range(0, datasize, esize):
        wmask |= welem << i
        tmask |= telem << i
    return wmask, tmask


# -- flag-setting arithmetic ------------------------------------------------------------

def add_sub(ctx: DisasContext, sf: int, sub: bool, setflags: bool, a: Operand, b: Operand,
            carry: Operand | None = None) -> Temp:
    """a + b, a - b, or with ``carry`` a + b + C / a + ~b + C (ADC/SBC); inputs are
    reduced to the width.  Returns the result reduced to the width."""
    bl = ctx.b
    r = bl.temp()
    if carry is not None and sub:
        nb = bl.temp()
        bl.binop(XOR, nb, b, imm(MASK64 if sf else 0xFFFF_FFFF))
        b = nb
    if carry is None:
        bl.binop(SUB if sub else ADD, r, a, b)
    else:
        bl.binop(ADD, r, a, b)
        bl.binop(ADD, r, r, carry)
    if not sf:
        wide = r
        r = bl.temp()
        bl.unop(EXT32U, r, wide)
    if not setflags:
        return r
    top = 63 if sf else 31
    cf, vf = ctx.glob("cf"), ctx.glob("vf")
    v1, v2 = bl.temp(), bl.temp()
    if sub and carry is None:
        bl.setcond(cf, Cond.GEU, a, b)
        bl.binop(XOR, v1, a, b)
        bl.binop(XOR, v2, a, r)
    else:
        if not sf:
            bl.binop(SHR, cf, wide, Const(32))
        elif carry is None:
            bl.setcond(cf, Cond.LTU, r, a)
        else:  # carry out of a + b, or of (a + b) + c
            t, c1 = bl.temp(), bl.temp()
            bl.binop(ADD, t, a, b)
            bl.setcond(c1, Cond.LTU, t, a)
            bl.setcond(cf, Cond.LTU, r, t)
            bl.binop(OR, cf, cf, c1)
        bl.binop(XOR, v1, a, r)
        bl.binop(XOR, v2, b, r)
    bl.binop(AND, v1, v1, v2)
    bl.binop(SHR, vf, v1, Const(top))
    if not sf:
        bl.binop(AND, vf, vf, Const(1))
    ctx.set_nz(r, sf)
    return r


def logic_flags(ctx: DisasContext, r: Operand, sf: int) -> None:
    ctx.set_nz(r, sf)
    ctx.b.movi(ctx.glob("cf"), 0)
    ctx.b.movi(ctx.glob("vf"), 0)


def _narrow(ctx: DisasContext, v: Operand, sf: int) -> Operand:
    if sf or isinstance(v, Const) and v.value <= 0xFFFF_FFFF:
        return v
    t = ctx.b.temp()
    ctx.b.unop(EXT32U, t, v)
    return t


def shifted(ctx: DisasContext, value: Operand, shift: int, amount: int, sf: int) -> Operand:
    """Rm shifted (LSL, LSR, ASR, ROR) by a constant, at the width; value is read at it."""
    if amount == 0:
        return value
    b = ctx.b
    t = b.temp()
    if shift == 0:
        b.binop(SHL, t, value, Const(amount))
    elif shift == 1:
        b.binop(SHR, t, value, Const(amount))
    elif shift == 2:
        if sf:
            b.binop(SAR, t, value, Const(amount))
        else:
            b.unop(EXT32S, t, value)
            b.binop(SAR, t, t, Const(amount))
    elif sf:
        b.binop(ROTR, t, value, Const(amount))
    else:  # ROR of a W value: rotate the value doubled up in 64 bits
        b.binop(SHL, t, value, Const(32))
        b.binop(OR, t, t, value)
        b.binop(ROTR, t, t, Const(amount))
    return _narrow(ctx, t, sf)


_EXTEND = (EXT8U, EXT16U, EXT32U, None, EXT8S, EXT16S, EXT32S, None)


def extended(ctx: DisasContext, rm: int, option: int, amount: int, sf: int) -> Operand:
    """ExtendReg: X[rm] extended by ``option`` then shifted left by ``amount``."""
    value = ctx.read(rm)
    b = ctx.b
    t = b.temp()
    ext = _EXTEND[option]
    if ext is not None:
        b.unop(ext, t, value)
        value = t
    if amount:
        b.binop(SHL, t, value, Const(amount))
        value = t
    return _narrow(ctx, value, sf)


# -- immediate forms --------------------------------------------------------------------

def trans_ADR(ctx: DisasContext, a) -> None:
    ctx.write(a.rd, imm(ctx.pc + a.adr_imm))


def trans_ADRP(ctx: DisasContext, a) -> None:
    ctx.write(a.rd, imm((ctx.pc & ~0xFFF) + (a.adr_imm << 12)))


def trans_ADDSUB_imm(ctx: DisasContext, a) -> None:
    operand = Const(a.imm << (12 if a.sh else 0))
    r = add_sub(ctx, a.sf, bool(a.op), bool(a.s), ctx.read(a.rn, a.sf, sp=True), operand)
    ctx.write(a.rd, r, a.sf, sp=not a.s)


_LOGIC = (AND, OR, XOR, AND)
_LOGIC_NOT = (ANDC, ORC, EQV, ANDC)


def trans_LOGIC_imm(ctx: DisasContext, a) -> bool | None:
    if not a.sf and a.n:
        return False
    masks = decode_bit_masks(a.n, a.imms, a.immr, True, 64 if a.sf else 32)
    if masks is None:
        return False
    r = ctx.temp()
    ctx.b.binop(_LOGIC[a.opc], r, ctx.read(a.rn, a.sf), Const(masks[0]))
    if a.opc == 3:
        logic_flags(ctx, r, a.sf)
    ctx.write(a.rd, r, a.sf, sp=a.opc != 3)
    return None


def trans_MOVW(ctx: DisasContext, a) -> bool | None:
    if a.opc == 1 or (not a.sf and a.hw >= 2):
        return False
    shift = a.hw * 16
    if a.opc == 0:  # MOVN
        ctx.write(a.rd, imm(~(a.imm << shift)), a.sf)
    elif a.opc == 2:  # MOVZ
        ctx.write(a.rd, Const(a.imm << shift), a.sf)
    else:  # MOVK
        r = ctx.temp()
        ctx.b.binop(AND, r, ctx.read(a.rd, a.sf), imm(~(0xFFFF << shift)))
        ctx.b.binop(OR, r, r, Const(a.imm << shift))
        ctx.write(a.rd, r, a.sf)
    return None


def trans_BITFIELD(ctx: DisasContext, a) -> bool | None:
    width = 64 if a.sf else 32
    if a.opc == 3 or a.n != a.sf or (not a.sf and (a.immr >= 32 or a.imms >= 32)):
        return False
    masks = decode_bit_masks(a.n, a.imms, a.immr, False, width)
    if masks is None:
        return False
    wmask, tmask = masks
    b = ctx.b
    src = ctx.read(a.rn, a.sf)
    rot = shifted(ctx, src, 3, a.immr, a.sf)  # ROR(src, R)
    bot = b.temp()
    b.binop(AND, bot, rot, Const(wmask))
    r = b.temp()
    if a.opc == 1:  # BFM: the destination keeps the bits outside the field
        dst = ctx.read(a.rd, a.sf)
        keep = b.temp()
        b.binop(AND, keep, dst, Const(~wmask & _ones(width)))
        b.binop(OR, bot, bot, keep)
        b.binop(AND, bot, bot, Const(tmask))
        b.binop(AND, r, dst, Const(~tmask & _ones(width)))
        b.binop(OR, r, r, bot)
    elif a.opc == 2:  # UBFM
        b.binop(AND, r, bot, Const(tmask))
    else:  # SBFM: the field's top bit (S) fills the bits above it
        top = b.temp()
        b.binop(SHR, top, src, Const(a.imms))
        b.binop(AND, top, top, Const(1))
        b.unop(NEG, top, top)
        b.binop(AND, top, top, Const(~tmask & _ones(width)))
        b.binop(AND, r, bot, Const(tmask))
        b.binop(OR, r, r, top)
    ctx.write(a.rd, r, a.sf)
    return None


def trans_EXTR(ctx: DisasContext, a) -> bool | None:
    if a.n != a.sf or (not a.sf and a.imms >= 32):
        return False
    b = ctx.b
    lsb = a.imms
    hi, lo = ctx.read(a.rn, a.sf), ctx.read(a.rm, a.sf)
    r = b.temp()
    if a.sf:
        if lsb == 0:
            b.mov(r, lo)
        else:
            t = b.temp()
            b.binop(SHR, r, lo, Const(lsb))
            b.binop(SHL, t, hi, Const(64 - lsb))
            b.binop(OR, r, r, t)
    else:
        b.binop(SHL, r, hi, Const(32))
        b.binop(OR, r, r, lo)
        b.binop(SHR, r, r, Const(lsb))
    ctx.write(a.rd, r, a.sf)
    return None


# -- register forms ---------------------------------------------------------------------

def trans_LOGIC_reg(ctx: DisasContext, a) -> bool | None:
    if not a.sf and a.imm6 >= 32:
        return False
    operand = shifted(ctx, ctx.read(a.rm, a.sf), a.shift, a.imm6, a.sf)
    r = ctx.temp()
    ctx.b.binop((_LOGIC_NOT if a.n else _LOGIC)[a.opc], r, ctx.read(a.rn, a.sf), operand)
    if a.opc == 3:
        r = _narrow(ctx, r, a.sf)  # type: ignore[assignment]
        logic_flags(ctx, r, a.sf)
    ctx.write(a.rd, r, a.sf)
    return None


def trans_ADDSUB_shift(ctx: DisasContext, a) -> bool | None:
    if a.shift == 3 or (not a.sf and a.imm6 >= 32):
        return False
    operand = shifted(ctx, ctx.read(a.rm, a.sf), a.shift, a.imm6, a.sf)
    r = add_sub(ctx, a.sf, bool(a.op), bool(a.s), ctx.read(a.rn, a.sf), operand)
    ctx.write(a.rd, r, a.sf)
    return None


def trans_ADDSUB_ext(ctx: DisasContext, a) -> bool | None:
    if a.imm3 > 4:
        return False
    operand = extended(ctx, a.rm, a.option, a.imm3, a.sf)
    r = add_sub(ctx, a.sf, bool(a.op), bool(a.s), ctx.read(a.rn, a.sf, sp=True), operand)
    ctx.write(a.rd, r, a.sf, sp=not a.s)
    return None


def trans_ADC(ctx: DisasContext, a) -> None:
    r = add_sub(ctx, a.sf, bool(a.op), bool(a.s), ctx.read(a.rn, a.sf), ctx.read(a.rm, a.sf),
                carry=ctx.glob("cf"))
    ctx.write(a.rd, r, a.sf)


def trans_CCMP(ctx: DisasContext, a) -> None:
    """CCMN/CCMP: the comparison's flags if the condition holds, else #nzcv."""
    b = ctx.b
    holds = ctx.condition(a.cond)
    other = b.label()
    done = b.label()
    b.brcond(Cond.EQ, holds, ZERO, other)
    operand = Const(a.rm) if a.i else ctx.read(a.rm, a.sf)
    add_sub(ctx, a.sf, bool(a.op), True, ctx.read(a.rn, a.sf), operand)
    b.br(done)
    b.set_label(other)
    for name, bit in (("nf", 3), ("zf", 2), ("cf", 1), ("vf", 0)):
        b.movi(ctx.glob(name), a.nzcv >> bit & 1)
    b.set_label(done)


def trans_CSEL(ctx: DisasContext, a) -> None:
    """CSEL, CSINC, CSINV, CSNEG (op:o2)."""
    b = ctx.b
    rn, rm = ctx.read(a.rn, a.sf), ctx.read(a.rm, a.sf)
    kind = a.op << 1 | a.o2
    if kind:
        t = b.temp()
        if kind == 1:
            b.binop(ADD, t, rm, Const(1))
        elif kind == 2:
            b.unop(NOT, t, rm)
        else:
            b.unop(NEG, t, rm)
        rm = t
    r = b.temp()
    b.movcond(r, Cond.NE, ctx.condition(a.cond), ZERO, rn, rm)
    ctx.write(a.rd, r, a.sf)


def trans_DP2(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    rn, rm = ctx.read(a.rn, a.sf), ctx.read(a.rm, a.sf)
    width = 64 if a.sf else 32
    r = b.temp()
    if a.opcode in (2, 3):  # UDIV, SDIV: x/0 = 0 (the IR's division gives all ones)
        if a.opcode == 2:
            b.binop(DIVU, r, rn, rm)
        elif a.sf:
            b.binop(DIV, r, rn, rm)
        else:
            sn, sm = b.temp(), b.temp()
            b.unop(EXT32S, sn, rn)
            b.unop(EXT32S, sm, rm)
            b.binop(DIV, r, sn, sm)
        b.movcond(r, Cond.EQ, rm, ZERO, ZERO, r)
    elif 8 <= a.opcode <= 11:  # LSLV LSRV ASRV RORV: the count modulo the width
        count = b.temp()
        b.binop(AND, count, rm, Const(width - 1))
        if a.opcode == 8:
            b.binop(SHL, r, rn, count)
        elif a.opcode == 9:
            b.binop(SHR, r, rn, count)
        elif a.opcode == 10:
            if a.sf:
                b.binop(SAR, r, rn, count)
            else:
                b.unop(EXT32S, r, rn)
                b.binop(SAR, r, r, count)
        elif a.sf:
            b.binop(ROTR, r, rn, count)
        else:
            b.binop(SHL, r, rn, Const(32))
            b.binop(OR, r, r, rn)
            b.binop(ROTR, r, r, count)
    elif a.opcode >> 3 == 2:  # CRC32B/H/W/X, CRC32CB/H/W/X
        c, sz = a.opcode >> 2 & 1, a.opcode & 3
        if a.sf != (sz == 3):
            return False
        b.call(CRC32[(c, sz)], [r], [rn, ctx.read(a.rm)])
        ctx.write(a.rd, r, 0)
        return None
    else:
        return False
    ctx.write(a.rd, r, a.sf)
    return None


def trans_DP1(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    rn = ctx.read(a.rn, a.sf)
    width = 64 if a.sf else 32
    r = b.temp()
    op = a.opcode
    if op == 0:
        b.call(RBIT[width], [r], [rn])
    elif op == 1:
        b.call(REV16[width], [r], [rn])
    elif op == 2 and a.sf:
        b.call(REV32, [r], [rn])
    elif op == 2 or op == 3 and a.sf:  # REV (W or X)
        b.unop(BSWAP, r, rn)
        if not a.sf:
            b.binop(SHR, r, r, Const(32))
    elif op == 4:
        if a.sf:
            b.unop(CLZ, r, rn)
        else:
            b.binop(SHL, r, rn, Const(32))
            b.binop(OR, r, r, Const(0xFFFF_FFFF))  # clz of W: never more than 32
            b.unop(CLZ, r, r)
    elif op == 5:
        b.call(CLS[width], [r], [rn])
    else:
        return False
    ctx.write(a.rd, r, a.sf)
    return None


_WIDEN: dict[int, tuple[Opcode, ...]] = {1: (EXT32S,), 5: (EXT32U,)}


def trans_DP3(ctx: DisasContext, a) -> bool | None:
    """MADD MSUB SMADDL SMSUBL UMADDL UMSUBL SMULH UMULH."""
    b = ctx.b
    op = a.op31
    r = b.temp()
    if op in (2, 6):
        if not a.sf or a.o0 or a.ra != 31:
            return False
        b.binop(MULSH if op == 2 else MULUH, r, ctx.read(a.rn), ctx.read(a.rm))
        ctx.write(a.rd, r)
        return None
    if op == 0:
        b.binop(MUL, r, ctx.read(a.rn, a.sf), ctx.read(a.rm, a.sf))
        sf = a.sf
    elif op in _WIDEN and a.sf:
        (ext,) = _WIDEN[op]
        x, y = b.temp(), b.temp()
        b.unop(ext, x, ctx.read(a.rn))
        b.unop(ext, y, ctx.read(a.rm))
        b.binop(MUL, r, x, y)
        sf = 1
    else:
        return False
    b.binop(SUB if a.o0 else ADD, r, ctx.read(a.ra, sf), r)
    ctx.write(a.rd, r, sf)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")] + ["decode_bit_masks"]
