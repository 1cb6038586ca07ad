"""Pure helpers for the F and D extensions: softfloat plus RISC-V register conventions.

The softfloat functions work on raw IEEE bit patterns.  These wrappers add what the
f registers need: single-precision operands are NaN-unboxed (a value whose upper 32
bits are not all ones reads as the canonical NaN) and single results are NaN-boxed;
32-bit integer results are sign-extended to 64 bits as the spec writes them to x
registers.  Every wrapper is side-effect free and returns ``(bits, fflags)`` (fclass
returns only the mask), so translated code ORs the flags into ``fflags`` itself.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.host_float import FloatConventions, HostFloatOp
from pemu.accel.tcg.ir import CALL_PURE, Helper
from pemu.fpu import half, zfa
from pemu.fpu import softfloat as sf
from pemu.fpu.formats import F16, F32, F64

FMT_S = 0
FMT_D = 1
FMT_H = 2  # Zfh: the fmt field's 10
BOX = 0xFFFF_FFFF_0000_0000
BOX_H = 0xFFFF_FFFF_FFFF_0000
CANONICAL_NAN_S = 0x7FC0_0000
CANONICAL_NAN_H = 0x7E00
F16_SIGN = 0x8000
F64_SIGN = 0x8000_0000_0000_0000
F32_SIGN = 0x8000_0000

Result = tuple[int, int]


def unbox(v: int) -> int:
    return v & 0xFFFF_FFFF if v >> 32 == 0xFFFF_FFFF else CANONICAL_NAN_S


def unbox_h(v: int) -> int:
    return v & 0xFFFF if v >> 16 == 0xFFFF_FFFF_FFFF else CANONICAL_NAN_H


def _box_h(v: int) -> int:
    return v | BOX_H


def _sext32(v: int) -> int:
    return v | 0xFFFF_FFFF_0000_0000 if v & 0x8000_0000 else v


def _identity(v: int) -> int:
    return v


def _box(v: int) -> int:
    return v | BOX


# how each format reads an f register operand and writes a float result
_READ = {FMT_S: unbox, FMT_D: _identity, FMT_H: unbox_h}
_WRITE = {FMT_S: _box, FMT_D: _identity, FMT_H: _box_h}
_PREFIX = {FMT_S: "f32", FMT_D: "f64", FMT_H: "f16"}
_SUFFIX = {FMT_S: "s", FMT_D: "d", FMT_H: "h"}
_SOFT = {FMT_S: sf, FMT_D: sf, FMT_H: half}  # where each format's operations live


def _helper(name: str, fn: Callable[..., object], n_out: int = 2,
            host_float: HostFloatOp | None = None) -> Helper:
    return Helper(name, fn, flags=CALL_PURE, n_out=n_out, host_float=host_float)


# What RISC-V's F/D define where IEEE 754 does not: a backend with a host FPU path
# inlines the arithmetic helpers under these rules (accel/tcg/host_float.py).
CONVENTIONS = FloatConventions(
    canonical_nan_single=0xFFFF_FFFF_7FC0_0000,  # NaN-boxed 0x7FC00000
    canonical_nan_double=0x7FF8_0000_0000_0000,
    nan_boxed_single=True,
    flag_bits=(16, 8, 4, 2, 1),  # NV DZ OF UF NX
)


def _host_float(kind: str, fmt: int) -> HostFloatOp | None:
    return None if fmt == FMT_H else HostFloatOp(kind, fmt == FMT_S, CONVENTIONS)


def _soft(fmt: int, name: str) -> Callable[..., object]:
    """The softfloat operation ``name`` ("add", "to_i32"...) for ``fmt``."""
    return getattr(_SOFT[fmt], f"{_PREFIX[fmt]}_{name}")


def _arith2(fmt: int, fn: Callable[[int, int, int], Result]) -> Callable[[int, int, int], Result]:
    rd, wr = _READ[fmt], _WRITE[fmt]

    def op(a: int, b: int, rm: int) -> Result:
        r, fl = fn(rd(a), rd(b), rm)
        return wr(r), fl
    return op


def _arith1(fmt: int, fn: Callable[[int, int], Result]) -> Callable[[int, int], Result]:
    rd, wr = _READ[fmt], _WRITE[fmt]

    def op(a: int, rm: int) -> Result:
        r, fl = fn(rd(a), rm)
        return wr(r), fl
    return op


def _fma(fmt: int, neg_product: bool, neg_addend: bool) -> Callable[..., Result]:
    fn = _soft(fmt, "fma")
    rd, wr = _READ[fmt], _WRITE[fmt]

    def op(a: int, b: int, c: int, rm: int) -> Result:
        r, fl = fn(rd(a), rd(b), rd(c), rm, neg_product, neg_addend)
        return wr(r), fl
    return op


def _minmax(fmt: int, fn: Callable[[int, int], Result]) -> Callable[[int, int], Result]:
    rd, wr = _READ[fmt], _WRITE[fmt]

    def op(a: int, b: int) -> Result:
        r, fl = fn(rd(a), rd(b))
        return wr(r), fl
    return op


def _compare(fmt: int, fn: Callable[[int, int], Result]) -> Callable[[int, int], Result]:
    rd = _READ[fmt]

    def op(a: int, b: int) -> Result:
        return fn(rd(a), rd(b))
    return op


def _classify(fmt: int) -> Callable[[int], int]:
    fn = _soft(fmt, "classify")
    rd = _READ[fmt]

    def op(a: int) -> int:
        return fn(rd(a))
    return op


def _to_int(fmt: int, fn: Callable[[int, int], Result], width: int) -> Callable[..., Result]:
    rd = _READ[fmt]
    widen = _sext32 if width == 32 else _identity

    def op(a: int, rm: int) -> Result:
        r, fl = fn(rd(a), rm)
        return widen(r), fl
    return op


def _from_int(fmt: int, fn: Callable[[int, int], Result]) -> Callable[[int, int], Result]:
    wr = _WRITE[fmt]

    def op(v: int, rm: int) -> Result:
        r, fl = fn(v, rm)
        return wr(r), fl
    return op


# OP-FP funct5 of the two-operand arithmetic ops -> softfloat name
ARITH2_FUNCT5 = {0x00: "add", 0x01: "sub", 0x02: "mul", 0x03: "div"}
# fcvt integer kinds (the rs2 field): 0 w, 1 wu, 2 l, 3 lu
INT_KINDS = {0: ("i32", 32), 1: ("u32", 32), 2: ("i64", 64), 3: ("u64", 64)}
# FMA major opcodes -> (negate product, negate addend)
FMA_VARIANTS = {0x43: (False, False), 0x47: (False, True), 0x4B: (True, False),
                0x4F: (True, True)}
# feq/flt/fle by funct3
COMPARE_FUNCT3 = {2: "eq", 1: "lt", 0: "le"}

ARITH2: dict[tuple[int, int], Helper] = {}
SQRT: dict[int, Helper] = {}
FMA: dict[tuple[int, int], Helper] = {}
MINMAX: dict[tuple[int, int], Helper] = {}  # (fmt, funct3: 0 min / 1 max)
COMPARE: dict[tuple[int, int], Helper] = {}  # (fmt, funct3)
CLASSIFY: dict[int, Helper] = {}
TO_INT: dict[tuple[int, int], Helper] = {}  # (fmt, kind)
FROM_INT: dict[tuple[int, int], Helper] = {}  # (fmt, kind)

for _fmt in (FMT_S, FMT_D, FMT_H):
    _s = _SUFFIX[_fmt]
    for _f5, _name in ARITH2_FUNCT5.items():
        ARITH2[(_fmt, _f5)] = _helper(f"f{_name}_{_s}", _arith2(_fmt, _soft(_fmt, _name)),
                                      host_float=_host_float(_name, _fmt))
    SQRT[_fmt] = _helper(f"fsqrt_{_s}", _arith1(_fmt, _soft(_fmt, "sqrt")),
                         host_float=_host_float("sqrt", _fmt))
    for _opc, (_np, _na) in FMA_VARIANTS.items():
        FMA[(_fmt, _opc)] = _helper(f"fma{_opc:02x}_{_s}", _fma(_fmt, _np, _na))
    for _f3, _name in ((0, "min"), (1, "max")):
        MINMAX[(_fmt, _f3)] = _helper(f"f{_name}_{_s}", _minmax(_fmt, _soft(_fmt, _name)))
    for _f3, _name in COMPARE_FUNCT3.items():
        COMPARE[(_fmt, _f3)] = _helper(f"f{_name}_{_s}", _compare(_fmt, _soft(_fmt, _name)))
    CLASSIFY[_fmt] = _helper(f"fclass_{_s}", _classify(_fmt), n_out=1)
    for _kind, (_iname, _width) in INT_KINDS.items():
        TO_INT[(_fmt, _kind)] = _helper(
            f"fcvt_{_iname}_{_s}", _to_int(_fmt, _soft(_fmt, f"to_{_iname}"), _width))
        FROM_INT[(_fmt, _kind)] = _helper(
            f"fcvt_{_s}_{_iname}", _from_int(_fmt, _soft(_fmt, f"from_{_iname}")))

# fcvt.d.s and fcvt.s.d
def _s_to_d(a: int, rm: int) -> Result:
    return sf.f32_to_f64(unbox(a), rm)


def _d_to_s(a: int, rm: int) -> Result:
    r, fl = sf.f64_to_f32(a, rm)
    return r | BOX, fl


S_TO_D = _helper("fcvt_d_s", _s_to_d)
D_TO_S = _helper("fcvt_s_d", _d_to_s)


def _fp_convert(src: int, dst: int) -> Callable[[int, int], Result]:
    fn = getattr(half, f"{_PREFIX[src]}_to_{_PREFIX[dst]}")
    rd, wr = _READ[src], _WRITE[dst]

    def op(a: int, rm: int) -> Result:
        r, fl = fn(rd(a), rm)
        return wr(r), fl
    return op


# fcvt between two formats, by (destination fmt, source fmt: fcvt's rs2 field)
FP_CONVERT: dict[tuple[int, int], Helper] = {(FMT_S, FMT_D): D_TO_S, (FMT_D, FMT_S): S_TO_D}
for _dst, _src in ((FMT_S, FMT_H), (FMT_H, FMT_S), (FMT_D, FMT_H), (FMT_H, FMT_D)):
    FP_CONVERT[(_dst, _src)] = _helper(f"fcvt_{_SUFFIX[_dst]}_{_SUFFIX[_src]}",
                                       _fp_convert(_src, _dst))


# -- Zfa ---------------------------------------------------------------------------------

_FORMAT = {FMT_S: F32, FMT_D: F64, FMT_H: F16}


def fli_bits(fmt: int, index: int) -> int:
    """What fli.{s,d,h} loads for rs1 = ``index``, NaN-boxed for the register."""
    return _WRITE[fmt](zfa.fli(_FORMAT[fmt], index))


def _zfa2(fmt: int, fn: Callable[..., Result], boxed_result: bool) -> Callable[..., Result]:
    f, rd, wr = _FORMAT[fmt], _READ[fmt], _WRITE[fmt]

    def op(a: int, b: int) -> Result:
        r, fl = fn(f, rd(a), rd(b))
        return (wr(r) if boxed_result else r), fl
    return op


def _fround(fmt: int, inexact_flag: bool) -> Callable[[int, int], Result]:
    f, rd, wr = _FORMAT[fmt], _READ[fmt], _WRITE[fmt]

    def op(a: int, rm: int) -> Result:
        r, fl = zfa.fround(f, rd(a), rm, inexact_flag)
        return wr(r), fl
    return op


MINMAX_M: dict[tuple[int, int], Helper] = {}  # (fmt, funct3: 2 fminm / 3 fmaxm)
COMPARE_Q: dict[tuple[int, int], Helper] = {}  # (fmt, funct3: 4 fltq / 5 fleq)
ROUND: dict[tuple[int, int], Helper] = {}  # (fmt, rs2: 4 fround / 5 froundnx)
for _fmt in (FMT_S, FMT_D, FMT_H):
    _s = _SUFFIX[_fmt]
    MINMAX_M[(_fmt, 2)] = _helper(f"fminm_{_s}", _zfa2(_fmt, zfa.fminm, True))
    MINMAX_M[(_fmt, 3)] = _helper(f"fmaxm_{_s}", _zfa2(_fmt, zfa.fmaxm, True))
    COMPARE_Q[(_fmt, 4)] = _helper(f"fltq_{_s}", _zfa2(_fmt, zfa.fltq, False))
    COMPARE_Q[(_fmt, 5)] = _helper(f"fleq_{_s}", _zfa2(_fmt, zfa.fleq, False))
    ROUND[(_fmt, 4)] = _helper(f"fround_{_s}", _fround(_fmt, False))
    ROUND[(_fmt, 5)] = _helper(f"froundnx_{_s}", _fround(_fmt, True))
FCVTMOD_W_D = _helper("fcvtmod_w_d", lambda a, rm: zfa.fcvtmod_w_d(a))
