"""add/sub/mul/div/sqrt with a fast path on the host's IEEE-754 doubles.

Python floats are binary64 with round-to-nearest-even, so in RNE the host
computes the correctly rounded result; what it does not report are the
exception flags.  Each fast path therefore only answers when it can prove
the flags too, and otherwise hands over to the exact integer code in arith:

* Overflow and underflow are excluded by requiring a finite result whose
  magnitude is strictly above the smallest normal (tininess is detected after
  rounding, and a rounded result > 2**emin can only come from an exact value
  > 2**emin).  Sums need no lower bound: a sum that lands below 2**emin is
  always exact (both operands are multiples of the finest quantum).
* Inexactness: for sums the TwoSum error term (exact when nothing overflows;
  an overflow inside it shows up as inf/nan and we fall back); for f64
  products and quotients, integer tests on the significands; for square
  roots, squaring the root.
* binary32 is computed in binary64 and rounded once more.  For + - * / sqrt
  that double rounding is known to be innocuous (53 >= 2*24 + 2), and the
  binary64 product of two binary32 values is always exact.

Everything other than RNE, and every operand or result outside the cases
above, goes to arith unchanged.
"""

from __future__ import annotations

import struct
from math import inf, sqrt

from . import arith
from .flags import NX
from .formats import F32, F64

_f64_pair = struct.Struct("<2Q").pack
_as_f64_pair = struct.Struct("<2d").unpack
_f64_bytes = struct.Struct("<d").pack
_as_f64 = struct.Struct("<d").unpack
_bits64 = struct.Struct("<Q").unpack
_u64_bytes = struct.Struct("<Q").pack
_f32_pair = struct.Struct("<2I").pack
_as_f32_pair = struct.Struct("<2f").unpack
_f32_bytes = struct.Struct("<f").pack
_as_f32 = struct.Struct("<f").unpack
_bits32 = struct.Struct("<I").unpack
_u32_bytes = struct.Struct("<I").pack

_F64_SIGN = F64.sign_bit
_F64_MAG = F64.mag_mask
_F64_INF = F64.inf_bits
_F64_MIN_NORMAL_BITS = F64.hidden_bit
_F64_FRAC = F64.frac_mask
_F64_EXP = F64.inf_bits
_F64_HIDDEN = F64.hidden_bit
_F64_MIN_NORMAL = 2.0**F64.emin
_F32_SIGN = F32.sign_bit
_F32_MIN_NORMAL = 2.0**F32.emin
_F32_MAX = (2.0 - 2.0**-23) * 2.0**127


