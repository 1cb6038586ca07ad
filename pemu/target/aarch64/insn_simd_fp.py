"""Advanced SIMD floating point on single and double lanes: arithmetic (FADD, FSUB,
FMUL, FDIV, FABD, FMAX/FMIN/FMAXNM/FMINNM, fused FMLA/FMLS), pairwise FADDP/FMAXP/
FMINP/FMAXNMP/FMINNMP, compares (FCMEQ/FCMGE/FCMGT, FACGE/FACGT, and against zero),
FABS/FNEG/FSQRT, FRINT*, conversions to and from integers and FCVTL/FCVTN.

Each lane is the scalar helper's function (fp_helpers.py: exact soft-float, Arm's NaN
rules); a helper computes one 64-bit half (two singles or one double) and returns it
with its FPSR flag bits, which are accrued as the scalar instructions do.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import CALL_PURE, Const, Helper, Operand, Temp
from pemu.accel.tcg.opcodes import OR, SHL, SHR
from pemu.fpu import compare
from pemu.fpu.flags import RDN, RMM, RNE, RTZ, RUP
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.fp_helpers import (
    BINARY,
    FCVT,
    FMA,
    FORMATS,
    FRINT,
    FROM_INT,
    SQRT,
    fpsr_flags,
    to_int_helper,
)
from pemu.target.aarch64.simd_common import (
    full_width,
    halves,
    is_scalar,
    read_v,
    write_narrow,
    write_v,
)
from pemu.target.aarch64.vector_ops import lanes, pack

LaneOp = Callable[[int, int, int, int], tuple[int, int]]  # (n, m, d, fpcr)


def _binary(name: str) -> Callable[[int], LaneOp]:
    def make(sz: int) -> LaneOp:
        fn = BINARY[(name, sz)].fn
        return lambda n, m, d, fpcr: fn(n, m, fpcr)
    return make


def _abd(sz: int) -> LaneOp:
    fn, sign = BINARY[("fsub", sz)].fn, 1 << (31 if sz == 0 else 63)
    return lambda n, m, d, fpcr: (lambda r: (r[0] & ~sign, r[1]))(fn(n, m, fpcr))


def _mulx(sz: int) -> LaneOp:
    """FMULX: FMUL, but infinity times zero is 2.0 (signed), not the default NaN."""
    fmt, fn = FORMATS[sz], BINARY[("fmul", sz)].fn
    mask = (1 << fmt.width) - 1
    two = (fmt.bias + 1) << fmt.frac_bits

    def op(n: int, m: int, d: int, fpcr: int) -> tuple[int, int]:
        n, m = n & mask, m & mask
        if not (fmt.is_nan(n) or fmt.is_nan(m)) and \
                {n & fmt.mag_mask, m & fmt.mag_mask} == {0, fmt.inf_bits}:
            return two | ((n ^ m) & fmt.sign_bit), 0
        return fn(n, m, fpcr)
    return op


def _fma(o0: int) -> Callable[[int], LaneOp]:
    """FMLA: Vd + Vn * Vm fused; FMLS negates Vn (FMADD/FMSUB with Vd the addend)."""
    def make(sz: int) -> LaneOp:
        fn = FMA[(0, o0, sz)].fn
        return lambda n, m, d, fpcr: fn(n, m, d, fpcr)
    return make


def _compare(test: Callable, absolute: bool, swap: bool = False) -> Callable[[int], LaneOp]:
    """All ones where the comparison holds; FPSR.IOC as pemu.fpu's compares raise it."""
    def make(sz: int) -> LaneOp:
        fmt = FORMATS[sz]
        ones = (1 << fmt.width) - 1

        def op(n: int, m: int, d: int, fpcr: int) -> tuple[int, int]:
            if absolute:
                n, m = n & fmt.mag_mask, m & fmt.mag_mask
            if swap:
                n, m = m, n
            r, ff = test(fmt, n, m)
            return (ones if r else 0), fpsr_flags(ff)
        return op
    return make


def _ge(fmt, a: int, b: int) -> tuple[int, int]:
    return compare.le(fmt, b, a)


