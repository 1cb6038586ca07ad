"""Advanced SIMD three registers of different widths: the long forms ([SU]ADDL,
[SU]SUBL, [SU]ABDL, [SU]ABAL, [SU]MULL, [SU]MLAL, [SU]MLSL, SQDMULL, SQDMLAL, SQDMLSL,
PMULL on bytes), the wide forms ([SU]ADDW, [SU]SUBW) and the high-narrowing ones
(ADDHN, SUBHN, RADDHN, RSUBHN).  The "2" forms (Q = 1) read the upper halves of their
narrow sources, or write the upper half of the destination."""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.simd_common import vec_op, vec_op_saturating, write_narrow, write_v
from pemu.target.aarch64.vector_ops import lanes, pack, poly_mul, saturate, signed

# opcode -> (name, how each lane combines: fn(d, x, y) -> value, Vn wide?, Vd read?)
_LONG: dict[int, tuple[str, Callable[[int, int, int], int], bool, bool]] = {
    0: ("addl", lambda d, x, y: x + y, False, False),
    1: ("addw", lambda d, x, y: x + y, True, False),
    2: ("subl", lambda d, x, y: x - y, False, False),
    3: ("subw", lambda d, x, y: x - y, True, False),
    5: ("abal", lambda d, x, y: d + abs(x - y), False, True),
    7: ("abdl", lambda d, x, y: abs(x - y), False, False),
    8: ("mlal", lambda d, x, y: d + x * y, False, True),
    10: ("mlsl", lambda d, x, y: d - x * y, False, True),
    12: ("mull", lambda d, x, y: x * y, False, False),
}
_SQDMULL = {13: ("sqdmull", 0), 9: ("sqdmlal", 1), 11: ("sqdmlsl", -1)}


def _long(fn: Callable[[int, int, int], int], e: int, upper: int, is_signed: bool,
          n_wide: bool) -> Callable[[int, int, int], int]:
    n = 64 // e

    def narrow(v: int) -> list[int]:
        xs = lanes(v >> (64 * upper), e, n)
        return [signed(x, e) for x in xs] if is_signed else xs

    def op(d: int, vn: int, vm: int) -> int:
        xs = [signed(x, 2 * e) if is_signed else x for x in lanes(vn, 2 * e, n)] if n_wide \
            else narrow(vn)
        ds = lanes(d, 2 * e, n)
        return pack([fn(w, x, y) for w, x, y in zip(ds, xs, narrow(vm), strict=True)], 2 * e)
    return op


def _sqdmull(e: int, upper: int, sign: int) -> Callable[[int, int, int], tuple[int, bool]]:
    n = 64 // e

    def op(d: int, vn: int, vm: int) -> tuple[int, bool]:
        out, qc = [], False
        xs = lanes(vn >> (64 * upper), e, n)
        ys = lanes(vm >> (64 * upper), e, n)
        for acc, x, y in zip(lanes(d, 2 * e, n), xs, ys, strict=True):
            product, s1 = saturate(2 * signed(x, e) * signed(y, e), 2 * e, True)
            if sign:
                product, s2 = saturate(signed(acc, 2 * e) + sign * product, 2 * e, True)
                s1 |= s2
            out.append(product)
            qc |= s1
        return pack(out, 2 * e), qc
    return op


def _high_narrow(e: int, subtract: bool, rounding: bool) -> Callable[[int, int], int]:
    """ADDHN & co: the upper half of each 2e-bit sum or difference, rounded or not."""
    def op(vn: int, vm: int) -> int:
        out = []
        for x, y in zip(lanes(vn, 2 * e, 64 // e), lanes(vm, 2 * e, 64 // e), strict=True):
            r = x - y if subtract else x + y
            out.append((r + (1 << (e - 1)) if rounding else r) >> e)
        return pack(out, e)
    return op


def trans_SIMD_3DIFF(ctx: DisasContext, a) -> bool | None:
    if a.size == 3:
        return False  # PMULL on 64-bit lanes is FEAT_PMULL, not announced
    e = 8 << a.size
    sign = "us"[a.u ^ 1]
    if a.opcode in (4, 6):  # ADDHN, RADDHN, SUBHN, RSUBHN
        name = f"a64_{'r' if a.u else ''}{'sub' if a.opcode == 6 else 'add'}hn_{e}"
        lo, _ = vec_op(ctx, name, _high_narrow(e, a.opcode == 6, bool(a.u)), [a.rn, a.rm])
        write_narrow(ctx, a.rd, lo, a.q)
        return None
    if a.opcode in _LONG:
        name, fn, n_wide, reads_d = _LONG[a.opcode]
        op = _long(fn, e, a.q, not a.u, n_wide)
        full = f"a64_{sign}{name}_{e}_{a.q}"
        if reads_d:
            lo, hi = vec_op(ctx, full, op, [a.rd, a.rn, a.rm])
        else:
            lo, hi = vec_op(ctx, full, lambda vn, vm: op(0, vn, vm), [a.rn, a.rm])
    elif a.opcode in _SQDMULL and not a.u and a.size in (1, 2):
        name, acc = _SQDMULL[a.opcode]
        lo, hi = vec_op_saturating(ctx, f"a64_{name}_{e}_{a.q}", _sqdmull(e, a.q, acc),
                                   [a.rd, a.rn, a.rm])
    elif a.opcode == 14 and not a.u and a.size == 0:  # PMULL, PMULL2 (bytes)
        op = _long(lambda d, x, y: poly_mul(x, y), 8, a.q, False, False)
        lo, hi = vec_op(ctx, f"a64_pmull_8_{a.q}", lambda vn, vm: op(0, vn, vm), [a.rn, a.rm])
    else:
        return False
    write_v(ctx, a.rd, lo, hi)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")]
