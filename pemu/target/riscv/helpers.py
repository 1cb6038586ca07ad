"""Runtime helpers that RISC-V translated code calls: traps, atomics, fence.i.

Each helper is wrapped in an ``ir.Helper`` here so the translator only picks the
right object.  Helpers that need the running CPU get it as ``env`` (the engine's
CPU object: ``env.mem`` is the guest memory, ``env.flush_icache()`` drops stale
translations).  Atomic helpers take their operands as arguments and return their
results, so they neither read nor write the CPU state block themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.guest_atomics import atomic_update, compare_and_swap
from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Helper
from pemu.target.riscv.exceptions import (
    LOAD_ADDR_MISALIGNED,
    STORE_ADDR_MISALIGNED,
    RiscvTrap,
)

MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def sext32(v: int) -> int:
    """Sign-extend the low 32 bits of v to a 64-bit pattern."""
    v &= 0xFFFF_FFFF
    return v | 0xFFFF_FFFF_0000_0000 if v & 0x8000_0000 else v


def _raise_exception(env: object, cause: int, tval: int) -> None:
    raise RiscvTrap(cause, tval)


RAISE_EXCEPTION = Helper("raise_exception", _raise_exception, flags=CALL_SIDE_EFFECTS,
                         n_out=0, needs_env=True)


def _fence_i(env: object) -> None:
    env.flush_icache()  # type: ignore[attr-defined]


FENCE_I = Helper("fence_i", _fence_i, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)


# -- LR/SC and AMOs ----------------------------------------------------------------
#
# SC is a compare-and-swap against the value LR loaded: it succeeds when the
# reservation is on the same address and memory still holds that value (an ABA store
# in between is not detected, as in QEMU).  Every read-modify-write ends in the
# memory's host compare-and-swap (accel/tcg/guest_atomics.py), atomic against other
# harts' generated code and against other processes sharing the page.

def _widen(size: int) -> Callable[[int], int]:
    return sext32 if size == 4 else (lambda v: v)


def _make_lr(size: int) -> Callable[[object, int], int]:
    widen = _widen(size)

    def lr(env: object, addr: int) -> int:
        if addr & (size - 1):
            raise RiscvTrap(LOAD_ADDR_MISALIGNED, addr)
        mem = env.mem  # type: ignore[attr-defined]
        with mem.lock:
            return widen(mem.load_slow(addr, size))
    return lr


def _make_sc(size: int) -> Callable[[object, int, int, int, int], int]:
    mask = (1 << (size * 8)) - 1

    def sc(env: object, addr: int, value: int, res_addr: int, res_value: int) -> int:
        if addr & (size - 1):
            raise RiscvTrap(STORE_ADDR_MISALIGNED, addr)
        if addr != res_addr:
            return 1
        reserved = res_value & mask
        old = atomic_update(env.mem, addr, size,  # type: ignore[attr-defined]
                             lambda old: value & mask if old == reserved else None)
        return 0 if old == reserved else 1
    return sc


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def _amo_min(a: int, b: int, bits: int) -> int:
    return a if _signed(a, bits) <= _signed(b, bits) else b


def _amo_max(a: int, b: int, bits: int) -> int:
    return a if _signed(a, bits) >= _signed(b, bits) else b


# funct5 of the AMO opcode -> (name, combine(old, operand, bits) -> new)
AMO_OPS: dict[int, tuple[str, Callable[[int, int, int], int]]] = {
    0x01: ("swap", lambda old, v, bits: v),
    0x00: ("add", lambda old, v, bits: old + v),
    0x04: ("xor", lambda old, v, bits: old ^ v),
    0x0C: ("and", lambda old, v, bits: old & v),
    0x08: ("or", lambda old, v, bits: old | v),
    0x10: ("min", _amo_min),
    0x14: ("max", _amo_max),
    0x18: ("minu", lambda old, v, bits: min(old, v)),
    0x1C: ("maxu", lambda old, v, bits: max(old, v)),
}


def _make_amo(combine: Callable[[int, int, int], int], size: int
              ) -> Callable[[object, int, int], int]:
    bits = size * 8
    mask = (1 << bits) - 1
    widen = _widen(size)

    def amo(env: object, addr: int, value: int) -> int:
        if addr & (size - 1):
            raise RiscvTrap(STORE_ADDR_MISALIGNED, addr)
        operand = value & mask
        old = atomic_update(env.mem, addr, size,  # type: ignore[attr-defined]
                             lambda old: combine(old, operand, bits) & mask)
        return widen(old)
    return amo


_SUFFIX = {4: "w", 8: "d"}
LR = {size: Helper(f"lr_{_SUFFIX[size]}", _make_lr(size), flags=CALL_SIDE_EFFECTS,
                   needs_env=True) for size in (4, 8)}
SC = {size: Helper(f"sc_{_SUFFIX[size]}", _make_sc(size), flags=CALL_SIDE_EFFECTS,
                   needs_env=True) for size in (4, 8)}
AMO = {(funct5, size): Helper(f"amo{name}_{_SUFFIX[size]}", _make_amo(fn, size),
                              flags=CALL_SIDE_EFFECTS, needs_env=True)
       for funct5, (name, fn) in AMO_OPS.items() for size in (4, 8)}


# -- Zacas: amocas.w/d/q ----------------------------------------------------------------

def _make_cas(size: int) -> Callable[..., object]:
    """Compare-and-swap of ``size`` bytes (16: two registers' worth, low half first,
    swapped as one 16-byte value: ``lock cmpxchg16b``); the old value comes back
    whether or not it matched."""
    words = 2 if size == 16 else 1
    part = size // words
    mask = (1 << (8 * part)) - 1
    widen = _widen(part)

    def cas(env: object, addr: int, *operands: int) -> object:
        if addr & (size - 1):
            raise RiscvTrap(STORE_ADDR_MISALIGNED, addr)
        expected, new = operands[:words], operands[words:]
        mem = env.mem  # type: ignore[attr-defined]
        if words == 1:
            want = expected[0] & mask
            return widen(atomic_update(mem, addr, size,
                                       lambda old: new[0] & mask if old == want else None))
        old = compare_and_swap(mem, addr, size, _pair(*expected), _pair(*new))
        return old & mask, old >> 64
    return cas


def _pair(low: int, high: int) -> int:
    return (low & _MASK64) | (high & _MASK64) << 64


CAS = {size: Helper(f"amocas_{name}", _make_cas(size), flags=CALL_SIDE_EFFECTS,
                    n_out=2 if size == 16 else 1, needs_env=True)
       for size, name in ((4, "w"), (8, "d"), (16, "q"))}


# -- Zbc/Zbkc carry-less multiply and Zbkx crossbar permutes: no IR op for them -------

_MASK64 = (1 << 64) - 1


def _clmul_full(a: int, b: int) -> int:
    """The 128-bit carry-less product of two 64-bit values."""
    a, b, out = a & _MASK64, b & _MASK64, 0  # operands may arrive as signed ints
    while b:
        low = b & -b  # the lowest set bit of b
        out ^= a << (low.bit_length() - 1)
        b ^= low
    return out


def _xperm(lane_bits: int) -> Callable[[int, int], int]:
    """xperm4/xperm8: each lane of b indexes a lane of a (0 where out of range)."""
    lanes, mask = 64 // lane_bits, (1 << lane_bits) - 1

    def xperm(a: int, b: int) -> int:
        a, out = a & _MASK64, 0
        for i in range(0, 64, lane_bits):
            index = (b >> i) & mask
            if index < lanes:
                out |= ((a >> (index * lane_bits)) & mask) << i
        return out
    return xperm


CLMUL = Helper("clmul", lambda a, b: _clmul_full(a, b) & _MASK64, flags=0)
CLMULH = Helper("clmulh", lambda a, b: _clmul_full(a, b) >> 64, flags=0)
CLMULR = Helper("clmulr", lambda a, b: (_clmul_full(a, b) >> 63) & _MASK64, flags=0)
XPERM4 = Helper("xperm4", _xperm(4), flags=0)
XPERM8 = Helper("xperm8", _xperm(8), flags=0)
