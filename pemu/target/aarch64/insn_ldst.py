"""A64 loads and stores: every addressing mode of the integer and SIMD&FP registers,
pairs, literals, and the exclusive and acquire/release forms.

Guest memory is accessed before any base-register write-back, so a faulting access
leaves the base as it was (precise).  A SIMD&FP load writes the whole V register:
the bytes above the access become zero.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import ADD
from pemu.target.aarch64 import atomic_inline
from pemu.target.aarch64.context import DisasContext, imm
from pemu.target.aarch64.cpu_state import NO_EXCLUSIVE
from pemu.target.aarch64.helpers import CAS, CASP, LDXP, LDXR, LSE, STXP, STXR
from pemu.target.aarch64.insn_dp import extended


class _Access:
    """What one register transfer does: size in bytes (16: a Q register), load or
    store, signed load into X (sf=1) or W (sf=0), V register or not."""

    __slots__ = ("size", "load", "signed", "sf", "vector")

    def __init__(self, size: int, load: bool, signed: bool = False, sf: int = 1,
                 vector: bool = False) -> None:
        self.size, self.load, self.signed, self.sf, self.vector = size, load, signed, sf, vector


PREFETCH = "prefetch"


def _classify(size: int, v: int, opc: int) -> _Access | str | None:
    """The (size, V, opc) columns of the load/store register tables."""
    if v:
        if opc >> 1:
            return _Access(16, bool(opc & 1), vector=True) if size == 0 else None
        return _Access(1 << size, bool(opc & 1), vector=True)
    if opc == 0:
        return _Access(1 << size, False)
    if opc == 1:
        return _Access(1 << size, True, sf=int(size == 3))
    if opc == 2:
        return PREFETCH if size == 3 else _Access(1 << size, True, signed=True)
    return _Access(1 << size, True, signed=True, sf=0) if size < 2 else None


def offset_address(ctx: DisasContext, base: Operand, offset: int) -> Operand:
    """base + offset (base itself for 0): an access's address."""
    if not offset:
        return base
    t = ctx.temp()
    ctx.b.binop(ADD, t, base, imm(offset))
    return t


def transfer(ctx: DisasContext, acc: _Access, rt: int, addr: Operand) -> None:
    """One load or store of register ``rt`` at ``addr``."""
    b = ctx.b
    if acc.vector:
        lo, hi = ctx.v(rt, 0), ctx.v(rt, 1)
        if acc.load:
            first = ctx.temp()
            b.ld(first, addr, MemOp(min(acc.size, 8)))
            if acc.size == 16:
                b.ld(hi, offset_address(ctx, addr, 8), MemOp(8))
            else:
                b.movi(hi, 0)
            b.mov(lo, first)
        else:
            b.st(lo, addr, MemOp(min(acc.size, 8)))
            if acc.size == 16:
                b.st(hi, offset_address(ctx, addr, 8), MemOp(8))
        return
    if acc.load:
        value = ctx.temp()
        b.ld(value, addr, MemOp(acc.size, acc.signed))
        ctx.write(rt, value, acc.sf)
    else:
        b.st(ctx.read(rt), addr, MemOp(acc.size))


def _writeback(ctx: DisasContext, rn: int, addr: Operand) -> None:
    ctx.write(rn, addr, sp=True)


def trans_LDST_uimm(ctx: DisasContext, a) -> bool | None:
    acc = _classify(a.size, a.v, a.opc)
    if acc is None:
        return False
    if acc is PREFETCH:
        return None
    assert isinstance(acc, _Access)
    addr = offset_address(ctx, ctx.read(a.rn, sp=True), a.imm * acc.size)
    transfer(ctx, acc, a.rt, addr)
    return None


def trans_LDST_imm9(ctx: DisasContext, a) -> bool | None:
    acc = _classify(a.size, a.v, a.opc)
    if acc is None or (acc is PREFETCH and a.idx) or (a.v and a.idx == 2):
        return False
    if acc is PREFETCH:
        return None
    assert isinstance(acc, _Access)
    base = ctx.read(a.rn, sp=True)
    moved = offset_address(ctx, base, a.imm)
    if a.idx == 1:  # post-index
        transfer(ctx, acc, a.rt, base)
        _writeback(ctx, a.rn, moved)
    else:
        transfer(ctx, acc, a.rt, moved)  # LDUR/STUR, LDTR/STTR (EL0: the same), pre-index
        if a.idx == 3:
            _writeback(ctx, a.rn, moved)
    return None


