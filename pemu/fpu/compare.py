"""Comparisons, min/max and classification (no rounding involved)."""

from __future__ import annotations

from .flags import NV
from .formats import FloatFormat


def _order_key(fmt: FloatFormat, x: int) -> int:
    """An integer that orders non-NaN encodings numerically (both zeros map to 0)."""
    if x & fmt.sign_bit:
        return -(x & fmt.mag_mask)
    return x


def _any_snan(fmt: FloatFormat, a: int, b: int) -> bool:
    return fmt.is_snan(a) or fmt.is_snan(b)


def eq(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    """feq: quiet, NV only for signalling NaNs."""
    if fmt.is_nan(a) or fmt.is_nan(b):
        return 0, NV if _any_snan(fmt, a, b) else 0
    return int(a == b or not ((a | b) & fmt.mag_mask)), 0


def lt(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    """flt: signalling, NV for any NaN."""
    if fmt.is_nan(a) or fmt.is_nan(b):
        return 0, NV
    return int(_order_key(fmt, a) < _order_key(fmt, b)), 0


def le(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    """fle: signalling, NV for any NaN."""
    if fmt.is_nan(a) or fmt.is_nan(b):
        return 0, NV
    return int(_order_key(fmt, a) <= _order_key(fmt, b)), 0


def _min_max(fmt: FloatFormat, a: int, b: int, want_max: bool) -> tuple[int, int]:
    """IEEE 754-2019 minimumNumber/maximumNumber, as RISC-V F 2.2 specifies."""
    a_nan = fmt.is_nan(a)
    b_nan = fmt.is_nan(b)
    if a_nan or b_nan:
        flags = NV if _any_snan(fmt, a, b) else 0
        if a_nan and b_nan:
            return fmt.canonical_nan, flags
        return (b if a_nan else a), flags
    ka = _order_key(fmt, a)
    kb = _order_key(fmt, b)
    if ka != kb:
        return (a if (ka > kb) == want_max else b), 0
    # Equal values differ only for +0 / -0, where -0 counts as the smaller:
    # AND of the encodings clears the sign (max), OR sets it (min).
    return (a & b if want_max else a | b), 0


def fmin(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    return _min_max(fmt, a, b, want_max=False)


def fmax(fmt: FloatFormat, a: int, b: int) -> tuple[int, int]:
    return _min_max(fmt, a, b, want_max=True)


# fclass result bits
CLASS_NEG_INF = 1 << 0
CLASS_NEG_NORMAL = 1 << 1
CLASS_NEG_SUBNORMAL = 1 << 2
CLASS_NEG_ZERO = 1 << 3
CLASS_POS_ZERO = 1 << 4
CLASS_POS_SUBNORMAL = 1 << 5
CLASS_POS_NORMAL = 1 << 6
CLASS_POS_INF = 1 << 7
CLASS_SNAN = 1 << 8
CLASS_QNAN = 1 << 9


def classify(fmt: FloatFormat, x: int) -> int:
    """fclass: a one-hot 10-bit mask."""
    mag = x & fmt.mag_mask
    neg = bool(x & fmt.sign_bit)
    if mag > fmt.inf_bits:
        return CLASS_QNAN if x & fmt.quiet_bit else CLASS_SNAN
    if mag == fmt.inf_bits:
        return CLASS_NEG_INF if neg else CLASS_POS_INF
    if mag == 0:
        return CLASS_NEG_ZERO if neg else CLASS_POS_ZERO
    if mag < fmt.hidden_bit:
        return CLASS_NEG_SUBNORMAL if neg else CLASS_POS_SUBNORMAL
    return CLASS_NEG_NORMAL if neg else CLASS_POS_NORMAL
