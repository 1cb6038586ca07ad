"""Scalar FP helpers for A64: pemu/fpu's exact soft-float with Arm's rules on top.

pemu.fpu computes on bit patterns with RISC-V's NaN rules (a canonical NaN) and
fflags.  Arm propagates NaN operands instead (FPProcessNaNs: the first signalling
NaN, quieted, else the first quiet NaN), and its default NaN (for invalid operations
on numbers) equals RISC-V's canonical NaN, so only NaN operands need handling here.
Each helper takes the FPCR (rounding mode) and returns (result, FPSR flag bits).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import CALL_PURE, Helper
from pemu.fpu import arith, compare, convert
from pemu.fpu.flags import DZ, NV, NX, OF, RDN, RMM, RNE, RTZ, RUP, UF
from pemu.fpu.formats import F32, F64, FloatFormat
from pemu.fpu.rounding import round_shift

FORMATS = {0: F32, 1: F64}  # the ftype field
# FPSR cumulative bits: IOC 0, DZC 1, OFC 2, UFC 3, IXC 4
_FPSR_OF_FFLAGS = {NV: 1, DZ: 2, OF: 4, UF: 8, NX: 16}
_FLAG_MAP = [sum(bit for ff, bit in _FPSR_OF_FFLAGS.items() if f & ff) for f in range(32)]
# FPCR.RMode (bits 23:22) -> pemu.fpu rounding mode
_RMODE = (RNE, RUP, RDN, RTZ)


def rounding(fpcr: int) -> int:
    return _RMODE[fpcr >> 22 & 3]


def fpsr_flags(fflags: int) -> int:
    return _FLAG_MAP[fflags & 31]


def process_nans(fmt: FloatFormat, *ops: int) -> tuple[int, int] | None:
    """Arm's NaN propagation: (result, FPSR bits), or None when no operand is a NaN."""
    for x in ops:
        if fmt.is_snan(x):
            return x | fmt.quiet_bit, 1
    for x in ops:
        if fmt.is_nan(x):
            return x, 0
    return None


def _binary(fn: Callable[[FloatFormat, int, int, int], tuple[int, int]], fmt: FloatFormat
            ) -> Callable[[int, int, int], tuple[int, int]]:
    mask = (1 << fmt.width) - 1

    def op(a: int, b: int, fpcr: int) -> tuple[int, int]:
        a &= mask
        b &= mask
        nan = process_nans(fmt, a, b)
        if nan is not None:
            return nan
        r, ff = fn(fmt, a, b, rounding(fpcr))
        return r, fpsr_flags(ff)
    return op


def _max_min(want_max: bool, number: bool):
    def fn(fmt: FloatFormat, a: int, b: int, rm: int) -> tuple[int, int]:
        return (compare.fmax if want_max else compare.fmin)(fmt, a, b)

    def op_for(fmt: FloatFormat) -> Callable[[int, int, int], tuple[int, int]]:
        mask = (1 << fmt.width) - 1

        def op(a: int, b: int, fpcr: int) -> tuple[int, int]:
            a &= mask
            b &= mask
            if number and not (fmt.is_snan(a) or fmt.is_snan(b)) and \
                    (fmt.is_nan(a) != fmt.is_nan(b)):
                return (b if fmt.is_nan(a) else a), 0  # FMAXNM/FMINNM: the number wins
            nan = process_nans(fmt, a, b)
            if nan is not None:
                return nan
            r, ff = fn(fmt, a, b, 0)
            return r, fpsr_flags(ff)
        return op
    return op_for


_BINARY_OPS: dict[str, Callable[[FloatFormat], Callable[[int, int, int], tuple[int, int]]]] = {
    "fmul": lambda fmt: _binary(arith.mul, fmt),
    "fdiv": lambda fmt: _binary(arith.div, fmt),
    "fadd": lambda fmt: _binary(arith.add, fmt),
    "fsub": lambda fmt: _binary(arith.sub, fmt),
    "fmax": _max_min(True, False),
    "fmin": _max_min(False, False),
    "fmaxnm": _max_min(True, True),
    "fminnm": _max_min(False, True),
}
BINARY = {(name, t): Helper(f"a64_{name}_{fmt.name}", make(fmt), flags=CALL_PURE, n_out=2)
          for name, make in _BINARY_OPS.items() for t, fmt in FORMATS.items()}


def _sqrt(fmt: FloatFormat) -> Callable[[int, int], tuple[int, int]]:
    def op(a: int, fpcr: int) -> tuple[int, int]:
        a &= (1 << fmt.width) - 1
        nan = process_nans(fmt, a)
        if nan is not None:
            return nan
        r, ff = arith.sqrt(fmt, a, rounding(fpcr))
        return r, fpsr_flags(ff)
    return op


