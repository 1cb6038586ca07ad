"""OP-V floating-point instructions (RVV 1.0 chapter 13) through pemu/fpu.

SEW 16, 32 and 64 are the formats binary16/32/64 (as QEMU 7.2, which lets V compute
in half precision without Zvfh); SEW 8 is an illegal instruction.  The dynamic
rounding mode frm applies (a reserved frm makes every FP vector instruction illegal),
and the elements' exception flags accrue into fflags.  Element-wise operations reuse
the integer loop (vector_alu.arith) with an FP element function; widening operations
convert their SEW operands exactly to 2*SEW first, as the spec defines them.

vfrec7/vfrsqrt7 use the spec's 7-bit estimate tables, computed here from the midpoint of
each input interval (that reproduces the spec's tables exactly; test_riscv_vector checks
entries against it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from pemu.fpu import arith as fa
from pemu.fpu import compare as fc
from pemu.fpu import convert as fcv
from pemu.fpu.flags import DZ, NV, NX, OF, RDN, RMM, RNE, RTZ, RUP
from pemu.fpu.formats import F32, F64, FloatFormat
from pemu.target.riscv.cpu_state import FRM
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.vector_alu import (
    Fixed,
    Handler,
    arith,
    merge,
    note_flags,
    register_op,
    require_mask_sources,
    slide1,
)
from pemu.target.riscv.vector_exec import IllegalVector, VInsn, unbox

F16 = FloatFormat.build("f16", 5, 10)
FORMATS: dict[int, FloatFormat] = {16: F16, 32: F32, 64: F64}
_BOX = {16: 0xFFFF_FFFF_FFFF_0000, 32: 0xFFFF_FFFF_0000_0000, 64: 0}


def fp_check(env: object) -> None:
    """System mode: FP vector instructions need mstatus.FS on, and they may write
    fflags or an f register: FS becomes Dirty."""
    ps = getattr(env, "ps", None)
    if ps is None:
        return
    if ps.fp_off():
        raise RiscvTrap(ILLEGAL_INSN, 0)
    ps.mark_fs_dirty()


def _fmt(v: VInsn, widen: bool = False) -> FloatFormat:
    """The FP format of SEW (2*SEW with ``widen``); illegal if there is none, or if
    frm holds a reserved rounding mode."""
    vt = v.require_vtype()
    fmt = FORMATS.get(vt.sew * (2 if widen else 1))
    if fmt is None or (widen and FORMATS.get(vt.sew) is None) or v.slots[FRM] > 4:
        raise IllegalVector
    return fmt


def _fp(handler: Handler, widen: bool = False) -> Handler:
    """Check the FP format before the element loop runs."""
    def run(v: VInsn, form: str) -> None:
        _fmt(v, widen)
        handler(v, form)
    return run


def _wide(k: Fixed, x: int) -> int:
    """A SEW operand converted (exactly) to 2*SEW."""
    return k.fp(fcv.convert(FORMATS[k.sew], FORMATS[2 * k.sew], x, k.rm))


# -- element functions: (a = vs2[i], b = vs1[i] or f[rs1], k) -------------------------------------

def _binary(op: Callable[[FloatFormat, int, int, int], tuple[int, int]], *, reverse: bool = False,
            widen: str = "") -> Handler:
    """vd = op(vs2, op1) (``reverse``: op(op1, vs2)); ``widen``: "vv" both operands
    are SEW and widen, "wv" vs2 is already 2*SEW."""

    def element(a: int, b: int, k: Fixed) -> int:
        fmt = FORMATS[k.sew * (2 if widen else 1)]
        if widen:
            b = _wide(k, b)
            if widen == "vv":
                a = _wide(k, a)
        x, y = (b, a) if reverse else (a, b)
        return k.fp(op(fmt, x, y, k.rm))
    return _fp(arith(element, wide_d=bool(widen), wide_a=widen == "wv"), bool(widen))


def _minmax(op: Callable[[FloatFormat, int, int], tuple[int, int]]) -> Handler:
    return _fp(arith(lambda a, b, k: k.fp(op(FORMATS[k.sew], a, b))))


def _sign_inject(kind: int) -> Handler:
    def element(a: int, b: int, k: Fixed) -> int:
        top = 1 << (k.sew - 1)
        s = b & top
        if kind == 1:
            s ^= top
        elif kind == 2:
            s = (a ^ b) & top
        return (a & (top - 1)) | s
    return _fp(arith(element))


def _fma(negate_product: bool, negate_addend: bool, addend_is_vd: bool,
         widen: bool = False) -> Handler:
    """vf(n)macc/msac (vd is the addend: vs1*vs2 +- vd) and vf(n)madd/msub (vd is a
    factor: vd*vs1 +- vs2); widening forms (vfw*) accumulate in 2*SEW."""

    def element(a: int, b: int, d: int, k: Fixed) -> int:
        fmt = FORMATS[k.sew * (2 if widen else 1)]
        if widen:
            a, b = _wide(k, a), _wide(k, b)
        if addend_is_vd:
            return k.fp(fa.fma(fmt, b, a, d, k.rm, negate_product, negate_addend))
        return k.fp(fa.fma(fmt, d, b, a, k.rm, negate_product, negate_addend))
    return _fp(arith(element, accum=True, wide_d=widen), widen)


def _compare(op: Callable[[FloatFormat, int, int], tuple[int, int]], *, swap: bool = False,
             negate: bool = False) -> Handler:
    """vmfeq/ne/lt/le (vv, vf) and vmfgt/ge (vf: the operands swapped)."""

    def run(v: VInsn, form: str) -> None:
        fmt = _fmt(v)
        vt = v.vt
        require_mask_sources(v, form)
        esz = vt.sew_bytes
        scalar = unbox(v.f(v.rs1), vt.sew) if form == "f" else 0
        k = Fixed(vt.sew, 0)
        for i in v.body():
            if not v.active(i):
                continue
            a = v.elem(v.rs2, i, esz)
            b = scalar if form == "f" else v.elem(v.rs1, i, esz)
            r = k.fp(op(fmt, b, a) if swap else op(fmt, a, b))
            v.set_mask_bit(v.vd, i, r ^ negate)
        note_flags(v, k)
    return run


def _reduction(op: Callable[[FloatFormat, int, int, int], tuple[int, int]] | None,
               pick: Callable[[FloatFormat, int, int], tuple[int, int]] | None = None,
               widen: bool = False) -> Handler:
    """vd[0] = vs1[0] combined with the active vs2 elements in element order (the
    unordered sums too, as QEMU 7.2 does); nothing is written when vl is 0."""

    def run(v: VInsn, form: str) -> None:
        fmt = _fmt(v, widen)
        if v.vs.vstart:
            raise IllegalVector
        vt = v.vt
        v.require_aligned(v.rs2, v.group_regs())
        esz = vt.sew_bytes
        dsz = esz * (2 if widen else 1)
        k = Fixed(vt.sew, 0, v.slots[FRM])
        acc = v.elem(v.rs1, 0, dsz)
        for i in range(v.vs.vl):
            if not v.active(i):
                continue
            e = v.elem(v.rs2, i, esz)
            if widen:
                e = _wide(k, e)
            acc = k.fp(op(fmt, acc, e, k.rm) if op else pick(fmt, acc, e))  # type: ignore[misc]
        if v.vs.vl:
            v.set_elem(v.vd, 0, dsz, acc)
        note_flags(v, k)
    return run


# -- moves, slides, merges -----------------------------------------------------------------------

def _vwfunary0(v: VInsn, form: str) -> None:
    """vfmv.f.s (vv: f[rd] = vs2[0], NaN-boxed) and vfmv.s.f (vf: vd[0] = f[rs1])."""
    _fmt(v)
    sew = v.vt.sew
    if not v.vm:
        raise IllegalVector
    if form == "v":
        if v.rs1:
            raise IllegalVector
        v.set_f(v.vd, v.elem(v.rs2, 0, sew // 8) | _BOX[sew])
        return
    if v.rs2:
        raise IllegalVector
    if v.vs.vstart < v.vs.vl:
        v.set_elem(v.vd, 0, sew // 8, unbox(v.f(v.rs1), sew))


def _fslide1(up: bool) -> Handler:
    def run(v: VInsn, form: str) -> None:
        _fmt(v)
        slide1(v, up, unbox(v.f(v.rs1), v.vt.sew))
    return run


# -- VFUNARY0 (conversions) and VFUNARY1 (sqrt, class) -------------------------------------

# vs1 field -> (shape, kind, rtz): shape "" SEW->SEW, "w" widening, "n" narrowing; kind
# f2u/f2i/u2f/i2f/f2f/rod (round to odd)
_CONVERSIONS = {
    0: ("", "f2u", False), 1: ("", "f2i", False), 2: ("", "u2f", False), 3: ("", "i2f", False),
    6: ("", "f2u", True), 7: ("", "f2i", True),
    8: ("w", "f2u", False), 9: ("w", "f2i", False), 10: ("w", "u2f", False),
    11: ("w", "i2f", False), 12: ("w", "f2f", False), 14: ("w", "f2u", True),
    15: ("w", "f2i", True),
    16: ("n", "f2u", False), 17: ("n", "f2i", False), 18: ("n", "u2f", False),
    19: ("n", "i2f", False), 20: ("n", "f2f", False), 21: ("n", "rod", False),
    22: ("n", "f2u", True), 23: ("n", "f2i", True),
}


def _vfunary0(v: VInsn, form: str) -> None:
    conv = _CONVERSIONS.get(v.rs1)
    vt = v.require_vtype()
    if conv is None or v.slots[FRM] > 4:
        raise IllegalVector
    shape, kind, rtz = conv
    sew = vt.sew
    src_bits = 2 * sew if shape == "n" else sew
    dst_bits = 2 * sew if shape == "w" else sew
    float_bits = {"f2u": src_bits, "f2i": src_bits, "u2f": dst_bits, "i2f": dst_bits}
    if kind in ("f2f", "rod"):
        if src_bits not in FORMATS or dst_bits not in FORMATS or sew == 8:
            raise IllegalVector
    elif float_bits[kind] not in FORMATS:
        raise IllegalVector
    if max(src_bits, dst_bits) > v.elen:
        raise IllegalVector
    dregs, sregs = v.group_regs(dst_bits, sew), v.group_regs(src_bits, sew)
    v.require_aligned(v.vd, dregs)
    v.require_aligned(v.rs2, sregs)
    if dst_bits != src_bits:
        v.require_legal_overlap(v.vd, dregs, v.rs2, sregs, dst_bits > src_bits)
    v.require_no_v0_overlap()
    k = Fixed(sew, 0, RTZ if rtz else v.slots[FRM])
    convert = _converter(kind, src_bits, dst_bits)
    for i in v.body():
        if v.active(i):
            v.set_elem(v.vd, i, dst_bits // 8,
                       k.fp(convert(v.elem(v.rs2, i, src_bits // 8), k.rm)))
    note_flags(v, k)


def _converter(kind: str, src: int, dst: int) -> Callable[[int, int], tuple[int, int]]:
    if kind in ("f2u", "f2i"):
        return lambda x, rm: fcv.to_int(FORMATS[src], x, rm, dst, kind == "f2i")
    if kind in ("u2f", "i2f"):
        return lambda x, rm: fcv.from_int(FORMATS[dst], x, rm, src, kind == "i2f")
    if kind == "f2f":
        return lambda x, rm: fcv.convert(FORMATS[src], FORMATS[dst], x, rm)

    def round_to_odd(x: int, rm: int) -> tuple[int, int]:
        # truncate, then jam the lost bits into the lowest one (NaN/inf stay exact)
        bits, flags = fcv.convert(FORMATS[src], FORMATS[dst], x, RTZ)
        if flags & NX and not FORMATS[dst].is_nan(bits):
            bits |= 1
        return bits, flags
    return round_to_odd


# -- vfrsqrt7 / vfrec7: 7-bit estimates (spec 13.9, 13.10) ------------------------------------

def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


# index (exp[0], sig[MSB -: 6]) -> output sig[MSB -: 7]: 1/sqrt of the interval's midpoint
# (x in [2, 4) for an even exponent field bit, [1, 2) for an odd one), as a fraction of
# the next power of two below it
RSQRT7_TABLE = tuple(
    min(127, _round_half_up((2 ** 0.5 if i < 64 else 2) / math.sqrt(1 + (i % 64 + 0.5) / 64)
                            * 128 - 128))
    for i in range(128))
# index sig[MSB -: 7] -> output sig: 2/x - 1 at the midpoint x of [1 + i/128, 1 + (i+1)/128)
REC7_TABLE = tuple(min(127, math.floor((Fraction(2) / (1 + Fraction(2 * i + 1, 256)) - 1)
                                       * 128 + Fraction(1, 2)))
                   for i in range(128))


def _normalized(fmt: FloatFormat, x: int) -> tuple[int, int]:
    """(exponent field, fraction) of a finite non-zero x, a subnormal normalized (its
    exponent going to 0 and below, its leading one dropped)."""
    exp = (x >> fmt.frac_bits) & fmt.exp_max_field
    frac = x & fmt.frac_mask
    if exp == 0:
        shift = fmt.frac_bits - frac.bit_length() + 1
        exp, frac = 1 - shift, (frac << shift) & fmt.frac_mask
    return exp, frac


def _special(fmt: FloatFormat, x: int) -> tuple[int, int] | None:
    """NaN inputs: the canonical NaN (NV for a signalling one)."""
    if fmt.is_nan(x):
        return fmt.canonical_nan, NV if fmt.is_snan(x) else 0
    return None


def rsqrt7(fmt: FloatFormat, x: int) -> tuple[int, int]:
    sign = x & fmt.sign_bit
    mag = x & fmt.mag_mask
    nan = _special(fmt, x)
    if nan:
        return nan
    if mag == 0:
        return sign | fmt.inf_bits, DZ
    if sign:
        return fmt.canonical_nan, NV
    if mag == fmt.inf_bits:
        return 0, 0
    exp, frac = _normalized(fmt, x)
    out_exp = (3 * fmt.bias - 1 - exp) // 2
    index = (exp & 1) << 6 | frac >> (fmt.frac_bits - 6)
    return out_exp << fmt.frac_bits | RSQRT7_TABLE[index] << (fmt.frac_bits - 7), 0


def rec7(fmt: FloatFormat, x: int, rm: int) -> tuple[int, int]:
    sign = x & fmt.sign_bit
    mag = x & fmt.mag_mask
    nan = _special(fmt, x)
    if nan:
        return nan
    if mag == 0:
        return sign | fmt.inf_bits, DZ
    if mag == fmt.inf_bits:
        return sign, 0
    exp, frac = _normalized(fmt, x)
    if exp < -1:  # |x| < 2^-(bias+1): the estimate overflows, rounded as rm says
        to_inf = rm in (RNE, RMM) or (rm == RUP and not sign) or (rm == RDN and sign)
        return sign | (fmt.inf_bits if to_inf else fmt.max_finite), OF | NX
    out_exp = 2 * fmt.bias - 1 - exp
    out_frac = REC7_TABLE[frac >> (fmt.frac_bits - 7)] << (fmt.frac_bits - 7)
    if out_exp <= 0:  # a subnormal result: the leading one shifts in
        out_frac = (fmt.hidden_bit | out_frac) >> (1 - out_exp)
        out_exp = 0
    return sign | out_exp << fmt.frac_bits | out_frac, 0


def _vfunary1(v: VInsn, form: str) -> None:
    fmt = _fmt(v)
    if v.rs1 not in (0, 4, 5, 16):  # vfsqrt, vfrsqrt7, vfrec7, vfclass
        raise IllegalVector
    v.require_aligned(v.vd, v.group_regs())
    v.require_aligned(v.rs2, v.group_regs())
    v.require_no_v0_overlap()
    esz = v.vt.sew_bytes
    k = Fixed(v.vt.sew, 0, v.slots[FRM])
    for i in v.body():
        if v.active(i):
            x = v.elem(v.rs2, i, esz)
            if v.rs1 == 0:
                r = k.fp(fa.sqrt(fmt, x, k.rm))
            elif v.rs1 == 4:
                r = k.fp(rsqrt7(fmt, x))
            elif v.rs1 == 5:
                r = k.fp(rec7(fmt, x, k.rm))
            else:
                r = fc.classify(fmt, x)
            v.set_elem(v.vd, i, esz, r)
    note_flags(v, k)


def _fmerge(v: VInsn, form: str) -> None:
    _fmt(v)
    merge(v, form)


for _f6, _forms, _h in (
    (0x00, "vf", _binary(fa.add)), (0x02, "vf", _binary(fa.sub)),
    (0x27, "f", _binary(fa.sub, reverse=True)),
    (0x24, "vf", _binary(fa.mul)), (0x20, "vf", _binary(fa.div)),
    (0x21, "f", _binary(fa.div, reverse=True)),
    (0x04, "vf", _minmax(fc.fmin)), (0x06, "vf", _minmax(fc.fmax)),
    (0x08, "vf", _sign_inject(0)), (0x09, "vf", _sign_inject(1)),
    (0x0A, "vf", _sign_inject(2)),
    (0x0E, "f", _fslide1(True)), (0x0F, "f", _fslide1(False)),
    (0x10, "vf", _vwfunary0), (0x12, "v", _vfunary0), (0x13, "v", _vfunary1),
    (0x17, "f", _fmerge),
    (0x18, "vf", _compare(fc.eq)), (0x19, "vf", _compare(fc.le)),
    (0x1B, "vf", _compare(fc.lt)), (0x1C, "vf", _compare(fc.eq, negate=True)),
    (0x1D, "f", _compare(fc.lt, swap=True)), (0x1F, "f", _compare(fc.le, swap=True)),
    (0x01, "v", _reduction(fa.add)), (0x03, "v", _reduction(fa.add)),
    (0x05, "v", _reduction(None, fc.fmin)), (0x07, "v", _reduction(None, fc.fmax)),
    (0x31, "v", _reduction(fa.add, widen=True)), (0x33, "v", _reduction(fa.add, widen=True)),
    (0x28, "vf", _fma(False, False, False)), (0x29, "vf", _fma(True, True, False)),
    (0x2A, "vf", _fma(False, True, False)), (0x2B, "vf", _fma(True, False, False)),
    (0x2C, "vf", _fma(False, False, True)), (0x2D, "vf", _fma(True, True, True)),
    (0x2E, "vf", _fma(False, True, True)), (0x2F, "vf", _fma(True, False, True)),
    (0x30, "vf", _binary(fa.add, widen="vv")), (0x32, "vf", _binary(fa.sub, widen="vv")),
    (0x34, "vf", _binary(fa.add, widen="wv")), (0x36, "vf", _binary(fa.sub, widen="wv")),
    (0x38, "vf", _binary(fa.mul, widen="vv")),
    (0x3C, "vf", _fma(False, False, True, True)), (0x3D, "vf", _fma(True, True, True, True)),
    (0x3E, "vf", _fma(False, True, True, True)), (0x3F, "vf", _fma(True, False, True, True)),
):
    register_op("f", _f6, _forms, _h)

__all__ = ["F16", "FORMATS", "REC7_TABLE", "RSQRT7_TABLE", "fp_check", "rec7", "rsqrt7"]
