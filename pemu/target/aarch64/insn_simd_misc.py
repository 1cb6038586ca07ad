"""Advanced SIMD two-register miscellaneous (integer), across-lanes and shift-by-
immediate instructions: compares with zero, NOT/CNT/ABS/NEG/CLS/CLZ/RBIT/REV*, pairwise
long adds, the narrowing XTN family with saturation, SHLL; ADDV/[SU]ADDLV/[SU]MAXV/
[SU]MINV; right shifts with rounding, accumulation and insertion, SHL/SLI, the
saturating left shifts, the narrowing SHRN family and SSHLL/USHLL.

Each lane operation is a Python function of 128-bit values, computed by one pure
helper (vector_ops.full_helper) named after the operation and its parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Const
from pemu.accel.tcg.opcodes import NOT
from pemu.target.aarch64 import insn_simd_fp
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.simd_common import (
    call2,
    full_width,
    is_scalar,
    lane_count,
    read_v,
    vec_op,
    vec_op_saturating,
    write_narrow,
    write_v,
)
from pemu.target.aarch64.vector_ops import binary_helper, lanes, pack, saturate, signed

_COMPARE_ZERO = {(0, 9): "cmeq", (0, 8): "cmgt", (1, 8): "cmge"}
_COMPARE_ZERO_SWAPPED = {(1, 9): "cmge", (0, 10): "cmgt"}  # CMLE: 0 >= x, CMLT: 0 > x


def _cls(x: int, e: int) -> int:
    return (e - 1) - ((x >> 1) ^ (x & ((1 << (e - 1)) - 1))).bit_length()


def _reverse(container: int) -> Callable[[int, int, list[int]], list[int]]:
    """REV16/REV32/REV64: the lane order reversed inside each container."""
    def fn(e: int, n: int, xs: list[int]) -> list[int]:
        g = container // e
        return [xs[(i // g) * g + (g - 1 - i % g)] for i in range(n)]
    return fn


# (U, opcode) -> (name, lane function (x, esize) -> value, the largest size field)
_ELEMENTWISE: dict[tuple[int, int], tuple[str, Callable[[int, int], int], int]] = {
    (0, 4): ("cls", _cls, 2),
    (1, 4): ("clz", lambda x, e: e - x.bit_length(), 2),
    (0, 11): ("abs", lambda x, e: abs(signed(x, e)), 3),
    (1, 11): ("neg", lambda x, e: -signed(x, e), 3),
}
_REVERSE = {(0, 0): (64, 2), (1, 0): (32, 1), (0, 1): (16, 0)}  # container, largest size
_SATURATING_UNARY = {(0, 7): ("sqabs", abs), (1, 7): ("sqneg", lambda v: -v)}
# narrowing (U, opcode) -> (name, source signed, result signed, saturating)
_NARROW = {(0, 18): ("xtn", False, False, False), (1, 18): ("sqxtun", True, False, True),
           (0, 20): ("sqxtn", True, True, True), (1, 20): ("uqxtn", False, False, True)}


def narrowing(name: str, e: int, src_signed: bool, dst_signed: bool, sat: bool,
              shift: int = 0, rounding: bool = False, n: int = 0
              ) -> Callable[[int], tuple[int, bool]]:
    """n (64 bits' worth by default) e-bit lanes from the 2e-bit lanes of a 128-bit
    value, each shifted right (rounded) first: (value, saturated)."""
    def fn(v: int) -> tuple[int, bool]:
        out, qc = [], False
        for x in lanes(v, 2 * e, n or 64 // e):
            x = signed(x, 2 * e) if src_signed else x
            if shift:
                x = (x + (1 << (shift - 1)) if rounding else x) >> shift
            if sat:
                x, s = saturate(x, e, dst_signed)
                qc |= s
            out.append(x)
        return pack(out, e), qc
    return fn


def _narrow(ctx: DisasContext, a, name: str, fn: Callable[[int], tuple[int, bool]],
            sat: bool) -> None:
    if sat:
        lo, _ = vec_op_saturating(ctx, name, fn, [a.rn])
    else:
        lo, _ = vec_op(ctx, name, lambda v: fn(v)[0], [a.rn])
    write_narrow(ctx, a.rd, lo, a.q)


def widening(e: int, upper: int, is_signed: bool, shift: int) -> Callable[[int], int]:
    """The 2e-bit lanes of the lower (or upper) half's e-bit lanes, shifted left."""
    def fn(v: int) -> int:
        xs = lanes(v >> (64 * upper), e, 64 // e)
        return pack([(signed(x, e) if is_signed else x) << shift for x in xs], 2 * e)
    return fn


def trans_SIMD_MISC(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    nlo, nhi = read_v(ctx, a.rn)
    esize = 8 << a.size
    n = lane_count(a, esize)
    key = (a.u, a.opcode)
    zero = Const(0)
    tag = f"{n}x{esize}"
    if is_scalar(a) and not (key in _SATURATING_UNARY or (key in _NARROW and _NARROW[key][3])
                             or (a.size == 3 and (key in _COMPARE_ZERO or key in
                                                  _COMPARE_ZERO_SWAPPED or a.opcode == 11))):
        return False
    if key in _COMPARE_ZERO or key in _COMPARE_ZERO_SWAPPED:
        if a.size == 3 and not full_width(a):
            return False
        if key in _COMPARE_ZERO:
            ins = [nlo, nhi, zero, zero]
            helper = binary_helper(_COMPARE_ZERO[key], esize, n)
        else:
            ins = [zero, zero, nlo, nhi]
            helper = binary_helper(_COMPARE_ZERO_SWAPPED[key], esize, n)
        lo, hi = call2(ctx, helper, ins)
    elif key == (1, 5) and a.size == 0:  # NOT
        lo, hi = ctx.temp(), ctx.temp()
        b.unop(NOT, lo, nlo)
        b.unop(NOT, hi, nhi)
    elif key == (0, 5) and a.size == 0:  # CNT
        lo, hi = vec_op(ctx, f"a64_cnt_{n}", lambda v: pack(
            [x.bit_count() for x in lanes(v, 8, n)], 8), [a.rn])
    elif key == (1, 5) and a.size == 1:  # RBIT
        lo, hi = vec_op(ctx, f"a64_rbit_{n}", lambda v: pack(
            [int(f"{x:08b}"[::-1], 2) for x in lanes(v, 8, 16 if a.q else 8)], 8), [a.rn])
    elif key in _ELEMENTWISE:
        name, fn, largest = _ELEMENTWISE[key]
        if a.size > largest or (a.size == 3 and not full_width(a)):
            return False
        lo, hi = vec_op(ctx, f"a64_{name}_{tag}", lambda v: pack(
            [fn(x, esize) for x in lanes(v, esize, n)], esize), [a.rn])
    elif key in _REVERSE:
        container, largest = _REVERSE[key]
        if a.size > largest:
            return False
        order = _reverse(container)
        lo, hi = vec_op(ctx, f"a64_rev{container}_{tag}", lambda v: pack(
            order(esize, n, lanes(v, esize, n)), esize), [a.rn])
    elif key in _SATURATING_UNARY:
        name, fn = _SATURATING_UNARY[key]
        if a.size == 3 and not full_width(a):
            return False

        def sat_unary(v: int) -> tuple[int, bool]:
            results = [saturate(fn(signed(x, esize)), esize, True) for x in lanes(v, esize, n)]
            return pack([r for r, _ in results], esize), any(s for _, s in results)
        lo, hi = vec_op_saturating(ctx, f"a64_{name}_{tag}", sat_unary, [a.rn])
    elif a.opcode in (2, 6) and a.size < 3:  # [SU]ADDLP, [SU]ADALP: pairwise, long
        is_signed, acc = not a.u, a.opcode == 6

        def pairs(*vs: int) -> int:
            xs = [signed(x, esize) if is_signed else x for x in lanes(vs[-1], esize, n)]
            sums = [xs[i] + xs[i + 1] for i in range(0, n, 2)]
            if acc:
                sums = [s + d for s, d in zip(sums, lanes(vs[0], 2 * esize, n // 2),
                                              strict=True)]
            return pack(sums, 2 * esize)
        name = f"a64_{'s' if is_signed else 'u'}{'adal' if acc else 'addl'}p_{tag}"
        lo, hi = vec_op(ctx, name, pairs, [a.rd, a.rn] if acc else [a.rn])
    elif key in _NARROW and a.size < 3:
        name, src_signed, dst_signed, sat = _NARROW[key]
        lanes_out = 1 if is_scalar(a) else 64 // esize
        _narrow(ctx, a, f"a64_{name}_{lanes_out}x{esize}",
                narrowing(name, esize, src_signed, dst_signed, sat, n=lanes_out), sat)
        return None
    elif key == (1, 19) and a.size < 3:  # SHLL, SHLL2
        lo, hi = vec_op(ctx, f"a64_shll_{esize}_{a.q}", widening(esize, a.q, False, esize),
                        [a.rn])
        write_v(ctx, a.rd, lo, hi)
        return None
    else:
        return False
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _across(fn: Callable[[list[int]], int], is_signed: bool, long: bool):
    def make(e: int, n: int) -> Callable[[int], int]:
        def op(v: int) -> int:
            xs = [signed(x, e) if is_signed else x for x in lanes(v, e, n)]
            return fn(xs) & ((1 << (2 * e if long else e)) - 1)
        return op
    return make


_ACROSS = {(1, 10): ("umaxv", _across(max, False, False)),
           (1, 26): ("uminv", _across(min, False, False)),
           (0, 10): ("smaxv", _across(max, True, False)),
           (0, 26): ("sminv", _across(min, True, False)),
           (0, 27): ("addv", _across(sum, False, False)),
           (0, 3): ("saddlv", _across(sum, True, True)),
           (1, 3): ("uaddlv", _across(sum, False, True))}


def trans_SIMD_ACROSS(ctx: DisasContext, a) -> bool | None:
    if a.u and a.opcode in (12, 15):
        return insn_simd_fp.across_lanes(ctx, a)
    entry = _ACROSS.get((a.u, a.opcode))
    if entry is None or a.size == 3 or (a.size == 2 and not a.q):
        return False
    esize = 8 << a.size
    n = lane_count(a, esize)
    lo, _ = vec_op(ctx, f"a64_{entry[0]}_{n}x{esize}", entry[1](esize, n), [a.rn])
    write_v(ctx, a.rd, lo, Const(0), 0)
    return None


def _right_shift(e: int, n: int, shift: int, is_signed: bool, rounding: bool, acc: bool):
    """[SU]SHR, [SU]RSHR, [SU]SRA, [SU]RSRA: fn(d, v)."""
    def fn(d: int, v: int) -> int:
        out = []
        for x in lanes(v, e, n):
            x = signed(x, e) if is_signed else x
            out.append((x + (1 << (shift - 1)) if rounding else x) >> shift)
        if acc:
            out = [r + y for r, y in zip(out, lanes(d, e, n), strict=True)]
        return pack(out, e)
    return fn


def _insert(e: int, n: int, shift: int, left: bool):
    """SLI, SRI: the shifted lanes over Vd, Vd's bits kept where nothing was shifted."""
    ones = (1 << e) - 1
    keep = ~(ones << shift) & ones if left else ~(ones >> shift) & ones

    def fn(d: int, v: int) -> int:
        moved = [(x << shift if left else x >> shift) for x in lanes(v, e, n)]
        return pack([(y & keep) | m for y, m in zip(lanes(d, e, n), moved, strict=True)], e)
    return fn


def _left_saturating(e: int, n: int, shift: int, src_signed: bool, dst_signed: bool):
    def fn(v: int) -> tuple[int, bool]:
        results = [saturate((signed(x, e) if src_signed else x) << shift, e, dst_signed)
                   for x in lanes(v, e, n)]
        return pack([r for r, _ in results], e), any(s for _, s in results)
    return fn


# narrowing shifts (U, opcode) -> (name, source signed, result signed, saturating, round)
_SHIFT_NARROW = {(0, 16): ("shrn", False, False, False, False),
                 (0, 17): ("rshrn", False, False, False, True),
                 (1, 16): ("sqshrun", True, False, True, False),
                 (1, 17): ("sqrshrun", True, False, True, True),
                 (0, 18): ("sqshrn", True, True, True, False),
                 (0, 19): ("sqrshrn", True, True, True, True),
                 (1, 18): ("uqshrn", False, False, True, False),
                 (1, 19): ("uqrshrn", False, False, True, True)}


def trans_SIMD_SHIFT(ctx: DisasContext, a) -> bool | None:
    if a.immh == 0:
        return False  # SIMD_MODIMM's space
    esize = 8 << (a.immh.bit_length() - 1)
    immhb = a.immh << 3 | a.immb
    right, left = 2 * esize - immhb, immhb - esize
    key = (a.u, a.opcode)
    if is_scalar(a) and not (a.opcode in (12, 14) or (key in _SHIFT_NARROW and
                                                      _SHIFT_NARROW[key][3])
                             or (esize == 64 and a.opcode in (0, 2, 4, 6, 8, 10))):
        return False
    if key in _SHIFT_NARROW or a.opcode == 20:
        if esize == 64:
            return False
        if a.opcode == 20:  # SSHLL, USHLL (SXTL, UXTL)
            lo, hi = vec_op(ctx, f"a64_{'us'[a.u ^ 1]}shll_{esize}_{a.q}_{left}",
                            widening(esize, a.q, not a.u, left), [a.rn])
            write_v(ctx, a.rd, lo, hi)
            return None
        name, src_signed, dst_signed, sat, rounding = _SHIFT_NARROW[key]
        lanes_out = 1 if is_scalar(a) else 64 // esize
        _narrow(ctx, a, f"a64_{name}_{lanes_out}x{esize}_{right}",
                narrowing(name, esize, src_signed, dst_signed, sat, right, rounding,
                          lanes_out), sat)
        return None
    if esize == 64 and not full_width(a):
        return False
    n = lane_count(a, esize)
    tag = f"{n}x{esize}"
    s = "us"[a.u ^ 1]
    if a.opcode in (0, 2, 4, 6):  # [SU]SHR, [SU]SRA, [SU]RSHR, [SU]RSRA
        rounding, acc = a.opcode >= 4, a.opcode in (2, 6)
        name = f"a64_{s}{'r' if rounding else ''}{'sra' if acc else 'shr'}_{tag}_{right}"
        lo, hi = vec_op(ctx, name, _right_shift(esize, n, right, not a.u, rounding, acc),
                        [a.rd, a.rn])
    elif key == (1, 8):  # SRI
        lo, hi = vec_op(ctx, f"a64_sri_{tag}_{right}", _insert(esize, n, right, False),
                        [a.rd, a.rn])
    elif key == (1, 10):  # SLI
        lo, hi = vec_op(ctx, f"a64_sli_{tag}_{left}", _insert(esize, n, left, True),
                        [a.rd, a.rn])
    elif key == (0, 10):  # SHL
        lo, hi = vec_op(ctx, f"a64_shl_{tag}_{left}", lambda v: pack(
            [x << left for x in lanes(v, esize, n)], esize), [a.rn])
    elif a.opcode == 14 or key == (1, 12):  # SQSHL, UQSHL, SQSHLU (immediate)
        src_signed, dst_signed = (True, False) if a.opcode == 12 else (not a.u, not a.u)
        name = f"a64_{'sqshlu' if a.opcode == 12 else s + 'qshl'}i_{tag}_{left}"
        lo, hi = vec_op_saturating(ctx, name, _left_saturating(esize, n, left, src_signed,
                                                               dst_signed), [a.rn])
    else:
        return False
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")]
