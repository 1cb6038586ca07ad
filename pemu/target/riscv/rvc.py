"""RV64C: expand a 16-bit compressed instruction into its 32-bit equivalent.

Every RVC instruction is defined as a shorthand for one base instruction, so the
translator expands and then translates the 32-bit form (keeping the 16-bit bits for
the illegal-instruction trap value).  Reserved encodings expand to 0, which is not a
valid 32-bit instruction (its low bits are not 11).  Expansions are memoised: there
are only 2**16 possible inputs and real code reuses few of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

ILLEGAL = 0


def _field(insn: int, hi: int, lo: int) -> int:
    return (insn >> lo) & ((1 << (hi - lo + 1)) - 1)


def _sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


# -- 32-bit encoders ------------------------------------------------------------------

def _r(opc: int, rd: int, f3: int, rs1: int, rs2: int, f7: int) -> int:
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc


def _i(opc: int, rd: int, f3: int, rs1: int, imm: int) -> int:
    return (imm & 0xFFF) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc


def _s(opc: int, f3: int, rs1: int, rs2: int, imm: int) -> int:
    return ((imm >> 5) & 0x7F) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1F) << 7 | opc


def _b(f3: int, rs1: int, rs2: int, imm: int) -> int:
    return (((imm >> 12) & 1) << 31 | ((imm >> 5) & 0x3F) << 25 | rs2 << 20 | rs1 << 15
            | f3 << 12 | ((imm >> 1) & 0xF) << 8 | ((imm >> 11) & 1) << 7 | 0x63)


def _j(rd: int, imm: int) -> int:
    return (((imm >> 20) & 1) << 31 | ((imm >> 1) & 0x3FF) << 21 | ((imm >> 11) & 1) << 20
            | ((imm >> 12) & 0xFF) << 12 | rd << 7 | 0x6F)


# -- common fields ----------------------------------------------------------------------

def _rd_p(insn: int) -> int:  # rd'/rs2' in bits 4:2
    return 8 + _field(insn, 4, 2)


def _rs1_p(insn: int) -> int:  # rs1'/rd' in bits 9:7
    return 8 + _field(insn, 9, 7)


def _rd(insn: int) -> int:
    return _field(insn, 11, 7)


def _rs2(insn: int) -> int:
    return _field(insn, 6, 2)


def _imm6(insn: int) -> int:
    return _sext(_field(insn, 12, 12) << 5 | _field(insn, 6, 2), 6)


def _shamt(insn: int) -> int:
    return _field(insn, 12, 12) << 5 | _field(insn, 6, 2)


def _uimm_d(insn: int) -> int:  # c.ld/c.sd/c.fld/c.fsd offset
    return _field(insn, 12, 10) << 3 | _field(insn, 6, 5) << 6


def _uimm_w(insn: int) -> int:  # c.lw/c.sw offset
    return _field(insn, 12, 10) << 3 | _field(insn, 6, 6) << 2 | _field(insn, 5, 5) << 6


def _uimm_dsp_load(insn: int) -> int:  # c.ldsp/c.fldsp
    return _field(insn, 12, 12) << 5 | _field(insn, 6, 5) << 3 | _field(insn, 4, 2) << 6


def _uimm_dsp_store(insn: int) -> int:  # c.sdsp/c.fsdsp
    return _field(insn, 12, 10) << 3 | _field(insn, 9, 7) << 6


# -- quadrant 0 -----------------------------------------------------------------------

def _c_addi4spn(insn: int) -> int:
    imm = (_field(insn, 12, 11) << 4 | _field(insn, 10, 7) << 6 | _field(insn, 6, 6) << 2
           | _field(insn, 5, 5) << 3)
    return _i(0x13, _rd_p(insn), 0, 2, imm) if imm else ILLEGAL


def _c_fld(insn: int) -> int:
    return _i(0x07, _rd_p(insn), 3, _rs1_p(insn), _uimm_d(insn))


def _c_lw(insn: int) -> int:
    return _i(0x03, _rd_p(insn), 2, _rs1_p(insn), _uimm_w(insn))


def _c_ld(insn: int) -> int:
    return _i(0x03, _rd_p(insn), 3, _rs1_p(insn), _uimm_d(insn))


def _c_fsd(insn: int) -> int:
    return _s(0x27, 3, _rs1_p(insn), _rd_p(insn), _uimm_d(insn))


def _c_sw(insn: int) -> int:
    return _s(0x23, 2, _rs1_p(insn), _rd_p(insn), _uimm_w(insn))


def _c_sd(insn: int) -> int:
    return _s(0x23, 3, _rs1_p(insn), _rd_p(insn), _uimm_d(insn))


# -- quadrant 1 -----------------------------------------------------------------------

def _c_addi(insn: int) -> int:
    rd = _rd(insn)
    return _i(0x13, rd, 0, rd, _imm6(insn))


def _c_addiw(insn: int) -> int:
    rd = _rd(insn)
    return _i(0x1B, rd, 0, rd, _imm6(insn)) if rd else ILLEGAL


def _c_li(insn: int) -> int:
    return _i(0x13, _rd(insn), 0, 0, _imm6(insn))


def _c_lui_addi16sp(insn: int) -> int:
    rd = _rd(insn)
    if rd == 2:
        imm = _sext(_field(insn, 12, 12) << 9 | _field(insn, 6, 6) << 4 | _field(insn, 5, 5) << 6
                    | _field(insn, 4, 3) << 7 | _field(insn, 2, 2) << 5, 10)
        return _i(0x13, 2, 0, 2, imm) if imm else ILLEGAL
    imm = _sext(_field(insn, 12, 12) << 17 | _field(insn, 6, 2) << 12, 18)
    return (imm & 0xFFFFF000) | rd << 7 | 0x37 if imm else ILLEGAL


# c.sub, c.xor, c.or, c.and (bit 12 = 0) and c.subw, c.addw (bit 12 = 1) by bits 6:5
_ALU_RR = {
    (0, 0): (0x33, 0, 0x20), (0, 1): (0x33, 4, 0), (0, 2): (0x33, 6, 0), (0, 3): (0x33, 7, 0),
    (1, 0): (0x3B, 0, 0x20), (1, 1): (0x3B, 0, 0),
}


def _c_misc_alu(insn: int) -> int:
    rd = _rs1_p(insn)
    kind = _field(insn, 11, 10)
    if kind == 0:
        return _i(0x13, rd, 5, rd, _shamt(insn))  # c.srli
    if kind == 1:
        return _i(0x13, rd, 5, rd, 0x400 | _shamt(insn))  # c.srai
    if kind == 2:
        return _i(0x13, rd, 7, rd, _imm6(insn))  # c.andi
    enc = _ALU_RR.get((_field(insn, 12, 12), _field(insn, 6, 5)))
    if enc is None:
        return ILLEGAL
    opc, f3, f7 = enc
    return _r(opc, rd, f3, rd, _rd_p(insn), f7)


def _c_j(insn: int) -> int:
    off = _sext(_field(insn, 12, 12) << 11 | _field(insn, 11, 11) << 4 | _field(insn, 10, 9) << 8
                | _field(insn, 8, 8) << 10 | _field(insn, 7, 7) << 6 | _field(insn, 6, 6) << 7
                | _field(insn, 5, 3) << 1 | _field(insn, 2, 2) << 5, 12)
    return _j(0, off)


def _branch_offset(insn: int) -> int:
    return _sext(_field(insn, 12, 12) << 8 | _field(insn, 11, 10) << 3 | _field(insn, 6, 5) << 6
                 | _field(insn, 4, 3) << 1 | _field(insn, 2, 2) << 5, 9)


def _c_beqz(insn: int) -> int:
    return _b(0, _rs1_p(insn), 0, _branch_offset(insn))


def _c_bnez(insn: int) -> int:
    return _b(1, _rs1_p(insn), 0, _branch_offset(insn))


# -- quadrant 2 -----------------------------------------------------------------------

def _c_slli(insn: int) -> int:
    rd = _rd(insn)
    return _i(0x13, rd, 1, rd, _shamt(insn))


def _c_fldsp(insn: int) -> int:
    return _i(0x07, _rd(insn), 3, 2, _uimm_dsp_load(insn))


def _c_lwsp(insn: int) -> int:
    rd = _rd(insn)
    imm = _field(insn, 12, 12) << 5 | _field(insn, 6, 4) << 2 | _field(insn, 3, 2) << 6
    return _i(0x03, rd, 2, 2, imm) if rd else ILLEGAL


def _c_ldsp(insn: int) -> int:
    rd = _rd(insn)
    return _i(0x03, rd, 3, 2, _uimm_dsp_load(insn)) if rd else ILLEGAL


def _c_jr_mv_add(insn: int) -> int:
    rs1, rs2 = _rd(insn), _rs2(insn)
    if not _field(insn, 12, 12):
        if rs2:
            return _r(0x33, rs1, 0, 0, rs2, 0)  # c.mv
        return _i(0x67, 0, 0, rs1, 0) if rs1 else ILLEGAL  # c.jr
    if rs2:
        return _r(0x33, rs1, 0, rs1, rs2, 0)  # c.add
    if rs1:
        return _i(0x67, 1, 0, rs1, 0)  # c.jalr
    return 0x0010_0073  # c.ebreak


def _c_fsdsp(insn: int) -> int:
    return _s(0x27, 3, 2, _rs2(insn), _uimm_dsp_store(insn))


def _c_swsp(insn: int) -> int:
    imm = _field(insn, 12, 9) << 2 | _field(insn, 8, 7) << 6
    return _s(0x23, 2, 2, _rs2(insn), imm)


def _c_sdsp(insn: int) -> int:
    return _s(0x23, 3, 2, _rs2(insn), _uimm_dsp_store(insn))


def _reserved(insn: int) -> int:
    return ILLEGAL


# (quadrant << 3 | funct3) -> expander
_EXPANDERS: list[Callable[[int], int]] = [
    _c_addi4spn, _c_fld, _c_lw, _c_ld, _reserved, _c_fsd, _c_sw, _c_sd,
    _c_addi, _c_addiw, _c_li, _c_lui_addi16sp, _c_misc_alu, _c_j, _c_beqz, _c_bnez,
    _c_slli, _c_fldsp, _c_lwsp, _c_ldsp, _c_jr_mv_add, _c_fsdsp, _c_swsp, _c_sdsp,
]

_cache: dict[int, int] = {}


def expand(insn: int) -> int:
    """The 32-bit instruction a 16-bit one stands for, or ILLEGAL (0)."""
    word = _cache.get(insn)
    if word is None:
        quadrant = insn & 3
        word = ILLEGAL if quadrant == 3 or insn == 0 else \
            _EXPANDERS[quadrant << 3 | insn >> 13](insn)
        _cache[insn] = word
    return word


# -- Zcb and Zcmop: encodings in space that plain C reserves --------------------------------

NOP = 0x0000_0013  # addi x0, x0, 0
# c.mop.N: c.lui with rd in x1, x3, ..., x15 and a zero immediate
C_MOP_MASK, C_MOP_MATCH = 0xF8FF, 0x6081

# Zcb's quadrant-1 unary ops (bits 4:2 of 100111 rd' 11 op 01) as 32-bit encodings of
# rd: c.zext.b, c.sext.b, c.zext.h, c.sext.h, c.zext.w, c.not (the Zbb/Zba ones decode
# only when the hart has Zbb/Zba, as Zcb requires)
_ZCB_UNARY: dict[int, Callable[[int], int]] = {
    0: lambda rd: _i(0x13, rd, 7, rd, 0xFF),  # andi rd, rd, 255
    1: lambda rd: _i(0x13, rd, 1, rd, 0x604),  # sext.b
    2: lambda rd: _r(0x3B, rd, 4, rd, 0, 0x04),  # zext.h
    3: lambda rd: _i(0x13, rd, 1, rd, 0x605),  # sext.h
    4: lambda rd: _r(0x3B, rd, 0, rd, 0, 0x04),  # add.uw rd, rd, x0
    5: lambda rd: _i(0x13, rd, 4, rd, 0xFFF),  # xori rd, rd, -1
}


def _expand_zcb(insn: int) -> int:
    quadrant, funct6 = insn & 3, insn >> 10
    rs1, rd = _rs1_p(insn), _rd_p(insn)
    if quadrant == 0:
        uimm1 = _field(insn, 5, 5) << 1
        if funct6 == 0b100000:  # c.lbu
            return _i(0x03, rd, 4, rs1, uimm1 | _field(insn, 6, 6))
        if funct6 == 0b100001:  # c.lhu / c.lh
            return _i(0x03, rd, 1 if _field(insn, 6, 6) else 5, rs1, uimm1)
        if funct6 == 0b100010:  # c.sb
            return _s(0x23, 0, rs1, rd, uimm1 | _field(insn, 6, 6))
        if funct6 == 0b100011 and not _field(insn, 6, 6):  # c.sh
            return _s(0x23, 1, rs1, rd, uimm1)
        return ILLEGAL
    if quadrant == 1 and funct6 == 0b100111:
        kind = _field(insn, 6, 5)
        if kind == 2:  # c.mul
            return _r(0x33, rs1, 0, rs1, rd, 0x01)
        if kind == 3 and _field(insn, 4, 2) in _ZCB_UNARY:
            return _ZCB_UNARY[_field(insn, 4, 2)](rs1)
    return ILLEGAL


@functools.cache
def expander(extensions: frozenset[str]) -> Callable[[int], int]:
    """``expand`` for a hart with ``extensions``: with Zcb and Zcmop, the encodings they
    take from C's reserved space expand too."""
    zcb, zcmop = "zcb" in extensions, "zcmop" in extensions
    if not (zcb or zcmop):
        return expand
    cache: dict[int, int] = {}

    def expand_more(insn: int) -> int:
        word = cache.get(insn)
        if word is None:
            word = expand(insn)
            if not word and zcb:
                word = _expand_zcb(insn)
            if not word and zcmop and insn & C_MOP_MASK == C_MOP_MATCH:
                word = NOP  # c.mop.N writes no register
            cache[insn] = word
        return word
    return expand_more