def _gt(fmt, a: int, b: int) -> tuple[int, int]:
    return compare.lt(fmt, b, a)


# (U, a, fop) -> (name, lane op maker, pairwise)
_3SAME: dict[tuple[int, int, int], tuple[str, Callable[[int], LaneOp], bool]] = {
    (0, 0, 0): ("fmaxnm", _binary("fmaxnm"), False),
    (0, 1, 0): ("fminnm", _binary("fminnm"), False),
    (0, 0, 1): ("fmla", _fma(0), False),
    (0, 1, 1): ("fmls", _fma(1), False),
    (0, 0, 2): ("fadd", _binary("fadd"), False),
    (0, 1, 2): ("fsub", _binary("fsub"), False),
    (0, 0, 3): ("fmulx", _mulx, False),
    (0, 0, 4): ("fcmeq", _compare(compare.eq, False), False),
    (0, 0, 6): ("fmax", _binary("fmax"), False),
    (0, 1, 6): ("fmin", _binary("fmin"), False),
    (1, 0, 0): ("fmaxnmp", _binary("fmaxnm"), True),
    (1, 1, 0): ("fminnmp", _binary("fminnm"), True),
    (1, 0, 2): ("faddp", _binary("fadd"), True),
    (1, 1, 2): ("fabd", _abd, False),
    (1, 0, 3): ("fmul", _binary("fmul"), False),
    (1, 0, 4): ("fcmge", _compare(_ge, False), False),
    (1, 1, 4): ("fcmgt", _compare(_gt, False), False),
    (1, 0, 5): ("facge", _compare(_ge, True), False),
    (1, 1, 5): ("facgt", _compare(_gt, True), False),
    (1, 0, 6): ("fmaxp", _binary("fmax"), True),
    (1, 1, 6): ("fminp", _binary("fmin"), True),
    (1, 0, 7): ("fdiv", _binary("fdiv"), False),
}

_HELPERS: dict[str, Helper] = {}
# the three-same FP ops with a scalar form in this encoding group
_SCALAR_3SAME = {"fmulx", "fabd", "fcmeq", "fcmge", "fcmgt", "facge", "facgt"}


def _half_helper(name: str, sz: int, op: LaneOp, pairwise: bool, scalar: bool = False
                 ) -> Helper:
    """(n, m, d, fpcr) -> (64-bit result, FPSR bits) over the half's lanes (the low
    one only for a scalar); pairwise: the lanes of n then m, combined two by two."""
    key = f"a64_v{name}_{'sd'[sz]}{'_p' if pairwise else ''}{'_scalar' if scalar else ''}"
    if key not in _HELPERS:
        e = 32 << sz
        k = 1 if scalar else 64 // e

        def helper(n: int, m: int, d: int, fpcr: int) -> tuple[int, int]:
            if pairwise:
                src = lanes(n, e, k) + lanes(m, e, k)
                triples = [(src[i], src[i + 1], 0) for i in range(0, 2 * k, 2)]
            else:
                triples = list(zip(lanes(n, e, k), lanes(m, e, k), lanes(d, e, k), strict=True))
            out, flags = [], 0
            for x, y, z in triples:
                r, f = op(x, y, z, fpcr)
                out.append(r)
                flags |= f
            return pack(out, e), flags
        _HELPERS[key] = Helper(key, helper, flags=CALL_PURE, n_out=2)
    return _HELPERS[key]


def _half(ctx: DisasContext, helper: Helper, ins: list[Operand]) -> Temp:
    r, flags = ctx.temp(), ctx.temp()
    ctx.b.call(helper, [r, flags], [*ins, ctx.glob("fpcr")])
    fpsr = ctx.glob("fpsr")
    ctx.b.binop(OR, fpsr, fpsr, flags)
    return r