def trans_LDST_reg(ctx: DisasContext, a) -> bool | None:
    acc = _classify(a.size, a.v, a.opc)
    if acc is None or not a.option & 2:
        return False
    if acc is PREFETCH:
        return None
    assert isinstance(acc, _Access)
    shift = (acc.size.bit_length() - 1) if a.s else 0
    addr = ctx.temp()
    ctx.b.binop(ADD, addr, ctx.read(a.rn, sp=True), extended(ctx, a.rm, a.option, shift, 1))
    transfer(ctx, acc, a.rt, addr)
    return None


def trans_LDR_lit(ctx: DisasContext, a) -> bool | None:
    addr = imm(ctx.pc + a.imm * 4)
    if a.v:
        if a.opc == 3:
            return False
        acc = _Access((4, 8, 16)[a.opc], True, vector=True)
    elif a.opc == 3:
        return None  # PRFM (literal)
    else:
        acc = _Access(8 if a.opc == 1 else 4, True, signed=a.opc == 2, sf=int(a.opc != 0))
    transfer(ctx, acc, a.rt, addr)
    return None


def trans_LDST_pair(ctx: DisasContext, a) -> bool | None:
    if a.opc == 3 or (not a.v and a.opc == 1 and (not a.l or a.idx == 0)):
        return False  # ldpsw has no store and no non-temporal form
    if a.v:
        size = 4 << a.opc
        acc = _Access(size, bool(a.l), vector=True)
    else:
        size = 8 if a.opc == 2 else 4
        acc = _Access(size, bool(a.l), signed=a.opc == 1, sf=int(a.opc != 0))
    base = ctx.read(a.rn, sp=True)
    moved = offset_address(ctx, base, a.imm * size)
    addr = base if a.idx == 1 else moved
    if acc.load and not acc.vector and a.rt != 31 and a.rt == a.rt2:
        return False  # CONSTRAINED UNPREDICTABLE: Linux's choice on real cores is UNDEF
    if acc.load and not acc.vector:
        # both loads before either write: rt may be the base register
        first, second = ctx.temp(), ctx.temp()
        ctx.b.ld(first, addr, MemOp(size, acc.signed))
        ctx.b.ld(second, offset_address(ctx, addr, size), MemOp(size, acc.signed))
        ctx.write(a.rt, first, acc.sf)
        ctx.write(a.rt2, second, acc.sf)
    else:
        transfer(ctx, acc, a.rt, addr)
        transfer(ctx, acc, a.rt2, offset_address(ctx, addr, size))
    if a.idx in (1, 3):
        _writeback(ctx, a.rn, moved)
    return None


def trans_LDST_excl(ctx: DisasContext, a) -> bool | None:
    """LDXR/STXR, LDAXR/STLXR (o2=0 o1=0) and LDAR/STLR (o2=1 o1=0 o0=1).  Ordering is
    free: each guest thread's accesses happen in program order on the host."""
    size = 1 << a.size
    b = ctx.b
    addr = ctx.read(a.rn, sp=True)
    if a.o1:
        return _pair_or_cas(ctx, a, addr)
    if a.o2:
        if not a.o0:
            return False  # LDLAR/STLLR (FEAT_LOR)
        transfer(ctx, _Access(size, bool(a.l), sf=int(size == 8)), a.rt, addr)
        return None
    if ctx.inline_atomics:
        if a.l:
            atomic_inline.load_exclusive(ctx, size, a.rn, a.rt)
        else:
            atomic_inline.store_exclusive(ctx, size, a.rn, a.rt, a.rs)
        return None
    excl_addr, excl_value = ctx.glob("excl_addr"), ctx.glob("excl_value")
    if a.l:
        value: Temp = ctx.temp()
        b.call(LDXR[size], [value], [addr])
        b.mov(excl_addr, addr)
        b.mov(excl_value, value)
        ctx.write(a.rt, value)
    else:
        status = ctx.temp()
        b.call(STXR[size], [status], [addr, ctx.read(a.rt), excl_addr, excl_value])
        b.movi(excl_addr, NO_EXCLUSIVE)
        ctx.write(a.rs, status, 0)
    return None


