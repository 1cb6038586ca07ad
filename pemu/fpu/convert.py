"""Conversions between formats and to/from integers (fcvt.*)."""

from __future__ import annotations

from .flags import NV, NX
from .formats import FloatFormat
from .rounding import round_pack, round_shift


def to_int(fmt: FloatFormat, x: int, rm: int, width: int, signed: bool) -> tuple[int, int]:
    """Float -> integer of `width` bits, returned as an unsigned bit pattern.

    Out-of-range results saturate per the RISC-V table (NaN and too-large
    positive give the maximum, too-large negative the minimum) and raise NV
    alone; in-range inexact results raise NX.  Range is judged on the rounded
    value, so e.g. -0.4 -> unsigned is 0 with NX, but -1.0 is invalid.
    """
    mask = (1 << width) - 1
    if signed:
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    else:
        lo, hi = 0, mask
    mag = x & fmt.mag_mask
    negative = bool(x & fmt.sign_bit)
    if mag > fmt.inf_bits:
        return hi & mask, NV
    if mag == fmt.inf_bits:
        return (lo if negative else hi) & mask, NV
    if mag == 0:
        return 0, 0
    m, e = fmt.unpack_finite(x)
    if e >= 0:
        if e + m.bit_length() > width + 1:
            return (lo if negative else hi) & mask, NV  # far out of range: skip the shift
        q, inexact = m << e, False
    else:
        q, inexact = round_shift(m, -e, negative, rm)
    v = -q if negative else q
    if v < lo or v > hi:
        return (lo if negative else hi) & mask, NV
    return v & mask, NX if inexact else 0


def from_int(fmt: FloatFormat, v: int, rm: int, width: int, signed: bool) -> tuple[int, int]:
    """Integer (given as a `width`-bit unsigned pattern) -> float."""
    v &= (1 << width) - 1
    if signed and v >> (width - 1):
        v -= 1 << width
    if v == 0:
        return 0, 0
    if v < 0:
        return round_pack(fmt, True, -v, 0, rm)
    return round_pack(fmt, False, v, 0, rm)


def convert(src: FloatFormat, dst: FloatFormat, x: int, rm: int) -> tuple[int, int]:
    """Float -> float of another format; NaNs become dst's canonical NaN."""
    mag = x & src.mag_mask
    sign = dst.sign_bit if x & src.sign_bit else 0
    if mag > src.inf_bits:
        return dst.canonical_nan, NV if src.is_snan(x) else 0
    if mag == src.inf_bits:
        return sign | dst.inf_bits, 0
    if mag == 0:
        return sign, 0
    m, e = src.unpack_finite(x)
    return round_pack(dst, bool(sign), m, e, rm)
