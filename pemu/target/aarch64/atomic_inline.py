"""FEAT_LSE atomics (LDADD & co, SWP, CAS, CASP) and LDXR/STXR as plain IR when one
host thread runs every vCPU (``DisasContext.inline_atomics``: system mode).

Then nothing can come between a load and a store of the same block, so an atomic is a
load, an operation and a store, without the helper call (a ctypes callback into Python
each) and the guest memory lock: Linux's booting kernel makes about two million of
them (refcounts, spinlocks, cmpxchg loops, SLUB's freelist CASP).  The read is a read
for a store (write permission, write faults), as the helper's access is an RMW.
Misaligned addresses raise the alignment fault as the helpers do.  LD[SU]MAX/LD[SU]MIN
below 64 bits keep their helpers (they would need extended operands).
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Cond, Const, Helper, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import ADD, AND, ANDC, MAX, MAXU, MIN, MINU, OR, XOR, Opcode
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.cpu_state import NO_EXCLUSIVE
from pemu.target.aarch64.exceptions import ALIGNMENT, Aarch64Trap

# LSE opc (and 8 = SWP) -> the IR op combining (old, operand); None: SWP
_LSE_IR: dict[int, Opcode | None] = {0: ADD, 1: ANDC, 2: XOR, 3: OR, 4: MAX, 5: MIN,
                                      6: MAXU, 7: MINU, 8: None}
_MIN_MAX = frozenset({MAX, MIN, MAXU, MINU})


def _raise_alignment(env: object, addr: int) -> None:
    raise Aarch64Trap(ALIGNMENT, 0, addr)


RAISE_ALIGNMENT = Helper("a64_raise_alignment", _raise_alignment, n_out=0, needs_env=True)


def _address(ctx: DisasContext, rn: int, size: int) -> Temp:
    """A copy of X[rn]/SP (the destination may be the base), checked for alignment."""
    b = ctx.b
    addr = b.temp()
    b.mov(addr, ctx.read(rn, sp=True))
    low, ok = b.temp(), b.label()
    b.binop(AND, low, addr, Const(size - 1))
    b.brcond(Cond.EQ, low, Const(0), ok)
    b.call(RAISE_ALIGNMENT, [], [addr])
    b.set_label(ok)
    return addr


def _low(ctx: DisasContext, value: Operand, size: int) -> Operand:
    """``value`` reduced to ``size`` bytes (what memory holds), for comparisons."""
    if size == 8 or isinstance(value, Const):
        return Const(value.value & ((1 << 8 * size) - 1)) if isinstance(value, Const) \
            else value
    t = ctx.b.temp()
    ctx.b.binop(AND, t, value, Const((1 << 8 * size) - 1))
    return t


def lse(ctx: DisasContext, op: int, size: int, rn: int, rs: int, rt: int) -> bool:
    """LD<op>/SWP inline; False: this one keeps its helper."""
    ir = _LSE_IR[op]
    if ir in _MIN_MAX and size != 8:
        return False
    b = ctx.b
    addr = _address(ctx, rn, size)
    operand = ctx.read(rs)
    old = b.temp()
    b.ld(old, addr, MemOp(size, for_store=True))
    if ir is None:
        b.st(operand, addr, MemOp(size))
    else:
        new = b.temp()
        b.binop(ir, new, old, operand)
        b.st(new, addr, MemOp(size))
    ctx.write(rt, old)
    return True


def cas(ctx: DisasContext, size: int, rn: int, rs: int, rt: int) -> None:
    """CAS: Rs = the old value; Rt stored where it equalled Rs."""
    b = ctx.b
    addr = _address(ctx, rn, size)
    expected = _low(ctx, ctx.read(rs), size)
    new = ctx.read(rt)
    old, differ = b.temp(), b.label()
    b.ld(old, addr, MemOp(size, for_store=True))
    b.brcond(Cond.NE, old, expected, differ)
    b.st(new, addr, MemOp(size))
    b.set_label(differ)
    ctx.write(rs, old)


def casp(ctx: DisasContext, sf: int, rn: int, rs: int, rt: int) -> None:
    """CASP: the pair at [Rn] (first register at the lower address) against Rs, Rs+1."""
    b = ctx.b
    size = 4 << sf
    addr = _address(ctx, rn, 2 * size)
    second = b.temp()
    b.binop(ADD, second, addr, Const(size))
    expected = [_low(ctx, ctx.read(rs + i, sf), size) for i in (0, 1)]
    new = [ctx.read(rt + i, sf) for i in (0, 1)]
    old = [b.temp(), b.temp()]
    differ = b.label()
    for value, where in zip(old, (addr, second), strict=True):
        b.ld(value, where, MemOp(size, for_store=True))
    for value, want in zip(old, expected, strict=True):
        b.brcond(Cond.NE, value, want, differ)
    for value, where in zip(new, (addr, second), strict=True):
        b.st(value, where, MemOp(size))
    b.set_label(differ)
    ctx.write(rs, old[0], sf)
    ctx.write(rs + 1, old[1], sf)


def load_exclusive(ctx: DisasContext, size: int, rn: int, rt: int) -> None:
    """LDXR/LDAXR: the value, and the monitor (address, value) STXR compares with."""
    b = ctx.b
    addr = _address(ctx, rn, size)
    value = b.temp()
    b.ld(value, addr, MemOp(size))
    b.mov(ctx.glob("excl_addr"), addr)
    b.mov(ctx.glob("excl_value"), value)
    ctx.write(rt, value)


def store_exclusive(ctx: DisasContext, size: int, rn: int, rt: int, rs: int) -> None:
    """STXR/STLXR: store if the monitor holds this address and memory still holds the
    value LDXR read (the helper's compare-and-swap); Ws = 0 if stored, else 1.  Any
    STXR closes the monitor."""
    b = ctx.b
    addr = _address(ctx, rn, size)
    excl_addr = ctx.glob("excl_addr")
    status, current, fail = b.temp(), b.temp(), b.label()
    b.movi(status, 1)
    b.brcond(Cond.NE, addr, excl_addr, fail)
    b.ld(current, addr, MemOp(size, for_store=True))
    b.brcond(Cond.NE, current, _low(ctx, ctx.glob("excl_value"), size), fail)
    b.st(ctx.read(rt), addr, MemOp(size))
    b.movi(status, 0)
    b.set_label(fail)
    b.movi(excl_addr, NO_EXCLUSIVE)
    ctx.write(rs, status, 0)


__all__ = ["RAISE_ALIGNMENT", "cas", "casp", "load_exclusive", "lse", "store_exclusive"]