SQRT = {t: Helper(f"a64_fsqrt_{fmt.name}", _sqrt(fmt), flags=CALL_PURE, n_out=2)
        for t, fmt in FORMATS.items()}


def _inf_times_zero(fmt: FloatFormat, n: int, m: int) -> bool:
    mags = {n & fmt.mag_mask, m & fmt.mag_mask}
    return mags == {0, fmt.inf_bits}


def _fma(fmt: FloatFormat, negate_product: bool, negate_addend: bool):
    mask = (1 << fmt.width) - 1

    def op(n: int, m: int, a: int, fpcr: int) -> tuple[int, int]:
        n, m, a = n & mask, m & mask, a & mask
        # Arm negates the operands themselves (FPNeg), before NaN processing: a NaN
        # operand comes out with its sign flipped
        if negate_product:
            n ^= fmt.sign_bit
        if negate_addend:
            a ^= fmt.sign_bit
        # the addend first, then the multiplicands (FPProcessNaNs3(a, n, m))
        nan = process_nans(fmt, a, n, m)
        if fmt.is_nan(a) and not fmt.is_snan(a) and _inf_times_zero(fmt, n, m):
            return fmt.canonical_nan, 1  # Arm: a quiet NaN addend does not hide inf * 0
        if nan is not None:
            return nan
        r, ff = arith.fma(fmt, n, m, a, rounding(fpcr), False, False)
        return r, fpsr_flags(ff)
    return op


FMA = {(o1, o0, t): Helper(f"a64_fma{o1}{o0}_{fmt.name}",
                           _fma(fmt, bool(o1 ^ o0), bool(o1)), flags=CALL_PURE, n_out=2)
       for o1 in (0, 1) for o0 in (0, 1) for t, fmt in FORMATS.items()}


def _compare(fmt: FloatFormat, signalling: bool):
    """FCMP/FCMPE -> (NZCV as bits 31:28, FPSR bits)."""
    mask = (1 << fmt.width) - 1

    def op(a: int, b: int) -> tuple[int, int]:
        a, b = a & mask, b & mask
        if fmt.is_nan(a) or fmt.is_nan(b):
            invalid = signalling or fmt.is_snan(a) or fmt.is_snan(b)
            return 0b0011 << 28, 1 if invalid else 0
        if compare.eq(fmt, a, b)[0]:
            return 0b0110 << 28, 0
        if compare.lt(fmt, a, b)[0]:
            return 0b1000 << 28, 0
        return 0b0010 << 28, 0
    return op


COMPARE = {(e, t): Helper(f"a64_fcmp{'e' if e else ''}_{fmt.name}", _compare(fmt, bool(e)),
                          flags=CALL_PURE, n_out=2)
           for e in (0, 1) for t, fmt in FORMATS.items()}


def _convert(src: FloatFormat, dst: FloatFormat):
    def op(a: int, fpcr: int) -> tuple[int, int]:
        a &= (1 << src.width) - 1
        if src.is_nan(a):
            # the payload moves with the NaN (top fraction bits), quieted
            shift = src.frac_bits - dst.frac_bits
            frac = (a & src.frac_mask) >> shift if shift > 0 else (a & src.frac_mask) << -shift
            sign = dst.sign_bit if a & src.sign_bit else 0
            return sign | dst.inf_bits | dst.quiet_bit | frac, int(src.is_snan(a))
        r, ff = convert.convert(src, dst, a, rounding(fpcr))
        return r, fpsr_flags(ff)
    return op


FCVT = {(s, d): Helper(f"a64_fcvt_{FORMATS[s].name}_{FORMATS[d].name}",
                       _convert(FORMATS[s], FORMATS[d]), flags=CALL_PURE, n_out=2)
        for s in (0, 1) for d in (0, 1) if s != d}


def _to_int(fmt: FloatFormat, width: int, signed: bool, rm: int | None):
    def op(a: int, fpcr: int) -> tuple[int, int]:
        a &= (1 << fmt.width) - 1
        if fmt.is_nan(a):
            return 0, 1  # Arm: NaN converts to 0 (invalid)
        r, ff = convert.to_int(fmt, a, rounding(fpcr) if rm is None else rm, width, signed)
        return r, fpsr_flags(ff)
    return op


# rmode:opcode<0> of the conversion space -> rounding (None: FPCR's)
TO_INT_MODES = {(0, 0): RNE, (1, 0): RUP, (2, 0): RDN, (3, 0): RTZ, (0, 4): RMM}