def f64_add(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0:
        x, y = _as_f64_pair(_f64_pair(a, b))
        s = x + y
        if -inf < s < inf:  # also rejects NaN operands
            t = s - x
            err = (x - (s - t)) + (y - t)
            if err == 0.0:
                return _bits64(_f64_bytes(s))[0], 0
            if -inf < err < inf:
                return _bits64(_f64_bytes(s))[0], NX
    return arith.add(F64, a, b, rm)


def f64_sub(a: int, b: int, rm: int) -> tuple[int, int]:
    return f64_add(a, b ^ _F64_SIGN, rm)


def _f64_significand(x: int) -> int:
    return (x & _F64_FRAC) | _F64_HIDDEN if x & _F64_EXP else x & _F64_FRAC


def f64_mul(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0:
        x, y = _as_f64_pair(_f64_pair(a, b))
        r = x * y
        if _F64_MIN_NORMAL < abs(r) < inf:  # so a and b are finite and nonzero
            bits = _bits64(_f64_bytes(r))[0]
            # The significand product is exact iff it has at most 53 bits from
            # its leading to its trailing one.  Its leading one is at bit 104
            # or above unless an operand is subnormal, so when neither operand
            # ends in 26 zero bits it is certainly inexact (the common case).
            if a & 0x3FFFFFF and b & 0x3FFFFFF and a & _F64_EXP and b & _F64_EXP:
                return bits, NX
            p = _f64_significand(a) * _f64_significand(b)
            return bits, NX if p.bit_length() - (p & -p).bit_length() >= 53 else 0
    return arith.mul(F64, a, b, rm)


def f64_div(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0 and b & _F64_MAG:
        x, y = _as_f64_pair(_f64_pair(a, b))
        r = x / y
        if _F64_MIN_NORMAL < abs(r) < inf:  # so a is finite and nonzero, b finite
            # ma/mb is a dyadic rational (hence exact: its odd part is below
            # 2**53) iff mb's odd part divides ma.
            mb = (b & _F64_FRAC) | _F64_HIDDEN if b & _F64_EXP else b & _F64_FRAC
            ma = (a & _F64_FRAC) | _F64_HIDDEN if a & _F64_EXP else a & _F64_FRAC
            inexact = ma % (mb // (mb & -mb))
            return _bits64(_f64_bytes(r))[0], NX if inexact else 0
    return arith.div(F64, a, b, rm)


def f64_sqrt(a: int, rm: int) -> tuple[int, int]:
    if rm == 0 and _F64_MIN_NORMAL_BITS <= a < _F64_INF:  # positive normal
        bits = _bits64(_f64_bytes(sqrt(_as_f64(_u64_bytes(a))[0])))[0]
        mr = (bits & _F64_FRAC) | _F64_HIDDEN
        # An exact root squares to <= 53 significant bits, so it must end in
        # at least 26 zero bits; that rejects almost every inexact root cheaply.
        if mr & 0x3FFFFFF:
            return bits, NX
        shift = (a >> 52) + 1075 - 2 * (bits >> 52)
        exact = shift >= 0 and mr * mr == ((a & _F64_FRAC) | _F64_HIDDEN) << shift
        return bits, 0 if exact else NX
    return arith.sqrt(F64, a, rm)


def _f32_round(d: float, exact_in_double: bool) -> tuple[int, int]:
    """Round a binary64 intermediate (known to be in the normal f32 range) to f32."""
    raw = _f32_bytes(d)
    return _bits32(raw)[0], 0 if exact_in_double and _as_f32(raw)[0] == d else NX


def f32_add(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0:
        x, y = _as_f32_pair(_f32_pair(a, b))
        s = x + y
        if -_F32_MAX <= s <= _F32_MAX:  # also rejects NaN and infinite operands
            t = s - x
            return _f32_round(s, (x - (s - t)) + (y - t) == 0.0)
    return arith.add(F32, a, b, rm)


def f32_sub(a: int, b: int, rm: int) -> tuple[int, int]:
    return f32_add(a, b ^ _F32_SIGN, rm)


def f32_mul(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0:
        x, y = _as_f32_pair(_f32_pair(a, b))
        d = x * y  # exact: 24 x 24 significand bits, exponents well inside binary64
        if _F32_MIN_NORMAL < abs(d) <= _F32_MAX:
            return _f32_round(d, True)
    return arith.mul(F32, a, b, rm)


def f32_div(a: int, b: int, rm: int) -> tuple[int, int]:
    if rm == 0 and b & F32.mag_mask:
        x, y = _as_f32_pair(_f32_pair(a, b))
        d = x / y
        if _F32_MIN_NORMAL < abs(d) <= _F32_MAX:
            raw = _f32_bytes(d)
            # q * y has at most 48 significant bits, so this product is exact.
            exact = _as_f32(raw)[0] * y == x
            return _bits32(raw)[0], 0 if exact else NX
    return arith.div(F32, a, b, rm)


def f32_sqrt(a: int, rm: int) -> tuple[int, int]:
    if rm == 0 and 0 < a < F32.inf_bits:  # positive, finite, nonzero
        x = _as_f32(_u32_bytes(a))[0]
        raw = _f32_bytes(sqrt(x))
        r = _as_f32(raw)[0]
        return _bits32(raw)[0], 0 if r * r == x else NX  # r * r is exact in binary64
    return arith.sqrt(F32, a, rm)