def _vector(ctx: DisasContext, a, helper: Helper, pairwise: bool = False) -> None:
    (nlo, nhi), (mlo, mhi), (dlo, dhi) = (read_v(ctx, a.rn), halves(ctx, a.rm),
                                          read_v(ctx, a.rd))
    if pairwise:
        lo = _half(ctx, helper, [nlo, nhi if a.q else mlo, Const(0)])
        hi = _half(ctx, helper, [mlo, mhi, Const(0)]) if a.q else Const(0)
    else:
        lo = _half(ctx, helper, [nlo, mlo, dlo])
        hi = _half(ctx, helper, [nhi, mhi, dhi]) if a.q else Const(0)
    write_v(ctx, a.rd, lo, hi, a.q)


def pairwise_half(ctx: DisasContext, name: str, sz: int, x: Operand, y: Operand) -> Temp:
    """64 bits of a pairwise op (``name``: one of the vector FADDP & co): the lanes of
    x then y, two by two."""
    entry = next(e for e in _3SAME.values() if e[0] == name)
    return _half(ctx, _half_helper(name, sz, entry[1](sz), True), [x, y, Const(0)])


_ACROSS = {(12, 0): "fmaxnm", (12, 1): "fminnm", (15, 0): "fmax", (15, 1): "fmin"}


def across_lanes(ctx: DisasContext, a) -> bool | None:
    """FMAXNMV, FMINNMV, FMAXV, FMINV (4S only): Arm's Reduce, op(op(e0, e1), op(e2, e3))."""
    name = _ACROSS.get((a.opcode, a.size >> 1))
    if name is None or a.size & 1 or not a.q:
        return False
    key = f"a64_{name}v_4s"
    if key not in _HELPERS:
        fn = BINARY[(name, 0)].fn

        def reduce(lo: int, hi: int, fpcr: int) -> tuple[int, int]:
            (x, fx), (y, fy) = fn(lo, lo >> 32, fpcr), fn(hi, hi >> 32, fpcr)
            r, fr = fn(x, y, fpcr)
            return r, fx | fy | fr
        _HELPERS[key] = Helper(key, reduce, flags=CALL_PURE, n_out=2)
    nlo, nhi = read_v(ctx, a.rn)
    write_v(ctx, a.rd, _half(ctx, _HELPERS[key], [nlo, nhi]), Const(0), 0)
    return None


def trans_SIMD_3SAME_FP(ctx: DisasContext, a) -> bool | None:
    entry = _3SAME.get((a.u, a.a, a.fop))
    if entry is None or (a.sz and not full_width(a)):
        return False
    name, make, pairwise = entry
    if is_scalar(a) and name not in _SCALAR_3SAME:
        return False
    _vector(ctx, a, _half_helper(name, a.sz, make(a.sz), pairwise, is_scalar(a)), pairwise)
    return None


def _unary(helper_of: Callable[[int], Helper]) -> Callable[[int], LaneOp]:
    def make(sz: int) -> LaneOp:
        fn = helper_of(sz).fn
        return lambda n, m, d, fpcr: fn(n, fpcr)
    return make


def _sign_op(clear: bool) -> Callable[[int], LaneOp]:
    def make(sz: int) -> LaneOp:
        sign = 1 << (31 if sz == 0 else 63)
        return lambda n, m, d, fpcr: ((n & ~sign) if clear else (n ^ sign), 0)
    return make


def _to_int(signed: bool, rm: int | None) -> Callable[[int], LaneOp]:
    def make(sz: int) -> LaneOp:
        fn = to_int_helper(sz, 32 << sz, signed, rm).fn
        return lambda n, m, d, fpcr: fn(n, fpcr)
    return make


def _with_zero(test: Callable, swap: bool = False) -> Callable[[int], LaneOp]:
    cmp = _compare(test, False, swap)
    return lambda sz: (lambda op: lambda n, m, d, fpcr: op(n, 0, d, fpcr))(cmp(sz))


