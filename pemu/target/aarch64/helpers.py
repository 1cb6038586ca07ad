"""Runtime helpers that A64 translated code calls: traps, exclusives, bit shuffles.

Exclusives follow target/riscv's LR/SC: the monitor is the (address, value) pair in
the state block; STXR is a compare-and-swap under the guest memory lock against the
value LDXR read, so guest threads running on host threads at once see the same
atomicity as on RISC-V (an ABA store in between is not detected, as in QEMU).
"""

from __future__ import annotations

from collections.abc import Callable

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
        mem = env.mem  # type: ignore[attr-defined]
        with mem.lock:
            if mem.load_slow(addr, size) != excl_value & mask:
                return 1
            mem.store_slow(addr, size, value & mask)
        return 0
    return stxr


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