def _pair_or_cas(ctx: DisasContext, a, addr: Operand) -> bool | None:
    """CAS/CASA/CASL/CASAL (o2=1, FEAT_LSE), CASP/CASPA/CASPL/CASPAL (o2=0, size 0
    or 1, FEAT_LSE) and LDXP/STXP/LDAXP/STLXP (o2=0, size 2 or 3)."""
    b = ctx.b
    if a.o2:
        if a.rt2 != 31:
            return False
        size = 1 << a.size
        if ctx.inline_atomics:
            atomic_inline.cas(ctx, size, a.rn, a.rs, a.rt)
            return None
        old = ctx.temp()
        b.call(CAS[size], [old], [addr, ctx.read(a.rs), ctx.read(a.rt)])
        ctx.write(a.rs, old)
        return None
    if a.size < 2:
        return _casp(ctx, a, addr)
    size = 4 << (a.size & 1)
    sf = a.size & 1
    names = ("excl_addr", "excl_value", "excl_value_hi")
    excl_addr, excl_lo, excl_hi = (ctx.glob(n) for n in names)
    if a.l:
        if a.rt == a.rt2:
            return False  # CONSTRAINED UNPREDICTABLE
        first, second = ctx.temp(), ctx.temp()
        b.call(LDXP[size], [first, second], [addr])
        b.mov(excl_addr, addr)
        b.mov(excl_lo, first)
        b.mov(excl_hi, second)
        ctx.write(a.rt, first, sf)
        ctx.write(a.rt2, second, sf)
    else:
        status = ctx.temp()
        b.call(STXP[size], [status], [addr, ctx.read(a.rt), ctx.read(a.rt2), excl_addr,
                                      excl_lo, excl_hi])
        b.movi(excl_addr, NO_EXCLUSIVE)
        ctx.write(a.rs, status, 0)
    return None


def _casp(ctx: DisasContext, a, addr: Operand) -> bool | None:
    """CASP Rs, Rs+1, Rt, Rt+1, [Rn]: a 2x32- or 2x64-bit compare-and-swap (Linux's
    SLUB uses it for its lockless freelist with FEAT_LSE); odd Rs or Rt are UNDEFINED."""
    if a.rt2 != 31 or a.rs & 1 or a.rt & 1:
        return False
    sf = a.size
    if ctx.inline_atomics:
        atomic_inline.casp(ctx, sf, a.rn, a.rs, a.rt)
        return None
    old0, old1 = ctx.temp(), ctx.temp()
    ctx.b.call(CASP[4 << sf], [old0, old1],
               [addr, ctx.read(a.rs, sf), ctx.read(a.rs + 1, sf), ctx.read(a.rt, sf),
                ctx.read(a.rt + 1, sf)])
    ctx.write(a.rs, old0, sf)
    ctx.write(a.rs + 1, old1, sf)
    return None


def trans_LSE_ATOMIC(ctx: DisasContext, a) -> bool | None:
    """LDADD/LDCLR/LDEOR/LDSET/LD[SU]MAX/LD[SU]MIN and SWP (FEAT_LSE), any ordering;
    Rt gets the old value (the ST* aliases write XZR)."""
    op = a.opc if not a.o3 else (8 if a.opc == 0 else None)
    if op is None:
        return False  # LDAPR (FEAT_LRCPC) is not in the model
    size = 1 << a.size
    if ctx.inline_atomics and atomic_inline.lse(ctx, op, size, a.rn, a.rs, a.rt):
        return None
    old = ctx.temp()
    ctx.b.call(LSE[(op, size)], [old], [ctx.read(a.rn, sp=True), ctx.read(a.rs)])
    ctx.write(a.rt, old)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")] + ["offset_address", "transfer"]