# (U, a, opcode) -> (name, lane op maker)
_MISC: dict[tuple[int, int, int], tuple[str, Callable[[int], LaneOp]]] = {
    (0, 1, 12): ("fcmgt0", _with_zero(_gt)),
    (1, 1, 12): ("fcmge0", _with_zero(_ge)),
    (0, 1, 13): ("fcmeq0", _with_zero(compare.eq)),
    (1, 1, 13): ("fcmle0", _with_zero(compare.le)),
    (0, 1, 14): ("fcmlt0", _with_zero(compare.lt)),
    (0, 1, 15): ("fabs", _sign_op(True)),
    (1, 1, 15): ("fneg", _sign_op(False)),
    (1, 1, 31): ("fsqrt", _unary(lambda sz: SQRT[sz])),
    (0, 0, 29): ("scvtf", _unary(lambda sz: FROM_INT[(sz, 32 << sz, True)])),
    (1, 0, 29): ("ucvtf", _unary(lambda sz: FROM_INT[(sz, 32 << sz, False)])),
    (0, 0, 26): ("fcvtns", _to_int(True, RNE)), (0, 1, 26): ("fcvtps", _to_int(True, RUP)),
    (1, 0, 26): ("fcvtnu", _to_int(False, RNE)), (1, 1, 26): ("fcvtpu", _to_int(False, RUP)),
    (0, 0, 27): ("fcvtms", _to_int(True, RDN)), (0, 1, 27): ("fcvtzs", _to_int(True, RTZ)),
    (1, 0, 27): ("fcvtmu", _to_int(False, RDN)), (1, 1, 27): ("fcvtzu", _to_int(False, RTZ)),
    (0, 0, 28): ("fcvtas", _to_int(True, RMM)), (1, 0, 28): ("fcvtau", _to_int(False, RMM)),
    # FRINTN M P Z A X I: the scalar FRINT helpers by their opcode
    (0, 0, 24): ("frintn", _unary(lambda sz: FRINT[(8, sz)])),
    (0, 0, 25): ("frintm", _unary(lambda sz: FRINT[(10, sz)])),
    (0, 1, 24): ("frintp", _unary(lambda sz: FRINT[(9, sz)])),
    (0, 1, 25): ("frintz", _unary(lambda sz: FRINT[(11, sz)])),
    (1, 0, 24): ("frinta", _unary(lambda sz: FRINT[(12, sz)])),
    (1, 0, 25): ("frintx", _unary(lambda sz: FRINT[(14, sz)])),
    (1, 1, 25): ("frinti", _unary(lambda sz: FRINT[(15, sz)])),
}


def trans_SIMD_MISC_FP(ctx: DisasContext, a) -> bool | None:
    key = (a.u, a.a, a.opcode)
    # FCVTL(2), FCVTN(2): single <-> double
    if key in ((0, 0, 23), (0, 0, 22)) and a.sz and not is_scalar(a):
        return _fcvt_long_narrow(ctx, a, widen=a.opcode == 23)
    entry = _MISC.get(key)
    if entry is None or (a.sz and not full_width(a)):
        return False
    name, make = entry
    if is_scalar(a) and not (name.startswith("fcm") or "cvt" in name):
        return False  # the scalar FABS & co are FP_1SRC's
    helper = _half_helper(name, a.sz, make(a.sz), False, is_scalar(a))
    nlo, nhi = read_v(ctx, a.rn)
    lo = _half(ctx, helper, [nlo, Const(0), Const(0)])
    hi = _half(ctx, helper, [nhi, Const(0), Const(0)]) if a.q else Const(0)
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _fcvt_long_narrow(ctx: DisasContext, a, widen: bool) -> None:
    b = ctx.b
    nlo, nhi = read_v(ctx, a.rn)
    if widen:  # the two singles of one half -> two doubles
        src = nhi if a.q else nlo
        upper = ctx.temp()
        b.binop(SHR, upper, src, Const(32))
        write_v(ctx, a.rd, _half(ctx, FCVT[(0, 1)], [src]), _half(ctx, FCVT[(0, 1)], [upper]))
        return None
    first, second = (_half(ctx, FCVT[(1, 0)], [h]) for h in (nlo, nhi))
    packed = ctx.temp()
    b.binop(SHL, packed, second, Const(32))
    b.binop(OR, packed, packed, first)
    write_narrow(ctx, a.rd, packed, a.q)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")]
