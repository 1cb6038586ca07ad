"""Rounding an exact value to a format, with RISC-V exception flags.

The slow paths compute every result exactly as sign * m * 2**e with an
unbounded integer m (divide and square root append a "sticky" low bit that
is set when their infinite tail is nonzero, which is enough for correct
rounding as long as m carries at least two bits beyond the target precision).
round_pack then does the single rounding the ISA requires.
"""

from __future__ import annotations

from .flags import NX, OF, RDN, RMM, RNE, RTZ, RUP, UF
from .formats import FloatFormat


def round_shift(m: int, shift: int, negative: bool, rm: int) -> tuple[int, bool]:
    """Round the magnitude m / 2**shift (shift > 0) to an integer; return (q, inexact).

    `negative` is the sign of the value m belongs to: directed modes round
    the magnitude up or down depending on it.
    """
    q = m >> shift
    rem = m & ((1 << shift) - 1)
    if not rem:
        return q, False
    if rm == RNE:
        half = 1 << (shift - 1)
        if rem > half or (rem == half and q & 1):
            q += 1
    elif rm == RTZ:
        pass
    elif rm == RDN:
        if negative:
            q += 1
    elif rm == RUP:
        if not negative:
            q += 1
    elif rm == RMM:
        if rem >= (1 << (shift - 1)):
            q += 1
    else:
        raise ValueError(f"invalid rounding mode {rm}")
    return q, True


def overflow_result(fmt: FloatFormat, negative: bool, rm: int) -> int:
    """The magnitude an overflowing result takes: infinity or the largest finite number."""
    if rm == RNE or rm == RMM:
        to_inf = True
    elif rm == RTZ:
        to_inf = False
    elif rm == RDN:
        to_inf = negative
    elif rm == RUP:
        to_inf = not negative
    else:
        raise ValueError(f"invalid rounding mode {rm}")
    mag = fmt.inf_bits if to_inf else fmt.max_finite
    return (fmt.sign_bit | mag) if negative else mag


def round_pack(fmt: FloatFormat, negative: bool, m: int, e: int, rm: int) -> tuple[int, int]:
    """Round (-1)**negative * m * 2**e (m > 0) to fmt; return (bits, fflags).

    Tininess is detected after rounding, as RISC-V requires: the value is tiny
    when rounding it to `precision` bits with an unbounded exponent range gives
    a magnitude below 2**emin; UF is raised only if it is tiny and inexact.
    """
    p = fmt.precision
    nbits = m.bit_length()
    top = e + nbits - 1  # exponent of the leading one
    sign = fmt.sign_bit if negative else 0
    emin = fmt.emin
    if top >= emin:
        shift = nbits - p
        if shift <= 0:
            sig = m << -shift
            inexact = False
        else:
            sig, inexact = round_shift(m, shift, negative, rm)
        # sig has its leading one at bit frac_bits (or carried one above it);
        # adding it to the biased exponent minus one makes the hidden bit and a
        # rounding carry land in the exponent field by themselves.
        bits = ((top - emin) << fmt.frac_bits) + sig
        if bits >= fmt.inf_bits:
            return overflow_result(fmt, negative, rm), OF | NX
        return sign | bits, NX if inexact else 0

    # Below the normal range before rounding: round on the subnormal grid.
    shift = fmt.qmin - e
    if shift <= 0:
        return sign | (m << -shift), 0  # an exactly representable subnormal
    sig, inexact = round_shift(m, shift, negative, rm)
    if not inexact:
        return sign | sig, 0
    # sig == hidden_bit is the smallest normal: its encoding is sig itself.
    flags = NX
    if nbits > p and top == emin - 1:
        # Only a carry out of the top binade below 2**emin can make the
        # unbounded-exponent rounding reach 2**emin and so not be tiny.
        wide, _ = round_shift(m, nbits - p, negative, rm)
        if wide >> p == 0:
            flags |= UF
    else:
        flags |= UF
    return sign | sig, flags
