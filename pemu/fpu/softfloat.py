"""Public soft-float interface for the RISC-V F and D extensions.

Values are raw bit patterns in Python ints (f32 in the low 32 bits, f64 in 64
bits; NaN-boxing is the frontend's job).  Every operation returns
``(result_bits, fflags)`` with fflags the RISC-V bits NX=1 UF=2 OF=4 DZ=8
NV=16, except classify which returns only the fclass mask.  ``rm`` is a
static rounding mode 0..4 (RNE, RTZ, RDN, RUP, RMM); the frontend resolves
the dynamic mode and rejects 5 and 6.

The hot arithmetic (add/sub/mul/div/sqrt in RNE) comes from host_fast, which
uses the host's IEEE doubles when that is provably exact and otherwise falls
back to the integer-exact code in arith.  See docs/FPU.md.
"""

from __future__ import annotations

from . import arith, compare, convert
from .formats import F32, F64
from .host_fast import (
    f32_add,
    f32_div,
    f32_mul,
    f32_sqrt,
    f32_sub,
    f64_add,
    f64_div,
    f64_mul,
    f64_sqrt,
    f64_sub,
)

Result = tuple[int, int]

__all__ = [
    "f32_add",
    "f32_sub",
    "f32_mul",
    "f32_div",
    "f32_sqrt",
    "f32_fma",
    "f32_min",
    "f32_max",
    "f32_eq",
    "f32_lt",
    "f32_le",
    "f32_classify",
    "f32_to_i32",
    "f32_to_u32",
    "f32_to_i64",
    "f32_to_u64",
    "f32_from_i32",
    "f32_from_u32",
    "f32_from_i64",
    "f32_from_u64",
    "f64_add",
    "f64_sub",
    "f64_mul",
    "f64_div",
    "f64_sqrt",
    "f64_fma",
    "f64_min",
    "f64_max",
    "f64_eq",
    "f64_lt",
    "f64_le",
    "f64_classify",
    "f64_to_i32",
    "f64_to_u32",
    "f64_to_i64",
    "f64_to_u64",
    "f64_from_i32",
    "f64_from_u32",
    "f64_from_i64",
    "f64_from_u64",
    "f32_to_f64",
    "f64_to_f32",
]


def f32_fma(
    a: int, b: int, c: int, rm: int, negate_product: bool = False, negate_addend: bool = False
) -> Result:
    return arith.fma(F32, a, b, c, rm, negate_product, negate_addend)


def f64_fma(
    a: int, b: int, c: int, rm: int, negate_product: bool = False, negate_addend: bool = False
) -> Result:
    return arith.fma(F64, a, b, c, rm, negate_product, negate_addend)


def f32_min(a: int, b: int) -> Result:
    return compare.fmin(F32, a, b)


def f32_max(a: int, b: int) -> Result:
    return compare.fmax(F32, a, b)


def f64_min(a: int, b: int) -> Result:
    return compare.fmin(F64, a, b)


def f64_max(a: int, b: int) -> Result:
    return compare.fmax(F64, a, b)


def f32_eq(a: int, b: int) -> Result:
    return compare.eq(F32, a, b)


def f32_lt(a: int, b: int) -> Result:
    return compare.lt(F32, a, b)


def f32_le(a: int, b: int) -> Result:
    return compare.le(F32, a, b)


def f64_eq(a: int, b: int) -> Result:
    return compare.eq(F64, a, b)


def f64_lt(a: int, b: int) -> Result:
    return compare.lt(F64, a, b)


def f64_le(a: int, b: int) -> Result:
    return compare.le(F64, a, b)


def f32_classify(a: int) -> int:
    return compare.classify(F32, a)


def f64_classify(a: int) -> int:
    return compare.classify(F64, a)


def f32_to_i32(a: int, rm: int) -> Result:
    return convert.to_int(F32, a, rm, 32, True)


def f32_to_u32(a: int, rm: int) -> Result:
    return convert.to_int(F32, a, rm, 32, False)


def f32_to_i64(a: int, rm: int) -> Result:
    return convert.to_int(F32, a, rm, 64, True)


def f32_to_u64(a: int, rm: int) -> Result:
    return convert.to_int(F32, a, rm, 64, False)


def f64_to_i32(a: int, rm: int) -> Result:
    return convert.to_int(F64, a, rm, 32, True)


def f64_to_u32(a: int, rm: int) -> Result:
    return convert.to_int(F64, a, rm, 32, False)


def f64_to_i64(a: int, rm: int) -> Result:
    return convert.to_int(F64, a, rm, 64, True)


def f64_to_u64(a: int, rm: int) -> Result:
    return convert.to_int(F64, a, rm, 64, False)


def f32_from_i32(v: int, rm: int) -> Result:
    return convert.from_int(F32, v, rm, 32, True)


def f32_from_u32(v: int, rm: int) -> Result:
    return convert.from_int(F32, v, rm, 32, False)


def f32_from_i64(v: int, rm: int) -> Result:
    return convert.from_int(F32, v, rm, 64, True)


def f32_from_u64(v: int, rm: int) -> Result:
    return convert.from_int(F32, v, rm, 64, False)


def f64_from_i32(v: int, rm: int) -> Result:
    return convert.from_int(F64, v, rm, 32, True)


def f64_from_u32(v: int, rm: int) -> Result:
    return convert.from_int(F64, v, rm, 32, False)


def f64_from_i64(v: int, rm: int) -> Result:
    return convert.from_int(F64, v, rm, 64, True)


def f64_from_u64(v: int, rm: int) -> Result:
    return convert.from_int(F64, v, rm, 64, False)


def f32_to_f64(a: int, rm: int = 0) -> Result:
    """fcvt.d.s: always exact; rm is accepted for a uniform signature and unused."""
    return convert.convert(F32, F64, a, rm)


def f64_to_f32(a: int, rm: int) -> Result:
    return convert.convert(F64, F32, a, rm)