def to_int_helper(t: int, width: int, signed: bool, rm: int) -> Helper:
    key = (t, width, signed, rm)
    if key not in _TO_INT:
        fmt = FORMATS[t]
        _TO_INT[key] = Helper(f"a64_fcvt{'s' if signed else 'u'}{rm}_{fmt.name}_{width}",
                              _to_int(fmt, width, signed, rm), flags=CALL_PURE, n_out=2)
    return _TO_INT[key]


_TO_INT: dict[tuple, Helper] = {}


def _from_int(fmt: FloatFormat, width: int, signed: bool):
    def op(v: int, fpcr: int) -> tuple[int, int]:
        v &= (1 << width) - 1
        if signed and v >> (width - 1):
            v -= 1 << width
        r, ff = convert.from_int(fmt, v, rounding(fpcr), width, signed)
        return r, fpsr_flags(ff)
    return op


FROM_INT = {(t, w, s): Helper(f"a64_{'s' if s else 'u'}cvtf_{FORMATS[t].name}_{w}",
                              _from_int(FORMATS[t], w, s), flags=CALL_PURE, n_out=2)
            for t in (0, 1) for w in (32, 64) for s in (False, True)}


def _round_int(fmt: FloatFormat, rm: int | None, exact: bool):
    """FRINT*: round to an integral value in the same format."""
    def op(a: int, fpcr: int) -> tuple[int, int]:
        a &= (1 << fmt.width) - 1
        nan = process_nans(fmt, a)
        if nan is not None:
            return nan
        mag = a & fmt.mag_mask
        if mag >= fmt.inf_bits or mag == 0:
            return a, 0
        m, e = fmt.unpack_finite(a)
        if e >= 0:
            return a, 0
        mode = rounding(fpcr) if rm is None else rm
        negative = bool(a & fmt.sign_bit)
        q, inexact = round_shift(m, -e, negative, mode)
        if q == 0:
            return a & fmt.sign_bit, 16 if exact and inexact else 0
        r, _ = convert.from_int(fmt, -q if negative else q, RNE, 64, True)
        return r, 16 if exact and inexact else 0
    return op


# FRINTN P M Z A - X I (opcode 8..15): rounding mode, raises inexact
FRINT_MODES = {8: (RNE, False), 9: (RUP, False), 10: (RDN, False), 11: (RTZ, False),
               12: (RMM, False), 14: (None, True), 15: (None, False)}
FRINT = {(op, t): Helper(f"a64_frint{op}_{fmt.name}", _round_int(fmt, rm, exact),
                         flags=CALL_PURE, n_out=2)
         for op, (rm, exact) in FRINT_MODES.items() for t, fmt in FORMATS.items()}


def _fixed_from_int(fmt: FloatFormat, width: int, signed: bool, fbits: int):
    """SCVTF/UCVTF (fixed-point): the integer rounded, then scaled by 2^-fbits, which
    is exact (an integer of 64 bits or fewer over at most 2^64 stays a normal)."""
    whole = _from_int(fmt, width, signed)

    def op(v: int, fpcr: int) -> tuple[int, int]:
        r, flags = whole(v, fpcr)
        if r & fmt.mag_mask:
            r -= fbits << fmt.frac_bits
        return r, flags
    return op


def _fixed_to_int(fmt: FloatFormat, width: int, signed: bool, fbits: int):
    """FCVTZS/FCVTZU (fixed-point): x * 2^fbits (exact but where it overflows to an
    infinity, which saturates the same), then to an integer toward zero."""
    scale = (fmt.bias + fbits) << fmt.frac_bits
    to_integer = _to_int(fmt, width, signed, RTZ)

    def op(a: int, fpcr: int) -> tuple[int, int]:
        a &= (1 << fmt.width) - 1
        if not fmt.is_nan(a):
            a, _ = arith.mul(fmt, a, scale, RTZ)
        return to_integer(a, fpcr)
    return op


def fixed_point_helper(t: int, width: int, signed: bool, fbits: int, to_float: bool
                       ) -> Helper:
    """The SCVTF/UCVTF (to_float) or FCVTZS/FCVTZU helper with fbits fraction bits."""
    key = (t, width, signed, fbits, to_float)
    if key not in _FIXED:
        fmt = FORMATS[t]
        make = _fixed_from_int if to_float else _fixed_to_int
        name = f"{'s' if signed else 'u'}{'cvtf' if to_float else 'fcvtz'}"
        _FIXED[key] = Helper(f"a64_{name}_fixed{fbits}_{fmt.name}_{width}",
                             make(fmt, width, signed, fbits), flags=CALL_PURE, n_out=2)
    return _FIXED[key]


_FIXED: dict[tuple, Helper] = {}
