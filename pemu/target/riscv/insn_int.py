"""Handlers for RV64I, M, Zba/Zbb/Zbc/Zbs, Zbkb/Zbkc/Zbkx, Zk* and Zicond: integer ALU,
loads/stores, jumps, branches.

The decode table (riscv_decode.py) picks the pattern and extracts its fields; the
handler of pattern NAME is ``HANDLERS[NAME]`` (``trans_NAME``), called with the
DisasContext and the fields (``a.rd``, ``a.rs1``, ``a.imm``...).  The ALU operations
are one emitter each, found by mnemonic in the dicts below, with the extensions that
have them: a handler whose extensions the hart lacks returns False, so the word is an
illegal instruction.
"""

from __future__ import annotations

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
from pemu.target.decode import Args
from pemu.target.riscv import crypto
from pemu.target.riscv.context import DisasContext, imm
from pemu.target.riscv.helpers import CLMUL, CLMULH, CLMULR, XPERM4, XPERM8

Emit = Callable[[DisasContext, Temp, Operand, Operand], None]


# -- building blocks for the operation tables --------------------------------------------

def _op(opc: Opcode) -> Emit:
    def emit(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
        ctx.b.binop(opc, d, a, b)
    emit.opc = opc  # type: ignore[attr-defined]  # (_reg_reg, _reg_imm: emitted inline)
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


_LOW7 = Const(0x7F7F_7F7F_7F7F_7F7F)
_HIGH1 = Const(0x8080_8080_8080_8080)


def _orc_b(ctx: DisasContext, d: Temp, a: Operand, b: Operand) -> None:
    """Zbb orc.b (each byte -> 0xFF if nonzero, else 0) without a helper call: the
    kernel's strlen/strcmp run it once per 8 bytes.  (a & 0x7F..) + 0x7F.. sets a
    byte's top bit iff its low 7 bits are nonzero, with no carry into the next byte;
    or-ing a adds the byte's own top bit.  Then each 0x80 becomes 0x80 | 0x7F."""
    top, low = ctx.b.temp(), ctx.b.temp()
    ctx.b.binop(AND, top, a, _LOW7)
    ctx.b.binop(ADD, top, top, _LOW7)
    ctx.b.binop(OR, top, top, a)
    ctx.b.binop(AND, top, top, _HIGH1)  # 0x80 in each nonzero byte
    ctx.b.binop(SHR, low, top, Const(7))
    ctx.b.binop(SUB, low, top, low)  # 0x7F in each nonzero byte: no borrow across
    ctx.b.binop(OR, d, top, low)


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


# -- the operations, by mnemonic ---------------------------------------------------------
#
# mnemonic -> (the extensions any of which has it, or None for the base ISA; emitter)

Needs = tuple[str, ...] | None
Entry = tuple[Needs, Emit]
Handler = Callable[[DisasContext, Args], "bool | None"]

_ZBB_ZBKB = ("zbb", "zbkb")
_ZBC_ZBKC = ("zbc", "zbkc")
_ZKN_ED = ("zkne", "zknd")

# OP: rd = rs1 OP rs2
OP: dict[str, Entry] = {
    "ADD": (None, _op(ADD)), "SUB": (None, _op(SUB)), "SLL": (None, _op(SHL)),
    "SLT": (None, _setcond(Cond.LT)), "SLTU": (None, _setcond(Cond.LTU)),
    "XOR": (None, _op(XOR)), "SRL": (None, _op(SHR)), "SRA": (None, _op(SAR)),
    "OR": (None, _op(OR)), "AND": (None, _op(AND)),
    "MUL": (None, _op(MUL)), "MULH": (None, _op(MULSH)), "MULHSU": (None, _op(MULSUH)),
    "MULHU": (None, _op(MULUH)), "DIV": (None, _op(DIV)), "DIVU": (None, _op(DIVU)),
    "REM": (None, _op(REM)), "REMU": (None, _op(REMU)),
    "SH1ADD": (("zba",), _shadd(1)), "SH2ADD": (("zba",), _shadd(2)),
    "SH3ADD": (("zba",), _shadd(3)),
    "ANDN": (_ZBB_ZBKB, _op(ANDC)), "ORN": (_ZBB_ZBKB, _op(ORC)),
    "XNOR": (_ZBB_ZBKB, _op(EQV)), "ROL": (_ZBB_ZBKB, _op(ROTL)),
    "ROR": (_ZBB_ZBKB, _op(ROTR)),
    "MIN": (("zbb",), _op(MIN)), "MINU": (("zbb",), _op(MINU)), "MAX": (("zbb",), _op(MAX)),
    "MAXU": (("zbb",), _op(MAXU)),
    "BCLR": (("zbs",), _single_bit(ANDC)), "BSET": (("zbs",), _single_bit(OR)),
    "BINV": (("zbs",), _single_bit(XOR)), "BEXT": (("zbs",), _bext),
    "CLMUL": (_ZBC_ZBKC, _helper(CLMUL)), "CLMULH": (_ZBC_ZBKC, _helper(CLMULH)),
    "CLMULR": (("zbc",), _helper(CLMULR)),
    "PACK": (("zbkb",), _pack), "PACKH": (("zbkb",), _packh),
    "XPERM4": (("zbkx",), _helper(XPERM4)), "XPERM8": (("zbkx",), _helper(XPERM8)),
    "CZERO_EQZ": (("zicond",), _czero(Cond.EQ)), "CZERO_NEZ": (("zicond",), _czero(Cond.NE)),
    "AES64ES": (("zkne",), _crypto("aes64es")), "AES64ESM": (("zkne",), _crypto("aes64esm")),
    "AES64DS": (("zknd",), _crypto("aes64ds")), "AES64DSM": (("zknd",), _crypto("aes64dsm")),
    "AES64KS2": (_ZKN_ED, _crypto("aes64ks2")),
    # OP-32: the 32-bit operations, results sign-extended (and Zba's .uw forms)
    "ADDW": (None, _op_w(ADD)), "SUBW": (None, _op_w(SUB)), "SLLW": (None, _op_w(SHL)),
    "SRLW": (None, _op_w(SHR)), "SRAW": (None, _op_w(SAR)),
    "MULW": (None, _op_w(MUL)), "DIVW": (None, _op_w(DIV)), "DIVUW": (None, _op_w(DIVU)),
    "REMW": (None, _op_w(REM)), "REMUW": (None, _op_w(REMU)),
    "ADD_UW": (("zba",), _add_uw), "SH1ADD_UW": (("zba",), _shadd(1, True)),
    "SH2ADD_UW": (("zba",), _shadd(2, True)), "SH3ADD_UW": (("zba",), _shadd(3, True)),
    "ROLW": (_ZBB_ZBKB, _op_w(ROTL)), "RORW": (_ZBB_ZBKB, _op_w(ROTR)),
    "PACKW": (("zbkb",), _packw),
}
# sm4ed/sm4ks: bs (the byte of rs2) picks the helper
_SM4: dict[str, tuple[Emit, ...]] = {
    name: tuple(_crypto(f"{name.lower()}{bs}", getattr(crypto, name.lower())(bs))
                for bs in range(4)) for name in ("SM4ED", "SM4KS")}

# OP-IMM and OP-IMM-32 with a 12-bit immediate: rd = rs1 OP imm
OP_IMM: dict[str, Emit] = {
    "ADDI": _op(ADD), "SLTI": _setcond(Cond.LT), "SLTIU": _setcond(Cond.LTU),
    "XORI": _op(XOR), "ORI": _op(OR), "ANDI": _op(AND), "ADDIW": _op_w(ADD),
}
# the shifts by an immediate (field shamt)
SHIFT_IMM: dict[str, Entry] = {
    "SLLI": (None, _op(SHL)), "SRLI": (None, _op(SHR)), "SRAI": (None, _op(SAR)),
    "SLLIW": (None, _op_w(SHL)), "SRLIW": (None, _op_w(SHR)), "SRAIW": (None, _op_w(SAR)),
    "RORI": (_ZBB_ZBKB, _op(ROTR)), "RORIW": (_ZBB_ZBKB, _op_w(ROTR)),
    "BSETI": (("zbs",), _single_bit(OR)), "BCLRI": (("zbs",), _single_bit(ANDC)),
    "BINVI": (("zbs",), _single_bit(XOR)), "BEXTI": (("zbs",), _bext),
    "SLLI_UW": (("zba",), _slli_uw),
}
# one source register, no other operand
UNARY: dict[str, Entry] = {
    "CLZ": (("zbb",), _unary(CLZ)), "CTZ": (("zbb",), _unary(CTZ)),
    "CPOP": (("zbb",), _unary(CTPOP)), "SEXT_B": (("zbb",), _unary(EXT8S)),
    "SEXT_H": (("zbb",), _unary(EXT16S)), "ORC_B": (("zbb",), _orc_b),
    "CLZW": (("zbb",), _unary(CLZ, I32)), "CTZW": (("zbb",), _unary(CTZ, I32)),
    "CPOPW": (("zbb",), _unary(CTPOP, I32)),
    "ZEXT_H": (("zbb",), _unary(EXT16U)),  # packw's rs2 = x0 case, without Zbkb
    "REV8": (_ZBB_ZBKB, _unary(BSWAP)), "BREV8": (("zbkb",), _brev8),
    "AES64IM": (("zknd",), _crypto("aes64im")),
    "SHA256SUM0": (("zknh",), _crypto("sha256sum0")),
    "SHA256SUM1": (("zknh",), _crypto("sha256sum1")),
    "SHA256SIG0": (("zknh",), _crypto("sha256sig0")),
    "SHA256SIG1": (("zknh",), _crypto("sha256sig1")),
    "SHA512SUM0": (("zknh",), _crypto("sha512sum0")),
    "SHA512SUM1": (("zknh",), _crypto("sha512sum1")),
    "SHA512SIG0": (("zknh",), _crypto("sha512sig0")),
    "SHA512SIG1": (("zknh",), _crypto("sha512sig1")),
    "SM3P0": (("zksh",), _crypto("sm3p0")), "SM3P1": (("zksh",), _crypto("sm3p1")),
}
_AES64KS1I = _crypto("aes64ks1i")
AES64KS1I_MAX_RNUM = 10  # rnum 0xB..0xF are reserved


def _emit_rd(ctx: DisasContext, rd: int, rs1: int, emit: Emit, b: Operand) -> None:
    if rd:  # writes to x0 are dropped, the operation has no other effect
        emit(ctx, ctx.xr[rd], ctx.xr[rs1], b)  # type: ignore[arg-type]


def _gated(needs: Needs, trans: Handler) -> Handler:
    """``trans`` for a hart with any of the extensions ``needs`` (None: any hart); for
    others the pattern is an illegal instruction."""
    if needs is None:
        return trans  # (the base ISA: no check on the hot path)

    def gated(ctx: DisasContext, a: Args) -> bool | None:
        if ctx.ext.isdisjoint(needs):
            return False
        return trans(ctx, a)
    return gated


# The commonest instructions (add and addi: a quarter of a boot's) are one IR op: their
# handlers emit it themselves, not through _emit_rd and the emitter (two calls fewer).

def _reg_reg(needs: Needs, emit: Emit) -> Handler:
    opc = getattr(emit, "opc", None)
    if opc is not None:
        def trans(ctx: DisasContext, a: Args) -> None:
            xr = ctx.xr
            b = xr[a.rs2]  # (first, even for x0: the order the globals are made in)
            if a.rd:
                ctx.b.binop(opc, xr[a.rd], xr[a.rs1], b)  # type: ignore[arg-type]
    else:
        def trans(ctx: DisasContext, a: Args) -> None:
            _emit_rd(ctx, a.rd, a.rs1, emit, ctx.xr[a.rs2])
    return _gated(needs, trans)


def _reg_imm(emit: Emit) -> Handler:
    opc = getattr(emit, "opc", None)
    if opc is not None:
        def trans(ctx: DisasContext, a: Args) -> None:
            rd = a.rd
            if rd:
                xr = ctx.xr
                ctx.b.binop(opc, xr[rd], xr[a.rs1], imm(a.imm))  # type: ignore[arg-type]
    else:
        def trans(ctx: DisasContext, a: Args) -> None:
            _emit_rd(ctx, a.rd, a.rs1, emit, imm(a.imm))
    return trans


def _shift_imm(needs: Needs, emit: Emit) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> None:
        _emit_rd(ctx, a.rd, a.rs1, emit, Const(a.shamt))
    return _gated(needs, trans)


def _unary_op(needs: Needs, emit: Emit) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> None:
        _emit_rd(ctx, a.rd, a.rs1, emit, Const(0))
    return _gated(needs, trans)


def _sm4(emits: tuple[Emit, ...]) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if "zksed" not in ctx.ext:
            return False
        _emit_rd(ctx, a.rd, a.rs1, emits[a.bs], ctx.xr[a.rs2])
        return None
    return trans


def trans_AES64KS1I(ctx: DisasContext, a: Args) -> bool | None:
    if ctx.ext.isdisjoint(_ZKN_ED) or a.rnum > AES64KS1I_MAX_RNUM:
        return False
    _emit_rd(ctx, a.rd, a.rs1, _AES64KS1I, Const(a.rnum))
    return None


def trans_LUI(ctx: DisasContext, a: Args) -> None:
    if a.rd:
        ctx.b.mov(ctx.xr[a.rd], imm(a.imm))  # type: ignore[arg-type]


def trans_AUIPC(ctx: DisasContext, a: Args) -> None:
    if a.rd:
        ctx.b.pc_rel(ctx.xr[a.rd], ctx.pc + a.imm)  # type: ignore[arg-type]


# -- loads and stores ---------------------------------------------------------------------

LOADS = {"LB": MemOp(1, True), "LH": MemOp(2, True), "LW": MemOp(4, True), "LD": MemOp(8),
         "LBU": MemOp(1), "LHU": MemOp(2), "LWU": MemOp(4)}
STORES = {"SB": MemOp(1), "SH": MemOp(2), "SW": MemOp(4), "SD": MemOp(8)}


def _load(memop: MemOp) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> None:
        addr = ctx.address(a.rs1, a.imm)
        ctx.b.ld(ctx.dest(a.rd), addr, memop)  # a load into x0 still faults
    return trans


def _store(memop: MemOp) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> None:
        addr = ctx.address(a.rs1, a.imm)
        ctx.b.st(ctx.xr[a.rs2], addr, memop)
    return trans


# -- control transfer ---------------------------------------------------------------------

BRANCHES = {"BEQ": Cond.EQ, "BNE": Cond.NE, "BLT": Cond.LT, "BGE": Cond.GE, "BLTU": Cond.LTU,
            "BGEU": Cond.GEU}


def _branch(cond: Cond) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> None:
        taken = ctx.new_label()
        ctx.b.brcond(cond, ctx.xr[a.rs1], ctx.xr[a.rs2], taken)
        ctx.b.goto_pc(ctx.next_pc)
        ctx.b.set_label(taken)
        ctx.goto(ctx.pc + a.imm)
    return trans


def trans_JAL(ctx: DisasContext, a: Args) -> None:
    if a.rd:
        ctx.b.pc_rel(ctx.xr[a.rd], ctx.next_pc)  # type: ignore[arg-type]
    ctx.goto(ctx.pc + a.imm)


def trans_JALR(ctx: DisasContext, a: Args) -> None:
    rs1, rd, offset = a.rs1, a.rd, a.imm
    if not rs1:  # an absolute target: through the pc global, as every goto_pc
        # target is relative to the block (position-independent blocks move them)
        if rd:
            ctx.b.pc_rel(ctx.xr[rd], ctx.next_pc)  # type: ignore[arg-type]
        ctx.b.mov(ctx.pc_reg, imm(offset & ~1))
        ctx.b.goto_ptr()
        ctx.end = True
        return
    target = ctx.b.temp()
    ctx.b.binop(ADD, target, ctx.xr[rs1], imm(offset))
    ctx.b.binop(AND, target, target, imm(~1))
    if rd:
        ctx.b.pc_rel(ctx.xr[rd], ctx.next_pc)  # type: ignore[arg-type]
    ctx.b.mov(ctx.pc_reg, target)
    ctx.b.goto_ptr()
    ctx.end = True


HANDLERS: dict[str, Handler] = {
    **{name: _reg_reg(needs, emit) for name, (needs, emit) in OP.items()},
    **{name: _sm4(emits) for name, emits in _SM4.items()},
    **{name: _reg_imm(emit) for name, emit in OP_IMM.items()},
    **{name: _shift_imm(needs, emit) for name, (needs, emit) in SHIFT_IMM.items()},
    **{name: _unary_op(needs, emit) for name, (needs, emit) in UNARY.items()},
    **{name: _load(memop) for name, memop in LOADS.items()},
    **{name: _store(memop) for name, memop in STORES.items()},
    **{name: _branch(cond) for name, cond in BRANCHES.items()},
    "AES64KS1I": trans_AES64KS1I, "LUI": trans_LUI, "AUIPC": trans_AUIPC,
    "JAL": trans_JAL, "JALR": trans_JALR,
}


# -- Zcb: compressed forms of the instructions above, in space C leaves reserved ----------

def _zcb(*names: str) -> Handler:
    """A Zcb instruction: the 32-bit instruction it stands for (its fields come from the
    RVC table), with Zcb; several names: tried in order, as the 32-bit table's overlap
    group does (c.zext.h is packw rd, rd, x0 with Zbkb, zext.h with Zbb alone)."""
    handlers = [HANDLERS[name] for name in names]

    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if "zcb" not in ctx.ext:
            return False
        for handler in handlers:
            if handler(ctx, a) is not False:
                return None
        return False
    return trans


HANDLERS.update({
    "C_LBU": _zcb("LBU"), "C_LHU": _zcb("LHU"), "C_LH": _zcb("LH"), "C_SB": _zcb("SB"),
    "C_SH": _zcb("SH"), "C_MUL": _zcb("MUL"), "C_ZEXT_B": _zcb("ANDI"),
    "C_SEXT_B": _zcb("SEXT_B"), "C_ZEXT_H": _zcb("PACKW", "ZEXT_H"),
    "C_SEXT_H": _zcb("SEXT_H"), "C_ZEXT_W": _zcb("ADD_UW"), "C_NOT": _zcb("XORI"),
})
