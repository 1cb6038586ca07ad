"""The operations RISC-V Zfa adds, for any format: fli's constants, fminm/fmaxm,
fround/froundnx, fleq/fltq and fcvtmod.w.d.  Same conventions as softfloat.py: raw bit
patterns in, ``(bits, fflags)`` out."""

from __future__ import annotations

import struct

from . import compare, convert
from .flags import NV, NX
from .formats import F64, FloatFormat
from .rounding import round_shift

RNE = 0

# fli's 32 constants by rs1; None stands for the format's smallest normal number
_FLI_VALUES: tuple[float | None, ...] = (
    -1.0, None, 2.0 ** -16, 2.0 ** -15, 2.0 ** -8, 2.0 ** -7, 0.0625, 0.125, 0.25, 0.3125,
    0.375, 0.4375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 8.0,
    16.0, 128.0, 256.0, 2.0 ** 15, 2.0 ** 16, float("inf"), float("nan"))


def fli(fmt: FloatFormat, index: int) -> int:
    """The bits fli loads: the constant rounded to ``fmt`` (2^16 overflows a half to
    infinity, 2^-16 and 2^-15 are subnormal there); index 31 is the canonical NaN."""
    value = _FLI_VALUES[index]
    if value is None:
        return fmt.hidden_bit  # exponent field 1, fraction 0
    if value != value:
        return fmt.canonical_nan
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    return convert.convert(F64, fmt, bits, RNE)[0]


def fminm(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    """IEEE 754-2019 minimum: a NaN operand makes the result the canonical NaN."""
    return _min_max_nan(fmt, a, b, compare.fmin)


def fmaxm(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    return _min_max_nan(fmt, a, b, compare.fmax)


def _min_max_nan(fmt: FloatFormat, a: int, b: int, op) -> tuple[int, int]:
    if fmt.is_nan(a) or fmt.is_nan(b):
        return fmt.canonical_nan, NV if fmt.is_snan(a) or fmt.is_snan(b) else 0
    return op(fmt, a, b)


def fltq(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    """flt without the signalling: NV only for signalling NaNs, as feq."""
    if fmt.is_nan(a) or fmt.is_nan(b):
        return 0, NV if fmt.is_snan(a) or fmt.is_snan(b) else 0
    return compare.lt(fmt, a, b)


def fleq(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    if fmt.is_nan(a) or fmt.is_nan(b):
        return 0, NV if fmt.is_snan(a) or fmt.is_snan(b) else 0
    return compare.le(fmt, a, b)


def fround(fmt: FloatFormat, x: int, rm: int, inexact_flag: bool = False) -> tuple[int, int]:
    """Round to an integral value in the same format (froundnx: ``inexact_flag``)."""
    if fmt.is_nan(x):
        return fmt.canonical_nan, NV if fmt.is_snan(x) else 0
    mag = x & fmt.mag_mask
    if mag == fmt.inf_bits or mag == 0:
        return x, 0
    m, e = fmt.unpack_finite(x)
    if e >= 0:
        return x, 0  # no fraction bits left: already an integer
    negative = bool(x & fmt.sign_bit)
    q, inexact = round_shift(m, -e, negative, rm)
    if q == 0:
        result = x & fmt.sign_bit  # a zero keeps the operand's sign
    else:
        result = convert.from_int(fmt, q, RNE, q.bit_length() + 1, False)[0]
        result |= x & fmt.sign_bit
    return result, NX if inexact and inexact_flag else 0


def fcvtmod_w_d(x: int) -> tuple[int, int]:
    """fcvtmod.w.d: truncate, then keep the integer modulo 2^32 (sign-extended).
    NaN and infinity give 0; NV when the integer does not fit in 32 bits (or for
    NaN/infinity), else NX when a fraction was dropped."""
    fmt = F64
    mag = x & fmt.mag_mask
    if mag >= fmt.inf_bits:
        return 0, NV
    if mag == 0:
        return 0, 0
    m, e = fmt.unpack_finite(x)
    negative = bool(x & fmt.sign_bit)
    if e >= 0:
        q, inexact = m << e, False
    else:
        q, inexact = round_shift(m, -e, negative, 1)  # RTZ
    v = -q if negative else q
    low = v & 0xFFFF_FFFF
    result = low | 0xFFFF_FFFF_0000_0000 if low >> 31 else low
    if not -(1 << 31) <= v < 1 << 31:
        return result, NV
    return result, NX if inexact else 0
