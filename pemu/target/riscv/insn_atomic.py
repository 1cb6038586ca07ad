"""Handlers for the A extension: LR/SC and the AMOs (.w and .d; aq/rl accepted), and
Zacas's amocas.w/d/q (``HANDLERS``, by the decode table's pattern names).

The reservation lives in the res_addr/res_value globals; an SC succeeds when its
address is the reserved one and memory still holds the value LR read.

Three ways to do the memory side.  In Linux user mode, guest threads run on host
threads at once, so the helpers of helpers.py do it under the guest memory lock.  In
system mode with one host thread for every hart no hart can run between two
instructions of another's block, so the translator asks for ``inline_atomics``: plain
IR loads and stores that the backends turn into inline TLB lookups.  With MTTCG
(``host_cas``) other harts' generated code stores at any time, so SC and the AMOs end
in a host compare-and-swap (IR ``cmpxchg``), with the helpers (which finish with a
host compare-and-swap too) where it cannot be done inline.  The read half of
an AMO or SC is a ``for_store`` load: it needs write permission and faults as a store,
as the spec wants for an AMO to a read-only page.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Cond, Const, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import ADD, AND, EXT32S, EXT32U, MAX, MAXU, MIN, MINU, OR, XOR, Opcode
from pemu.target.decode import Args
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.cpu_state import NO_RESERVATION
from pemu.target.riscv.exceptions import LOAD_ADDR_MISALIGNED, STORE_ADDR_MISALIGNED
from pemu.target.riscv.helpers import AMO, CAS, LR, RAISE_EXCEPTION, SC

_SIZES = {2: 4, 3: 8}  # funct3 -> access size
_CAS_SIZES = {2: 4, 3: 8, 4: 16}  # Zacas adds amocas.q
FUNCT5_LR = 0x02
FUNCT5_SC = 0x03
FUNCT5_CAS = 0x05
Handler = Callable[[DisasContext, Args], "bool | None"]


def _amo(funct5: int, funct3: int) -> Handler:
    """The handler of the LR/SC/AMO/AMOCAS pattern with these funct5 and funct3 (the
    width: 2 .w, 3 .d, 4 .q)."""
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        _trans_amo(ctx, funct5, funct3, a.rd, a.rs1, getattr(a, "rs2", 0))
        return None
    return trans


def _trans_amo(ctx: DisasContext, funct5: int, funct3: int, rd: int, rs1: int, rs2: int
               ) -> None:
    size = _SIZES.get(funct3)
    if funct5 == FUNCT5_CAS and "zacas" in ctx.ext:
        _trans_cas(ctx, _CAS_SIZES.get(funct3), rd, rs1, rs2)
        return
    if size is None:
        ctx.illegal()
        return
    if ctx.inline_atomics or (ctx.host_cas and funct5 == FUNCT5_LR):
        _trans_amo_inline(ctx, funct5, size, rd, rs1, rs2)  # (an LR is a plain load)
        return
    if ctx.host_cas and (funct5 == FUNCT5_SC or funct5 in _AMO_IR):
        _trans_amo_host_cas(ctx, funct5, size, rd, rs1, rs2)
        return
    b = ctx.b
    addr = ctx.masked(ctx.xr[rs1])  # pointer masking (nothing without it)
    if funct5 == FUNCT5_LR:
        value = b.temp()
        b.call(LR[size], [value], [addr])
        b.mov(ctx.res_addr, addr)
        b.mov(ctx.res_value, value)
        if rd:
            b.mov(ctx.xr[rd], value)  # type: ignore[arg-type]
    elif funct5 == FUNCT5_SC:
        status = b.temp()
        b.call(SC[size], [status], [addr, ctx.xr[rs2], ctx.res_addr, ctx.res_value])
        b.mov(ctx.res_addr, Const(NO_RESERVATION))  # any SC ends the reservation
        if rd:
            b.mov(ctx.xr[rd], status)  # type: ignore[arg-type]
    else:
        helper = AMO.get((funct5, size))
        if helper is None:
            ctx.illegal()
            return
        b.call(helper, [ctx.dest(rd)], [addr, ctx.xr[rs2]])


def _pair(r: int) -> tuple[int, int]:
    """The registers of an amocas.q operand: an even one and the next (x0 stands for a
    pair of zeros)."""
    return (r, r + 1) if r else (0, 0)


def _trans_cas(ctx: DisasContext, size: int | None, rd: int, rs1: int, rs2: int) -> None:
    """amocas.w/d/q: if memory holds rd's value, store rs2's; rd gets the old value."""
    if size is None or (size == 16 and (rd | rs2) & 1):
        ctx.illegal()
        return
    b = ctx.b
    words = 2 if size == 16 else 1
    rd_regs = _pair(rd)[:words]
    expected = [ctx.xr[r] for r in rd_regs]
    new = [ctx.xr[r] for r in _pair(rs2)[:words]]
    if not ctx.inline_atomics:
        old = [b.temp() for _ in range(words)]
        b.call(CAS[size], old, [ctx.masked(ctx.xr[rs1]), *expected, *new])
    else:
        addr = b.temp()
        b.mov(addr, ctx.masked(ctx.xr[rs1]))
        _check_aligned(ctx, addr, size, STORE_ADDR_MISALIGNED)
        part = size // words
        old, parts = [], [addr]
        for i in range(words):
            if i:
                parts.append(b.temp())
                b.binop(ADD, parts[i], addr, Const(part))
            old.append(b.temp())
            b.ld(old[i], parts[i], MemOp(part, signed=True, for_store=True))
        differ = b.label()
        for i in range(words):
            want = expected[i]
            if part == 4:  # compare the low 32 bits: old is sign-extended, so extend rd
                want = b.temp()
                b.unop(EXT32S, want, expected[i])
            b.brcond(Cond.NE, old[i], want, differ)
        for i in range(words):
            b.st(new[i], parts[i], MemOp(part))
        b.set_label(differ)
    for r, value in zip(rd_regs, old, strict=True):
        if r:
            b.mov(ctx.xr[r], value)  # type: ignore[arg-type]


# funct5 -> the IR op combining the old value with rs2 (None: swap)
_AMO_IR: dict[int, Opcode | None] = {
    0x01: None, 0x00: ADD, 0x04: XOR, 0x0C: AND, 0x08: OR,
    0x10: MIN, 0x14: MAX, 0x18: MINU, 0x1C: MAXU,
}

_MIN_MAX = frozenset({MIN, MAX, MINU, MAXU})


def _check_aligned(ctx: DisasContext, addr: Operand, size: int, cause: int) -> None:
    """Misaligned atomics trap (the spec allows no emulation of them)."""
    b = ctx.b
    low = b.temp()
    b.binop(AND, low, addr, Const(size - 1))
    ok = b.label()
    b.brcond(Cond.EQ, low, Const(0), ok)
    b.call(RAISE_EXCEPTION, [], [Const(cause), addr])
    b.set_label(ok)


def _trans_amo_inline(ctx: DisasContext, funct5: int, size: int, rd: int, rs1: int,
                      rs2: int) -> None:
    b = ctx.b
    if funct5 not in (FUNCT5_LR, FUNCT5_SC) and funct5 not in _AMO_IR:
        ctx.illegal()
        return
    addr = b.temp()  # rd may be rs1: keep the address
    b.mov(addr, ctx.masked(ctx.xr[rs1]))
    signed = MemOp(size, signed=True)
    if funct5 == FUNCT5_LR:
        _check_aligned(ctx, addr, size, LOAD_ADDR_MISALIGNED)
        value = b.temp()
        b.ld(value, addr, signed)
        b.mov(ctx.res_addr, addr)
        b.mov(ctx.res_value, value)
        if rd:
            b.mov(ctx.xr[rd], value)  # type: ignore[arg-type]
        return
    _check_aligned(ctx, addr, size, STORE_ADDR_MISALIGNED)
    read_for_store = MemOp(size, signed=True, for_store=True)
    if funct5 == FUNCT5_SC:
        status = b.temp()
        b.movi(status, 1)
        fail = b.label()
        b.brcond(Cond.NE, addr, ctx.res_addr, fail)
        current = b.temp()
        b.ld(current, addr, read_for_store)
        b.brcond(Cond.NE, current, ctx.res_value, fail)
        b.st(ctx.xr[rs2], addr, MemOp(size))
        b.movi(status, 0)
        b.set_label(fail)
        b.mov(ctx.res_addr, Const(NO_RESERVATION))  # any SC ends the reservation
        if rd:
            b.mov(ctx.xr[rd], status)  # type: ignore[arg-type]
        return
    old = b.temp()
    b.ld(old, addr, read_for_store)
    new = _combine(ctx, _AMO_IR[funct5], old, ctx.xr[rs2], size)
    b.st(new, addr, MemOp(size))
    if rd:
        b.mov(ctx.xr[rd], old)  # type: ignore[arg-type]


def _trans_amo_host_cas(ctx: DisasContext, funct5: int, size: int, rd: int, rs1: int,
                        rs2: int) -> None:
    """MTTCG: harts run on parallel host threads, so the read-modify-write must be one
    host atomic instruction: SC is a compare-and-swap against the reserved value, an
    AMO a load, the operation and a compare-and-swap against what was loaded.  Where
    that swap was not done (another hart stored in between, or the page is not in the
    TLB for writing: first touch, MMIO, dirty logging), the helper does it all and
    raises what the access must raise."""
    b = ctx.b
    addr = b.temp()  # rd may be rs1: keep the address
    b.mov(addr, ctx.masked(ctx.xr[rs1]))
    _check_aligned(ctx, addr, size, STORE_ADDR_MISALIGNED)
    memop = MemOp(size, signed=True)
    done = b.label()
    got = b.temp()
    result = b.temp()
    if funct5 == FUNCT5_SC:
        b.movi(result, 1)
        b.brcond(Cond.NE, addr, ctx.res_addr, done)
        b.cmpxchg(got, addr, ctx.res_value, ctx.xr[rs2], memop)
        b.movi(result, 0)
        b.brcond(Cond.EQ, got, ctx.res_value, done)
        b.call(SC[size], [result], [addr, ctx.xr[rs2], ctx.res_addr, ctx.res_value])
        b.set_label(done)
        b.mov(ctx.res_addr, Const(NO_RESERVATION))  # any SC ends the reservation
    else:
        old = b.temp()
        b.ld(old, addr, MemOp(size, signed=True, for_store=True))
        new = _combine(ctx, _AMO_IR[funct5], old, ctx.xr[rs2], size)
        b.cmpxchg(got, addr, old, new, memop)
        b.mov(result, old)
        b.brcond(Cond.EQ, got, old, done)
        b.call(AMO[(funct5, size)], [result], [addr, ctx.xr[rs2]])
        b.set_label(done)
    if rd:
        b.mov(ctx.xr[rd], result)  # type: ignore[arg-type]


def _combine(ctx: DisasContext, op: Opcode | None, old: Temp, value: Operand,
             size: int) -> Operand:
    """The value an AMO stores; ``old`` is sign-extended, only the low ``size`` bytes
    of the result are stored."""
    if op is None:
        return value
    b = ctx.b
    new = b.temp()
    if size == 4 and op in _MIN_MAX:
        # compare as 32-bit numbers: both operands extended the same way
        ext = EXT32S if op is MIN or op is MAX else EXT32U
        a, v = b.temp(), b.temp()
        b.unop(ext, a, old)
        b.unop(ext, v, value)
        b.binop(op, new, a, v)
        return new
    b.binop(op, new, old, value)
    return new


# pattern name (without its .w/.d/.q) -> funct5
_FUNCT5 = {"LR": FUNCT5_LR, "SC": FUNCT5_SC, "AMOSWAP": 0x01, "AMOADD": 0x00, "AMOXOR": 0x04,
           "AMOAND": 0x0C, "AMOOR": 0x08, "AMOMIN": 0x10, "AMOMAX": 0x14, "AMOMINU": 0x18,
           "AMOMAXU": 0x1C, "AMOCAS": FUNCT5_CAS}
HANDLERS: dict[str, Handler] = {
    f"{name}_{width}": _amo(funct5, funct3)
    for name, funct5 in _FUNCT5.items() for width, funct3 in (("W", 2), ("D", 3), ("Q", 4))
    if funct3 != 4 or funct5 == FUNCT5_CAS}
