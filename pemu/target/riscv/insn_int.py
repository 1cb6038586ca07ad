"""Emitters for RV64I, M, Zba/Zbb/Zbc/Zbs, Zbkb/Zbkc/Zbkx and Zicond: integer ALU,
loads/stores, jumps, branches.

Each emitter takes the DisasContext and the 32-bit instruction word.  Register-register
and register-immediate operations are found through dicts keyed by (funct7, funct3)
or by the immediate's fixed bits, never by walking if-chains; which entries exist
depends on the hart's extensions (``int_tables``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from pemu.accel.tcg.ir import I32, I64, Cond, Const, Helper, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    ANDC,
    BSWAP,
    CLZ,
    CTPOP,
    CTZ,
    DIV,
    DIVU,
    EQV,
    EXT8S,
    EXT8U,
    EXT16S,
    EXT16U,
    EXT32S,
    EXT32U,
    MAX,
    MAXU,
    MIN,
    MINU,
    MUL,
    MULSH,
    MULSUH,
    MULUH,
    OR,
    ORC,
    REM,
    REMU,
    ROTL,
    ROTR,
    SAR,
    SHL,
    SHR,
    SUB,
    XOR,
    Opcode,
)
from pemu.target.riscv import crypto
from pemu.target.riscv.context import DisasContext, imm, sext
from pemu.target.riscv.helpers import CLMUL, CLMULH, CLMULR, ORC_B, XPERM4, XPERM8

Emit = Callable[[DisasContext, Temp, Operand, Operand], None]


def _rd(insn: int) -> int:
    return (insn >> 7) & 31


def _rs1(insn: int) -> int:
    return (insn >> 15) & 31


def _rs2(insn: int) -> int:
    return (insn >> 20) & 31


def _f3(insn: int) -> int:
    return (insn >> 12) & 7


def _imm_i(insn: int) -> int:
    return sext(insn >> 20, 12)


def _imm_s(insn: int) -> int:
    return sext((insn >> 25) << 5 | (insn >> 7) & 31, 12)


def _imm_b(insn: int) -> int:
    return sext((insn >> 31) << 12 | ((insn >> 7) & 1) << 11 | ((insn >> 25) & 0x3F) << 5
                | ((insn >> 8) & 0xF) << 1, 13)


def _imm_j(insn: int) -> int:
    return sext((insn >> 31) << 20 | ((insn >> 12) & 0xFF) << 12 | ((insn >> 20) & 1) << 11
                | ((insn >> 21) & 0x3FF) << 1, 21)


# -- building blocks for the operation tables --------------------------------------------

def _op(opc: Opcode) -> Emit:
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        ctx.b.binop(opc, d, a, b)
    return emit


def _op_w(opc: Opcode) -> Emit:
    """A 32-bit operation whose result is sign-extended (the *w instructions)."""
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        t = ctx.b.temp(I32)
        ctx.b.binop(opc, t, a, b, I32)
        ctx.b.unop(EXT32S, d, t)
    return emit


def _setcond(cond: Cond) -> Emit:
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        ctx.b.setcond(d, cond, a, b)
    return emit


def _shadd(shift: int, uw: bool = False) -> Emit:
    """Zba shNadd[.uw]: (zext32?(a) << N) + b."""
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        t = ctx.b.temp()
        if uw:
            ctx.b.unop(EXT32U, t, a)
            a = t
        if shift:
            ctx.b.binop(SHL, t, a, Const(shift))
            a = t
        ctx.b.binop(ADD, d, a, b)
    return emit


def _single_bit(opc: Opcode) -> Emit:
    """Zbs bset/bclr/binv: a OP (1 << (b & 63)); bclr uses andc."""
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        if isinstance(b, Const):
            bit: Operand = Const(1 << (b.value & 63))
        else:
            bit = ctx.b.temp()
            ctx.b.binop(SHL, bit, Const(1), b)
        ctx.b.binop(opc, d, a, bit)
    return emit


def _bext(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    t = ctx.b.temp()
    ctx.b.binop(SHR, t, a, b)
    ctx.b.binop(AND, d, t, Const(1))


def _unary(opc: Opcode, type: int = I64) -> Emit:
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        if type == I32:
            t = ctx.b.temp(I32)
            ctx.b.unop(opc, t, a, I32)
            ctx.b.unop(EXT32S, d, t)  # clzw & co: small counts, sign-extension is a no-op
        else:
            ctx.b.unop(opc, d, a)
    return emit


def _orc_b(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    ctx.b.call(ORC_B, [d], [a])


def _slli_uw(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    t = ctx.b.temp()
    ctx.b.unop(EXT32U, t, a)
    ctx.b.binop(SHL, d, t, b)


def _add_uw(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    _shadd(0, True)(ctx, d, a, b)


def _helper(helper: Helper) -> Emit:
    """An operation the IR has no op for (clmul, xperm): a pure helper call."""
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        ctx.b.call(helper, [d], [a, b])
    return emit


def _czero(cond: Cond) -> Emit:
    """Zicond czero.eqz/czero.nez: 0 when rs2 COND 0, else rs1."""
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        ctx.b.movcond(d, cond, b, Const(0), Const(0), a)
    return emit


def _pack_halves(ctx: DisasContext, d: Temp, a: Operand, b: Operand, ext: Opcode,
                 shift: int) -> None:
    """ext(a) | b << shift: the low parts of rs1 and rs2 side by side (Zbkb pack*)."""
    low, high = ctx.b.temp(), ctx.b.temp()
    ctx.b.unop(ext, low, a)
    if ext is not EXT32U:
        ctx.b.unop(ext, high, b)  # packh/packw: rs2's high bits must not reach the result
        b = high
    ctx.b.binop(SHL, high, b, Const(shift))
    ctx.b.binop(OR, d, low, high)


def _pack(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    _pack_halves(ctx, d, a, b, EXT32U, 32)


def _packh(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    _pack_halves(ctx, d, a, b, EXT8U, 8)


def _packw(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    _pack_halves(ctx, d, a, b, EXT16U, 16)
    ctx.b.unop(EXT32S, d, d)


# brev8 reverses the bits of each byte: swap adjacent bits, then pairs, then nibbles
_BREV8_STEPS = ((1, 0x5555_5555_5555_5555), (2, 0x3333_3333_3333_3333),
                (4, 0x0F0F_0F0F_0F0F_0F0F))


def _brev8(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    for shift, mask in _BREV8_STEPS:
        high, low = ctx.b.temp(), ctx.b.temp()
        ctx.b.binop(SHR, high, a, Const(shift))
        ctx.b.binop(AND, high, high, Const(mask))
        ctx.b.binop(AND, low, a, Const(mask))
        ctx.b.binop(SHL, low, low, Const(shift))
        ctx.b.binop(OR, d, high, low)
        a = d


def _crypto(name: str, fn: Callable[[int, int], int] | None = None) -> Emit:
    """A scalar-crypto instruction: crypto.NAME as a pure helper of (rs1, rs2 or the
    immediate field)."""
    return _helper(Helper(name, fn or getattr(crypto, name), flags=0))


# -- the decode tables, per extension ----------------------------------------------------
#
# Each table is a list of (extensions, entries): the entries exist when the hart has any
# of those extensions (andn is Zbb's and Zbkb's), so a disabled extension's encodings
# are absent from the merged table and trap as illegal.  ``int_tables(isa)`` merges them
# once per extension set.

Group = tuple[tuple[str, ...], dict]


def _key(f7: int, f3: int) -> int:
    return f7 << 3 | f3


# OP and OP-32: keyed by funct7 << 3 | funct3
OP_GROUPS: list[Group] = [
    (("i",), {
        _key(0x00, 0): _op(ADD), _key(0x20, 0): _op(SUB), _key(0x00, 1): _op(SHL),
        _key(0x00, 2): _setcond(Cond.LT), _key(0x00, 3): _setcond(Cond.LTU),
        _key(0x00, 4): _op(XOR), _key(0x00, 5): _op(SHR), _key(0x20, 5): _op(SAR),
        _key(0x00, 6): _op(OR), _key(0x00, 7): _op(AND)}),
    (("m",), {
        _key(0x01, 0): _op(MUL), _key(0x01, 1): _op(MULSH), _key(0x01, 2): _op(MULSUH),
        _key(0x01, 3): _op(MULUH), _key(0x01, 4): _op(DIV), _key(0x01, 5): _op(DIVU),
        _key(0x01, 6): _op(REM), _key(0x01, 7): _op(REMU)}),
    (("zba",), {_key(0x10, 2): _shadd(1), _key(0x10, 4): _shadd(2), _key(0x10, 6): _shadd(3)}),
    (("zbb", "zbkb"), {
        _key(0x20, 7): _op(ANDC), _key(0x20, 6): _op(ORC), _key(0x20, 4): _op(EQV),
        _key(0x30, 1): _op(ROTL), _key(0x30, 5): _op(ROTR)}),
    (("zbb",), {
        _key(0x05, 4): _op(MIN), _key(0x05, 5): _op(MINU), _key(0x05, 6): _op(MAX),
        _key(0x05, 7): _op(MAXU)}),
    (("zbs",), {
        _key(0x24, 1): _single_bit(ANDC), _key(0x14, 1): _single_bit(OR),
        _key(0x34, 1): _single_bit(XOR), _key(0x24, 5): _bext}),
    (("zbc", "zbkc"), {_key(0x05, 1): _helper(CLMUL), _key(0x05, 3): _helper(CLMULH)}),
    (("zbc",), {_key(0x05, 2): _helper(CLMULR)}),
    (("zbkb",), {_key(0x04, 4): _pack, _key(0x04, 7): _packh}),
    (("zbkx",), {_key(0x14, 2): _helper(XPERM4), _key(0x14, 4): _helper(XPERM8)}),
    (("zicond",), {_key(0x07, 5): _czero(Cond.EQ), _key(0x07, 7): _czero(Cond.NE)}),
    (("zkne",), {_key(0x19, 0): _crypto("aes64es"), _key(0x1B, 0): _crypto("aes64esm")}),
    (("zknd",), {_key(0x1D, 0): _crypto("aes64ds"), _key(0x1F, 0): _crypto("aes64dsm")}),
    (("zkne", "zknd"), {_key(0x3F, 0): _crypto("aes64ks2")}),
    # sm4ed/sm4ks: funct7 is bs << 5 | 11000 / 11010 (bs picks the byte of rs2)
    (("zksed",), {_key(bs << 5 | f5, 0): _crypto(f"{name}{bs}", getattr(crypto, name)(bs))
                  for bs in range(4) for f5, name in ((0x18, "sm4ed"), (0x1A, "sm4ks"))}),
]
OP32_GROUPS: list[Group] = [
    (("i",), {
        _key(0x00, 0): _op_w(ADD), _key(0x20, 0): _op_w(SUB), _key(0x00, 1): _op_w(SHL),
        _key(0x00, 5): _op_w(SHR), _key(0x20, 5): _op_w(SAR)}),
    (("m",), {
        _key(0x01, 0): _op_w(MUL), _key(0x01, 4): _op_w(DIV), _key(0x01, 5): _op_w(DIVU),
        _key(0x01, 6): _op_w(REM), _key(0x01, 7): _op_w(REMU)}),
    (("zba",), {
        _key(0x04, 0): _add_uw, _key(0x10, 2): _shadd(1, True), _key(0x10, 4): _shadd(2, True),
        _key(0x10, 6): _shadd(3, True)}),
    (("zbb", "zbkb"), {_key(0x30, 1): _op_w(ROTL), _key(0x30, 5): _op_w(ROTR)}),
    # packw with rs2 = x0 is zext.h, so Zbkb's entry serves both
    (("zbkb",), {_key(0x04, 4): _packw}),
]
# OP-32 encodings that exist only with rs2 = 0 (Zbb zext.h: packw's rs2 = x0 case)
OP32_RS2_ZERO_GROUPS: list[Group] = [(("zbb",), {_key(0x04, 4): _unary(EXT16U)})]

# OP-IMM funct3 1 and 5: shifts and Zbb/Zbs by funct6 (insn >> 26), shamt in bits 25:20
OPIMM_SHIFT6_GROUPS: list[Group] = [
    (("i",), {(1, 0x00): _op(SHL), (5, 0x00): _op(SHR), (5, 0x10): _op(SAR)}),
    (("zbb", "zbkb"), {(5, 0x18): _op(ROTR)}),
    (("zbs",), {(1, 0x0A): _single_bit(OR), (1, 0x12): _single_bit(ANDC),
                (1, 0x1A): _single_bit(XOR), (5, 0x12): _bext}),
]
# OP-IMM funct3 1 and 5 with the whole 12-bit immediate fixed (unary ops)
OPIMM_UNARY_GROUPS: list[Group] = [
    (("zbb",), {(1, 0x600): _unary(CLZ), (1, 0x601): _unary(CTZ), (1, 0x602): _unary(CTPOP),
                (1, 0x604): _unary(EXT8S), (1, 0x605): _unary(EXT16S), (5, 0x287): _orc_b}),
    (("zbb", "zbkb"), {(5, 0x6B8): _unary(BSWAP)}),
    (("zbkb",), {(5, 0x687): _brev8}),
    (("zknd",), {(1, 0x300): _crypto("aes64im")}),
    # aes64ks1i: the immediate's low 4 bits are rnum, 0..10 (the rest are reserved)
    (("zkne", "zknd"), {(1, 0x310 | rnum): _crypto("aes64ks1i") for rnum in range(11)}),
    (("zknh",), {(1, 0x100 | i): _crypto(name) for i, name in enumerate((
        "sha256sum0", "sha256sum1", "sha256sig0", "sha256sig1", "sha512sum0", "sha512sum1",
        "sha512sig0", "sha512sig1"))}),
    (("zksh",), {(1, 0x108): _crypto("sm3p0"), (1, 0x109): _crypto("sm3p1")}),
]
OPIMM32_SHIFT_GROUPS: list[Group] = [  # (funct3, funct7)
    (("i",), {(1, 0x00): _op_w(SHL), (5, 0x00): _op_w(SHR), (5, 0x20): _op_w(SAR)}),
    (("zbb", "zbkb"), {(5, 0x30): _op_w(ROTR)}),
]
OPIMM32_SHIFT6_GROUPS: list[Group] = [(("zba",), {(1, 0x02): _slli_uw})]  # (funct3, funct6)
OPIMM32_UNARY_GROUPS: list[Group] = [
    (("zbb",), {(1, 0x600): _unary(CLZ, I32), (1, 0x601): _unary(CTZ, I32),
                (1, 0x602): _unary(CTPOP, I32)}),
]


def _merge(groups: list[Group], extensions: frozenset[str]) -> dict:
    table: dict = {}
    for needs, entries in groups:
        if extensions.intersection(needs):
            table.update(entries)
    return table


class IntTables:
    """The integer decode tables of one extension set (see ``int_tables``)."""

    __slots__ = ("op", "op32", "op32_rs2_zero", "opimm_shift6", "opimm_unary",
                 "opimm32_shift", "opimm32_shift6", "opimm32_unary")

    def __init__(self, extensions: frozenset[str]) -> None:
        self.op: dict[int, Emit] = _merge(OP_GROUPS, extensions)
        self.op32: dict[int, Emit] = _merge(OP32_GROUPS, extensions)
        self.op32_rs2_zero: dict[int, Emit] = _merge(OP32_RS2_ZERO_GROUPS, extensions)
        self.opimm_shift6: dict[tuple[int, int], Emit] = _merge(OPIMM_SHIFT6_GROUPS, extensions)
        self.opimm_unary: dict[tuple[int, int], Emit] = _merge(OPIMM_UNARY_GROUPS, extensions)
        self.opimm32_shift: dict[tuple[int, int], Emit] = _merge(OPIMM32_SHIFT_GROUPS,
                                                                 extensions)
        self.opimm32_shift6: dict[tuple[int, int], Emit] = _merge(OPIMM32_SHIFT6_GROUPS,
                                                                  extensions)
        self.opimm32_unary: dict[tuple[int, int], Emit] = _merge(OPIMM32_UNARY_GROUPS,
                                                                 extensions)


@functools.cache
def int_tables(extensions: frozenset[str]) -> IntTables:
    """The tables for a hart with ``extensions`` (built once per distinct set)."""
    return IntTables(extensions)


def _emit_rd(ctx: DisasContext, insn: int, emit: Emit, b: Operand) -> None:
    rd = _rd(insn)
    if rd:  # writes to x0 are dropped, the operation has no other effect
        emit(ctx, ctx.xr[rd], ctx.xr[_rs1(insn)], b)  # type: ignore[arg-type]


def trans_op(ctx: DisasContext, insn: int) -> None:
    emit = ctx.int_tables.op.get(_key(insn >> 25, _f3(insn)))
    if emit is None:
        ctx.illegal()
        return
    _emit_rd(ctx, insn, emit, ctx.xr[_rs2(insn)])


def trans_op32(ctx: DisasContext, insn: int) -> None:
    tables = ctx.int_tables
    key = _key(insn >> 25, _f3(insn))
    emit = tables.op32.get(key)
    if emit is None and not _rs2(insn):
        emit = tables.op32_rs2_zero.get(key)
    if emit is None:
        ctx.illegal()
        return
    _emit_rd(ctx, insn, emit, ctx.xr[_rs2(insn)])


# -- OP-IMM and OP-IMM-32 ----------------------------------------------------------------

# funct3 -> emitter taking the sign-extended 12-bit immediate
OPIMM_SIMPLE: dict[int, Emit] = {
    0: _op(ADD), 2: _setcond(Cond.LT), 3: _setcond(Cond.LTU), 4: _op(XOR),
    6: _op(OR), 7: _op(AND),
}
_ADDIW = _op_w(ADD)


def trans_op_imm(ctx: DisasContext, insn: int) -> None:
    f3 = _f3(insn)
    emit = OPIMM_SIMPLE.get(f3)
    if emit is not None:
        operand: Operand = imm(_imm_i(insn))
    else:
        tables = ctx.int_tables
        operand = Const((insn >> 20) & 63)
        emit = (tables.opimm_shift6.get((f3, insn >> 26))
                or tables.opimm_unary.get((f3, insn >> 20)))
        if emit is None:
            ctx.illegal()
            return
    _emit_rd(ctx, insn, emit, operand)


def trans_op_imm32(ctx: DisasContext, insn: int) -> None:
    f3 = _f3(insn)
    if f3 == 0:
        emit: Emit | None = _ADDIW
        operand: Operand = imm(_imm_i(insn))
    else:
        tables = ctx.int_tables
        operand = Const((insn >> 20) & 63)
        emit = (tables.opimm32_shift.get((f3, insn >> 25))
                or tables.opimm32_unary.get((f3, insn >> 20))
                or tables.opimm32_shift6.get((f3, insn >> 26)))
    if emit is None:
        ctx.illegal()
        return
    _emit_rd(ctx, insn, emit, operand)


def trans_lui(ctx: DisasContext, insn: int) -> None:
    rd = _rd(insn)
    if rd:
        ctx.b.mov(ctx.xr[rd], imm(sext(insn & 0xFFFFF000, 32)))  # type: ignore[arg-type]


def trans_auipc(ctx: DisasContext, insn: int) -> None:
    rd = _rd(insn)
    if rd:
        ctx.b.mov(ctx.xr[rd], imm(ctx.pc + sext(insn & 0xFFFFF000, 32)))  # type: ignore[arg-type]


# -- loads and stores ---------------------------------------------------------------------

LOAD_MEMOPS = {0: MemOp(1, True), 1: MemOp(2, True), 2: MemOp(4, True), 3: MemOp(8),
               4: MemOp(1), 5: MemOp(2), 6: MemOp(4)}
STORE_MEMOPS = {0: MemOp(1), 1: MemOp(2), 2: MemOp(4), 3: MemOp(8)}


def trans_load(ctx: DisasContext, insn: int) -> None:
    memop = LOAD_MEMOPS.get(_f3(insn))
    if memop is None:
        ctx.illegal()
        return
    addr = ctx.address(_rs1(insn), _imm_i(insn))
    ctx.b.ld(ctx.dest(_rd(insn)), addr, memop)  # a load into x0 still faults


def trans_store(ctx: DisasContext, insn: int) -> None:
    memop = STORE_MEMOPS.get(_f3(insn))
    if memop is None:
        ctx.illegal()
        return
    addr = ctx.address(_rs1(insn), _imm_s(insn))
    ctx.b.st(ctx.xr[_rs2(insn)], addr, memop)


# -- control transfer ---------------------------------------------------------------------

BRANCH_CONDS = {0: Cond.EQ, 1: Cond.NE, 4: Cond.LT, 5: Cond.GE, 6: Cond.LTU, 7: Cond.GEU}


def trans_branch(ctx: DisasContext, insn: int) -> None:
    cond = BRANCH_CONDS.get(_f3(insn))
    if cond is None:
        ctx.illegal()
        return
    taken = ctx.new_label()
    ctx.b.brcond(cond, ctx.xr[_rs1(insn)], ctx.xr[_rs2(insn)], taken)
    ctx.b.goto_pc(ctx.next_pc)
    ctx.b.set_label(taken)
    ctx.goto(ctx.pc + _imm_b(insn))


def trans_jal(ctx: DisasContext, insn: int) -> None:
    rd = _rd(insn)
    if rd:
        ctx.b.mov(ctx.xr[rd], imm(ctx.next_pc))  # type: ignore[arg-type]
    ctx.goto(ctx.pc + _imm_j(insn))


def trans_jalr(ctx: DisasContext, insn: int) -> None:
    if _f3(insn):
        ctx.illegal()
        return
    rs1, rd, offset = _rs1(insn), _rd(insn), _imm_i(insn)
    if not rs1:
        if rd:
            ctx.b.mov(ctx.xr[rd], imm(ctx.next_pc))  # type: ignore[arg-type]
        ctx.goto(offset & ~1)
        return
    target = ctx.b.temp()
    ctx.b.binop(ADD, target, ctx.xr[rs1], imm(offset))
    ctx.b.binop(AND, target, target, imm(~1))
    if rd:
        ctx.b.mov(ctx.xr[rd], imm(ctx.next_pc))  # type: ignore[arg-type]
    ctx.b.mov(ctx.pc_reg, target)
    ctx.b.goto_ptr()
    ctx.end = True
