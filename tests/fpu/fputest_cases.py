"""Operand generators for the FPU oracle tests: edge values and case generators.

The generators aim at the places where soft-float goes wrong: the subnormal
boundary (underflow after rounding), overflow, exact ties, massive
cancellation, signed zeros, NaN quieting and the integer conversion limits.

They are written against a tiny `Source` of choices so the same code can be
driven by hypothesis (edge-seeking draws, used for a modest number of cases
because each hypothesis draw is slow) and by a seeded random.Random (cheap,
for bulk volume).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

from pemu.fpu import arith
from pemu.fpu.formats import F32, F64, FloatFormat

FORMATS = {"f32": F32, "f64": F64}
ROUNDING_MODES = (0, 1, 2, 3, 4)
ARITH = ("add", "sub", "mul", "div")
FMA = ("fmadd", "fmsub", "fnmsub", "fnmadd")
COMPARE = ("min", "max", "eq", "lt", "le")
TO_INT = ("to_i32", "to_u32", "to_i64", "to_u64")
FROM_INT = {"from_i32": 32, "from_u32": 32, "from_i64": 64, "from_u64": 64}

Case = tuple[str, int, int, int, int]  # (op, rm, a, b, c)
T = TypeVar("T")


class Source(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...
    def pick(self, options: Sequence[T]) -> T: ...


class RandomSource:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def pick(self, options: Sequence[T]) -> T:
        return self._rng.choice(options)


class HypothesisSource:
    def __init__(self, draw: Callable[[st.SearchStrategy], Any]) -> None:
        self._draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def pick(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))


def hypothesis_cases(generator: Callable[[Source], Case]) -> st.SearchStrategy:
    """A hypothesis strategy producing cases from one of the generators below."""
    return st.composite(lambda draw: generator(HypothesisSource(draw)))()


def random_cases(generator: Callable[[Source], Case], count: int, seed: int) -> list[Case]:
    src = RandomSource(seed)
    return [generator(src) for _ in range(count)]


# ---------------------------------------------------------------- values


def _bits(fmt: FloatFormat, negative: bool, exp_field: int, frac: int) -> int:
    return (fmt.sign_bit if negative else 0) | (exp_field << fmt.frac_bits) | frac


def edge_values(fmt: FloatFormat, small: bool = False) -> list[int]:
    """Hand-picked encodings, both signs. `small` keeps a subset for triple products."""
    one = fmt.bias << fmt.frac_bits
    core = [
        0,
        1,  # smallest subnormal
        fmt.frac_mask,  # largest subnormal
        fmt.hidden_bit,  # smallest normal
        fmt.max_finite,
        fmt.inf_bits,
        fmt.canonical_nan,
        fmt.inf_bits | 1,  # signalling NaN
        one,
        one | 1,  # 1 + ulp
    ]
    if small:
        return core + [x | fmt.sign_bit for x in core]
    extra = [
        2,
        fmt.frac_mask - 1,
        fmt.hidden_bit | 1,
        fmt.hidden_bit | fmt.frac_mask,  # just below 2 * min normal
        fmt.max_finite - 1,
        fmt.inf_bits | fmt.quiet_bit | 0x55,  # quiet NaN with payload
        fmt.inf_bits | (fmt.quiet_bit - 1),
        one - 1,  # 1 - ulp/2
        one + fmt.quiet_bit,  # 1.5
        (fmt.bias + 1) << fmt.frac_bits,  # 2
        ((fmt.bias + 1) << fmt.frac_bits) | fmt.quiet_bit,  # 3
        (fmt.bias - 1) << fmt.frac_bits,  # 0.5
        (fmt.bias + fmt.precision) << fmt.frac_bits,  # 2**p (ulp 2)
        (fmt.bias - fmt.precision) << fmt.frac_bits,
        (fmt.exp_max_field - 2) << fmt.frac_bits,
        2 << fmt.frac_bits,
    ]
    vals = core + extra
    return vals + [x | fmt.sign_bit for x in vals]


def _sign(src: Source) -> bool:
    return src.integer(0, 1) == 1


def fraction(src: Source, fmt: FloatFormat) -> int:
    """Fraction fields biased towards few set bits (ties) and long runs of ones (carries)."""
    kind = src.integer(0, 4)
    if kind == 0:
        return src.integer(0, fmt.frac_mask)
    if kind in (1, 2):
        sparse = 0
        for _ in range(src.integer(0, 3)):
            sparse |= 1 << src.integer(0, fmt.frac_bits - 1)
        return sparse if kind == 1 else fmt.frac_mask ^ sparse
    if kind == 3:
        return src.pick([0, 1, fmt.frac_mask, fmt.quiet_bit, fmt.quiet_bit + 1])
    # a tie (or near tie) at a random rounding position
    pos = src.integer(1, fmt.frac_bits - 1)
    high = src.integer(0, fmt.frac_mask >> pos) << pos
    return high | ((1 << (pos - 1)) + src.pick([0, 0, 1, -1]))


def value(src: Source, fmt: FloatFormat, exp_field: int | None = None) -> int:
    """One encoding: an edge value, a structured one, or uniform random bits.

    With exp_field given, a structured value with that (clamped) exponent.
    """
    if exp_field is None:
        kind = src.integer(0, 5)
        if kind == 0:
            return src.pick(edge_values(fmt))
        if kind == 1:
            return src.integer(0, (1 << fmt.width) - 1)
        if kind == 2:
            top = fmt.exp_max_field
            exp_field = src.pick([0, 1, 2, fmt.bias - 1, fmt.bias, fmt.bias + 1, top - 1, top])
        else:
            exp_field = src.integer(0, fmt.exp_max_field)
    exp_field = min(max(exp_field, 0), fmt.exp_max_field)
    return _bits(fmt, _sign(src), exp_field, fraction(src, fmt))


def _exp_of(fmt: FloatFormat, x: int) -> int:
    return (x >> fmt.frac_bits) & fmt.exp_max_field


def binary_operands(src: Source, fmt: FloatFormat, op: str) -> tuple[int, int]:
    """(a, b), often with b's exponent tied to a's so the result lands near an edge."""
    a = value(src, fmt)
    if src.integer(0, 2) == 0:
        return a, value(src, fmt)
    ea = _exp_of(fmt, a)
    p = fmt.precision
    if op in ("add", "sub"):
        # close exponents: cancellation, ties and carries
        return a, value(src, fmt, ea + src.integer(-p - 3, p + 3))
    # aim the result exponent at the subnormal range or the overflow threshold
    if _sign(src):
        target = src.integer(-p - 2, 3)
    else:
        target = src.integer(fmt.exp_max_field - 3, fmt.exp_max_field + 1)
    eb = target + fmt.bias - ea if op == "mul" else ea + fmt.bias - target
    return a, value(src, fmt, eb)


def threshold_operands(src: Source, fmt: FloatFormat, op: str) -> tuple[int, int]:
    """(a, b) whose product or quotient lies within a few ulps of the smallest
    normal or the largest finite number: underflow after rounding, overflow.

    Uses pemu's own mul/div only to *find* such operands; the oracle judges.
    """
    b = value(src, fmt, src.integer(fmt.bias - 40, fmt.bias + 40))
    if _sign(src):
        target = fmt.hidden_bit + src.integer(-4, 4)
    else:
        target = fmt.max_finite - src.integer(0, 4)
    target |= fmt.sign_bit if _sign(src) else 0
    rm = src.pick(ROUNDING_MODES)
    if op == "mul":
        a = arith.div(fmt, target, b, rm)[0]
    else:
        a = arith.mul(fmt, target, b, rm)[0]
    return a, b


def fma_operands(src: Source, fmt: FloatFormat) -> tuple[int, int, int]:
    """(a, b, c) with c often close to a*b (cancellation) or the product near an edge."""
    if src.integer(0, 3) == 0:
        a, b = threshold_operands(src, fmt, "mul")
    else:
        a, b = binary_operands(src, fmt, "mul")
    kind = src.integer(0, 2)
    if kind == 0:
        return a, b, value(src, fmt)
    if kind == 1:
        # c within a few ulps of -(a*b): cancellation down to tiny or zero results
        near = arith.mul(fmt, a, b, src.pick(ROUNDING_MODES))[0] ^ fmt.sign_bit
        return a, b, (near + src.integer(-3, 3)) & ((1 << fmt.width) - 1)
    product_exp = _exp_of(fmt, a) + _exp_of(fmt, b) - fmt.bias
    p = fmt.precision
    return a, b, value(src, fmt, product_exp + src.integer(-2 * p, p + 2))


def _encode_exact(fmt: FloatFormat, m: int, e: int) -> int:
    """Encode m * 2**e, which must be representable in fmt."""
    if e + m.bit_length() - 1 < fmt.emin:
        return m << (e - fmt.qmin)
    shift = fmt.precision - m.bit_length()
    return ((e - shift + fmt.frac_bits + fmt.bias) << fmt.frac_bits) | (
        (m << shift) & fmt.frac_mask
    )


def sqrt_operand(src: Source, fmt: FloatFormat) -> int:
    """Mostly positive values, some exact squares of short significands."""
    if _sign(src):
        x = value(src, fmt)
        return x & fmt.mag_mask if src.integer(0, 3) else x
    root = src.integer(1, (1 << (fmt.precision // 2)) - 1)
    square = root * root
    scale = src.integer(fmt.qmin // 2 + 1, (fmt.emax - square.bit_length()) // 2) * 2
    return _encode_exact(fmt, square, scale)


INT_LIMITS = (8, 16, 23, 24, 25, 31, 32, 52, 53, 54, 63, 64)


def to_int_operand(src: Source, fmt: FloatFormat) -> int:
    """Values around the integer conversion limits and around small halves."""
    kind = src.integer(0, 2)
    if kind == 0:
        return value(src, fmt)
    if kind == 1:
        # magnitudes from 2**-2 to 2**66: halves, limits, saturation
        return value(src, fmt, fmt.bias + src.integer(-2, 66))
    # just around +-2**n: the all-ones and the minimal fraction patterns
    exp_field = fmt.bias + src.pick(INT_LIMITS) - src.integer(0, 1)
    frac = src.pick([0, 1, fmt.frac_mask, fmt.frac_mask - 1, fmt.quiet_bit])
    return _bits(fmt, _sign(src), exp_field, frac)


def from_int_operand(src: Source, width: int) -> int:
    """Integers (as width-bit patterns) with ties and carries at the float precisions."""
    mask = (1 << width) - 1
    kind = src.integer(0, 3)
    if kind == 0:
        return src.integer(0, mask)
    if kind == 1:
        return src.pick([0, 1, mask, mask >> 1, (mask >> 1) + 1, 3, 5])
    top = src.integer(0, width - 1)
    low = src.integer(0, top)
    v = (1 << top) | (1 << low) if kind == 2 else ((1 << (top + 1)) - 1) ^ (1 << low)
    v = (v + src.pick([0, 0, 1, -1])) & mask
    return (-v) & mask if _sign(src) else v


def narrowing_operand(src: Source) -> int:
    """f64 values whose f32 rounding is interesting: edges of the f32 range, ties."""
    if _sign(src):
        return value(src, F64)
    kind = src.integer(0, 2)
    if kind == 0:
        exp32 = src.integer(F32.qmin - 3, F32.emin + 2)
    elif kind == 1:
        exp32 = src.integer(F32.emax - 2, F32.emax + 1)
    else:
        exp32 = src.integer(-30, 30)
    drop = F64.frac_bits - F32.frac_bits  # the 29 bits below an f32 ulp
    half = 1 << (drop - 1)
    tail = src.pick([0, half, half + 1, half - 1, (1 << drop) - 1, src.integer(0, (1 << drop) - 1)])
    keep = src.pick([src.integer(0, F32.frac_mask), F32.frac_mask]) << drop
    return _bits(F64, _sign(src), exp32 + F64.bias, keep | tail)


# ---------------------------------------------------------------- whole cases


def _format(src: Source) -> tuple[str, FloatFormat]:
    prefix = src.pick(("f32", "f64"))
    return prefix, FORMATS[prefix]


def arith_case(src: Source) -> Case:
    prefix, fmt = _format(src)
    rm = src.pick(ROUNDING_MODES)
    kind = src.pick(ARITH + ("sqrt",) + FMA)
    if kind == "sqrt":
        return (f"{prefix}_sqrt", rm, sqrt_operand(src, fmt), 0, 0)
    if kind in FMA:
        a, b, c = fma_operands(src, fmt)
        return (f"{prefix}_{kind}", rm, a, b, c)
    if kind in ("mul", "div") and src.integer(0, 3) == 0:
        a, b = threshold_operands(src, fmt, kind)
    else:
        a, b = binary_operands(src, fmt, kind)
    return (f"{prefix}_{kind}", rm, a, b, 0)


def compare_case(src: Source) -> Case:
    prefix, fmt = _format(src)
    a = value(src, fmt)
    # equal magnitudes, sign flips and neighbours matter most for comparisons
    b = src.pick([value(src, fmt), a, a ^ fmt.sign_bit, (a + 1) & ((1 << fmt.width) - 1)])
    return (f"{prefix}_{src.pick(COMPARE)}", 0, a, b, 0)


def conversion_case(src: Source) -> Case:
    prefix, fmt = _format(src)
    rm = src.pick(ROUNDING_MODES)
    kind = src.integer(0, 3)
    if kind == 0:
        return (f"{prefix}_{src.pick(TO_INT)}", rm, to_int_operand(src, fmt), 0, 0)
    if kind == 1:
        op = src.pick(sorted(FROM_INT))
        return (f"{prefix}_{op}", rm, from_int_operand(src, FROM_INT[op]), 0, 0)
    if kind == 2:
        return ("f64_to_f32", rm, narrowing_operand(src), 0, 0)
    return ("f32_to_f64", rm, value(src, F32), 0, 0)


def fast_path_case(src: Source) -> Case:
    """RNE arithmetic on normal operands: the cases the host-float fast path takes."""
    prefix, fmt = _format(src)
    a = value(src, fmt, src.integer(1, fmt.exp_max_field - 1))
    op = src.pick(ARITH + ("sqrt",))
    if op == "sqrt":
        return (f"{prefix}_sqrt", 0, a & fmt.mag_mask, 0, 0)
    if _sign(src):
        b = value(src, fmt, src.integer(1, fmt.exp_max_field - 1))
    else:
        b = binary_operands(src, fmt, op)[1]
    return (f"{prefix}_{op}", 0, a, b, 0)
