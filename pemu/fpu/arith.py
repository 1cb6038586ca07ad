"""Exact (integer based) arithmetic: add, mul, div, sqrt and fused multiply-add.

These are the reference slow paths for every format and rounding mode.  Each
function handles the special operands (NaN, infinity, zero) by the RISC-V
rules, computes the finite result exactly as an integer significand and a
power of two, and leaves the single rounding to round_pack.
"""

from __future__ import annotations

from math import isqrt

from .flags import DZ, NV, RDN
from .formats import FloatFormat
from .rounding import round_pack


def _nan_result(fmt: FloatFormat, *operands: int) -> tuple[int, int]:
    """Canonical NaN, with NV if any operand is a signalling NaN."""
    for x in operands:
        if fmt.is_snan(x):
            return fmt.canonical_nan, NV
    return fmt.canonical_nan, 0


def _exact_zero_sign(fmt: FloatFormat, rm: int) -> int:
    """Sign of an exact zero sum of nonzero-sum operands: -0 only when rounding down."""
    return fmt.sign_bit if rm == RDN else 0


def _add_signed(
    fmt: FloatFormat, na: bool, ma: int, ea: int, nb: bool, mb: int, eb: int, rm: int
) -> tuple[int, int]:
    """Round the exact sum of two nonzero finite values given as (negative, m, e)."""
    if ea > eb:
        ma <<= ea - eb
        e = eb
    else:
        mb <<= eb - ea
        e = ea
    s = (-ma if na else ma) + (-mb if nb else mb)
    if s == 0:
        return _exact_zero_sign(fmt, rm), 0
    if s < 0:
        return round_pack(fmt, True, -s, e, rm)
    return round_pack(fmt, False, s, e, rm)


def add(fmt: FloatFormat, a: int, b: int, rm: int) -> tuple[int, int]:
    mag = fmt.mag_mask
    inf = fmt.inf_bits
    am = a & mag
    bm = b & mag
    if am >= inf or bm >= inf:
        if am > inf or bm > inf:
            return _nan_result(fmt, a, b)
        if am == inf and bm == inf and a != b:
            return fmt.canonical_nan, NV  # inf - inf
        return (a if am == inf else b), 0
    if am == 0:
        if bm == 0:
            # (+0) + (+0) = +0, (-0) + (-0) = -0, mixed signs follow the exact-zero rule.
            return (a if a == b else _exact_zero_sign(fmt, rm)), 0
        return b, 0
    if bm == 0:
        return a, 0
    ma, ea = fmt.unpack_finite(a)
    mb, eb = fmt.unpack_finite(b)
    sb = fmt.sign_bit
    return _add_signed(fmt, bool(a & sb), ma, ea, bool(b & sb), mb, eb, rm)


def sub(fmt: FloatFormat, a: int, b: int, rm: int) -> tuple[int, int]:
    # Flipping the sign of a NaN cannot change the outcome (results are canonical).
    return add(fmt, a, b ^ fmt.sign_bit, rm)


def mul(fmt: FloatFormat, a: int, b: int, rm: int) -> tuple[int, int]:
    mag = fmt.mag_mask
    inf = fmt.inf_bits
    am = a & mag
    bm = b & mag
    sign = (a ^ b) & fmt.sign_bit
    if am >= inf or bm >= inf:
        if am > inf or bm > inf:
            return _nan_result(fmt, a, b)
        if am == 0 or bm == 0:
            return fmt.canonical_nan, NV  # inf * 0
        return sign | inf, 0
    if am == 0 or bm == 0:
        return sign, 0
    ma, ea = fmt.unpack_finite(a)
    mb, eb = fmt.unpack_finite(b)
    return round_pack(fmt, bool(sign), ma * mb, ea + eb, rm)


def div(fmt: FloatFormat, a: int, b: int, rm: int) -> tuple[int, int]:
    mag = fmt.mag_mask
    inf = fmt.inf_bits
    am = a & mag
    bm = b & mag
    sign = (a ^ b) & fmt.sign_bit
    if am >= inf or bm >= inf:
        if am > inf or bm > inf:
            return _nan_result(fmt, a, b)
        if am == inf:
            if bm == inf:
                return fmt.canonical_nan, NV  # inf / inf
            return sign | inf, 0
        return sign, 0  # finite / inf
    if bm == 0:
        if am == 0:
            return fmt.canonical_nan, NV  # 0 / 0
        return sign | inf, DZ
    if am == 0:
        return sign, 0
    ma, ea = fmt.unpack_finite(a)
    mb, eb = fmt.unpack_finite(b)
    # Scale the dividend so the quotient has precision + 2 bits, then fold the
    # remainder into a sticky bit below them.
    k = max(0, fmt.precision + 2 + mb.bit_length() - ma.bit_length())
    q, r = divmod(ma << k, mb)
    return round_pack(fmt, bool(sign), (q << 1) | (r != 0), ea - eb - k - 1, rm)


def sqrt(fmt: FloatFormat, a: int, rm: int) -> tuple[int, int]:
    am = a & fmt.mag_mask
    if am > fmt.inf_bits:
        return _nan_result(fmt, a)
    if am == 0:
        return a, 0  # sqrt(+-0) = +-0
    if a & fmt.sign_bit:
        return fmt.canonical_nan, NV
    if am == fmt.inf_bits:
        return a, 0
    m, e = fmt.unpack_finite(a)
    if e & 1:
        m <<= 1
        e -= 1
    # Make the integer root carry precision + 2 bits, then a sticky bit.
    k = max(0, fmt.precision + 2 - (m.bit_length() + 1) // 2)
    m <<= 2 * k
    r = isqrt(m)
    return round_pack(fmt, False, (r << 1) | (r * r != m), (e >> 1) - k - 1, rm)


def fma(
    fmt: FloatFormat, a: int, b: int, c: int, rm: int, negate_product: bool, negate_addend: bool
) -> tuple[int, int]:
    """(+-)(a * b) (+-) c with a single rounding.

    RISC-V maps fmadd/fmsub/fnmsub/fnmadd to (negate_product, negate_addend) =
    (F,F)/(F,T)/(T,F)/(T,T); the negations are applied to the operands before
    the exact sum, so the signs of exact-zero results follow from them.
    """
    mag = fmt.mag_mask
    inf = fmt.inf_bits
    sbit = fmt.sign_bit
    am = a & mag
    bm = b & mag
    cm = c & mag
    product_invalid = (am == inf and bm == 0) or (am == 0 and bm == inf)
    if am > inf or bm > inf or cm > inf:
        # RISC-V requires NV for inf * 0 even when the addend is a quiet NaN.
        bits, flags = _nan_result(fmt, a, b, c)
        return bits, flags | (NV if product_invalid else 0)
    if product_invalid:
        return fmt.canonical_nan, NV
    psign = (a ^ b) & sbit
    if negate_product:
        psign ^= sbit
    if negate_addend:
        c ^= sbit
    csign = c & sbit
    if am == inf or bm == inf:
        if cm == inf and csign != psign:
            return fmt.canonical_nan, NV  # inf - inf
        return psign | inf, 0
    if cm == inf:
        return c, 0
    if am == 0 or bm == 0:
        if cm == 0:
            return (psign if psign == csign else (sbit if rm == RDN else 0)), 0
        return c, 0
    ma, ea = fmt.unpack_finite(a)
    mb, eb = fmt.unpack_finite(b)
    if cm == 0:
        return round_pack(fmt, bool(psign), ma * mb, ea + eb, rm)
    mc, ec = fmt.unpack_finite(c)
    return _add_signed(fmt, bool(psign), ma * mb, ea + eb, bool(csign), mc, ec, rm)
