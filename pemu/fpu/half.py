"""Half precision (binary16, RISC-V Zfh/Zfhmin) with the softfloat interface's names.

``f16_add``, ``f16_to_i32``, ``f16_to_f32``... take and return raw bit patterns and
``(result, fflags)`` like their f32/f64 twins in softfloat.py.  They are the generic
integer-exact code bound to the F16 format: half precision is rare enough that it
needs no host fast path.
"""

from __future__ import annotations

from collections.abc import Callable

from . import arith, compare, convert
from .formats import F16, F32, F64, FloatFormat

Result = tuple[int, int]


def _arith2(fn: Callable[..., Result]) -> Callable[[int, int, int], Result]:
    return lambda a, b, rm: fn(F16, a, b, rm)


def _compare(fn: Callable[..., Result]) -> Callable[[int, int], Result]:
    return lambda a, b: fn(F16, a, b)


def _to_int(width: int, signed: bool) -> Callable[[int, int], Result]:
    return lambda a, rm: convert.to_int(F16, a, rm, width, signed)


def _from_int(width: int, signed: bool) -> Callable[[int, int], Result]:
    return lambda v, rm: convert.from_int(F16, v, rm, width, signed)


def _convert(src: FloatFormat, dst: FloatFormat) -> Callable[[int, int], Result]:
    return lambda a, rm: convert.convert(src, dst, a, rm)


f16_add = _arith2(arith.add)
f16_sub = _arith2(arith.sub)
f16_mul = _arith2(arith.mul)
f16_div = _arith2(arith.div)
f16_min = _compare(compare.fmin)
f16_max = _compare(compare.fmax)
f16_eq = _compare(compare.eq)
f16_lt = _compare(compare.lt)
f16_le = _compare(compare.le)
f16_to_i32, f16_to_u32 = _to_int(32, True), _to_int(32, False)
f16_to_i64, f16_to_u64 = _to_int(64, True), _to_int(64, False)
f16_from_i32, f16_from_u32 = _from_int(32, True), _from_int(32, False)
f16_from_i64, f16_from_u64 = _from_int(64, True), _from_int(64, False)
f16_to_f32, f32_to_f16 = _convert(F16, F32), _convert(F32, F16)
f16_to_f64, f64_to_f16 = _convert(F16, F64), _convert(F64, F16)


def f16_sqrt(a: int, rm: int) -> Result:
    return arith.sqrt(F16, a, rm)


def f16_fma(a: int, b: int, c: int, rm: int, negate_product: bool = False,
            negate_addend: bool = False) -> Result:
    return arith.fma(F16, a, b, c, rm, negate_product, negate_addend)


def f16_classify(a: int) -> int:
    return compare.classify(F16, a)
