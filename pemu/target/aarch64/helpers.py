"""Runtime helpers that A64 translated code calls: traps, exclusives, bit shuffles.

Exclusives follow target/riscv's LR/SC: the monitor is the (address, value) pair in
the state block; STXR is a compare-and-swap against the value LDXR read (an ABA store
in between is not detected, as in QEMU).  STXR, STXP and the LSE atomics end in the
memory's host compare-and-swap (accel/tcg/guest_atomics.py), so they are atomic against
other threads' generated code and against other processes sharing the page.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.guest_atomics import atomic_update, compare_and_swap
from pemu.accel.tcg.ir import CALL_PURE, CALL_SIDE_EFFECTS, Helper
from pemu.target.aarch64.exceptions import ALIGNMENT, Aarch64Trap


def _raise_exception(env: object, kind_index: int, syndrome: int) -> None:
    raise Aarch64Trap(TRAP_KINDS[kind_index], syndrome)


TRAP_KINDS = ("svc", "undefined", "brk")
RAISE_EXCEPTION = Helper("a64_raise_exception", _raise_exception, flags=CALL_SIDE_EFFECTS,
                         n_out=0, needs_env=True)


def _make_ldxr(size: int) -> Callable[[object, int], int]:
    def ldxr(env: object, addr: int) -> int:
        if addr & (size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        mem = env.mem  # type: ignore[attr-defined]
        with mem.lock:
            return mem.load_slow(addr, size)
    return ldxr


def _make_stxr(size: int) -> Callable[[object, int, int, int, int], int]:
    mask = (1 << (size * 8)) - 1

    def stxr(env: object, addr: int, value: int, excl_addr: int, excl_value: int) -> int:
        if addr & (size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        if addr != excl_addr:
            return 1
        reserved = excl_value & mask
        old = compare_and_swap(env.mem, addr, size, reserved,  # type: ignore[attr-defined]
                               value)
        return 0 if old == reserved else 1
    return stxr


def _make_ldxp(size: int) -> Callable[[object, int], tuple[int, int]]:
    def ldxp(env: object, addr: int) -> tuple[int, int]:
        if addr & (2 * size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        mem = env.mem  # type: ignore[attr-defined]
        with mem.lock:
            return mem.load_slow(addr, size), mem.load_slow(addr + size, size)
    return ldxp


def _pair(first: int, second: int, size: int) -> int:
    """A register pair as one value of 2 * ``size`` bytes (the first at the lower
    address), for one compare-and-swap of both."""
    mask = (1 << (size * 8)) - 1
    return (first & mask) | (second & mask) << (size * 8)


def _make_stxp(size: int) -> Callable[..., int]:
    def stxp(env: object, addr: int, first: int, second: int, excl_addr: int,
             excl_first: int, excl_second: int) -> int:
        if addr & (2 * size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        if addr != excl_addr:
            return 1
        reserved = _pair(excl_first, excl_second, size)
        old = compare_and_swap(env.mem, addr, 2 * size,  # type: ignore[attr-defined]
                               reserved, _pair(first, second, size))
        return 0 if old == reserved else 1
    return stxp


LDXP = {size: Helper(f"a64_ldxp{size}", _make_ldxp(size), flags=CALL_SIDE_EFFECTS, n_out=2,
                     needs_env=True) for size in (4, 8)}
STXP = {size: Helper(f"a64_stxp{size}", _make_stxp(size), flags=CALL_SIDE_EFFECTS,
                     needs_env=True) for size in (4, 8)}


# -- LSE: atomic read-modify-write and compare-and-swap (FEAT_LSE) ------------------------

def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


# opc (o3=0) -> new value from (old, operand, bits); SWP is o3=1 opc=0
LSE_OPS: dict[int, tuple[str, Callable[[int, int, int], int]]] = {
    0: ("add", lambda old, v, bits: old + v),
    1: ("clr", lambda old, v, bits: old & ~v),
    2: ("eor", lambda old, v, bits: old ^ v),
    3: ("set", lambda old, v, bits: old | v),
    4: ("smax", lambda old, v, bits: old if _signed(old, bits) >= _signed(v, bits) else v),
    5: ("smin", lambda old, v, bits: old if _signed(old, bits) <= _signed(v, bits) else v),
    6: ("umax", lambda old, v, bits: max(old, v)),
    7: ("umin", lambda old, v, bits: min(old, v)),
    8: ("swp", lambda old, v, bits: v),
}


def _make_lse(combine: Callable[[int, int, int], int], size: int) -> Callable[..., int]:
    bits = size * 8
    mask = (1 << bits) - 1

    def rmw(env: object, addr: int, value: int) -> int:
        if addr & (size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        operand = value & mask
        return atomic_update(env.mem, addr, size,  # type: ignore[attr-defined]
                             lambda old: combine(old, operand, bits))
    return rmw


def _make_cas(size: int) -> Callable[..., int]:
    def cas(env: object, addr: int, expected: int, new: int) -> int:
        if addr & (size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        return compare_and_swap(env.mem, addr, size, expected,  # type: ignore[attr-defined]
                                new)
    return cas


def _make_casp(size: int) -> Callable[..., tuple[int, int]]:
    """CASP: compare the pair at ``addr`` (first register at the lower address) with
    ``expected``, store ``new`` if equal; returns the old pair."""
    mask = (1 << (size * 8)) - 1

    def casp(env: object, addr: int, expected0: int, expected1: int, new0: int,
             new1: int) -> tuple[int, int]:
        if addr & (2 * size - 1):
            raise Aarch64Trap(ALIGNMENT, 0, addr)
        old = compare_and_swap(env.mem, addr, 2 * size,  # type: ignore[attr-defined]
                               _pair(expected0, expected1, size), _pair(new0, new1, size))
        return old & mask, old >> (size * 8)
    return casp


LSE = {(op, size): Helper(f"a64_ld{name}{size}", _make_lse(fn, size), flags=CALL_SIDE_EFFECTS,
                          needs_env=True)
       for op, (name, fn) in LSE_OPS.items() for size in (1, 2, 4, 8)}
CAS = {size: Helper(f"a64_cas{size}", _make_cas(size), flags=CALL_SIDE_EFFECTS,
                    needs_env=True) for size in (1, 2, 4, 8)}
CASP = {size: Helper(f"a64_casp{size}", _make_casp(size), flags=CALL_SIDE_EFFECTS, n_out=2,
                     needs_env=True) for size in (4, 8)}


LDXR = {size: Helper(f"a64_ldxr{size}", _make_ldxr(size), flags=CALL_SIDE_EFFECTS,
                     needs_env=True) for size in (1, 2, 4, 8)}
STXR = {size: Helper(f"a64_stxr{size}", _make_stxr(size), flags=CALL_SIDE_EFFECTS,
                     needs_env=True) for size in (1, 2, 4, 8)}


# -- pure bit operations the IR has no op for -------------------------------------------

def _rbit(v: int, bits: int) -> int:
    return int(f"{v & ((1 << bits) - 1):0{bits}b}"[::-1], 2)


def _rev_in(v: int, chunk: int, bits: int) -> int:
    """Reverse the bytes inside each ``chunk``-byte container of a ``bits`` value."""
    data = (v & ((1 << bits) - 1)).to_bytes(bits // 8, "little")
    out = b"".join(data[i:i + chunk][::-1] for i in range(0, len(data), chunk))
    return int.from_bytes(out, "little")


def _cls(v: int, bits: int) -> int:
    """Leading sign bits, not counting the sign bit itself."""
    v &= (1 << bits) - 1
    x = (v ^ (v >> 1)) & ((1 << (bits - 1)) - 1)
    return bits - 1 - x.bit_length()


RBIT = {bits: Helper(f"a64_rbit{bits}", lambda v, b=bits: _rbit(v, b), flags=CALL_PURE)
        for bits in (32, 64)}
CLS = {bits: Helper(f"a64_cls{bits}", lambda v, b=bits: _cls(v, b), flags=CALL_PURE)
       for bits in (32, 64)}
REV16 = {bits: Helper(f"a64_rev16_{bits}", lambda v, b=bits: _rev_in(v, 2, b), flags=CALL_PURE)
         for bits in (32, 64)}
REV32 = Helper("a64_rev32", lambda v: _rev_in(v, 4, 64), flags=CALL_PURE)


def _crc32(poly: int, nbits: int) -> Callable[[int, int], int]:
    """CRC32/CRC32C of the low ``nbits`` of ``value``, bit-reflected, without the
    pre/post inversions (software does those around the instructions)."""
    def crc(acc: int, value: int) -> int:
        acc = (acc & 0xFFFF_FFFF) ^ (value & ((1 << nbits) - 1))  # Wn: the low half
        for _ in range(nbits):
            acc = (acc >> 1) ^ (poly if acc & 1 else 0)
        return acc & 0xFFFF_FFFF
    return crc


CRC32 = {(c, sz): Helper(f"a64_crc32{'c' if c else ''}_{8 << sz}",
                         _crc32(0x82F63B78 if c else 0xEDB88320, 8 << sz), flags=CALL_PURE)
         for c in (0, 1) for sz in range(4)}
