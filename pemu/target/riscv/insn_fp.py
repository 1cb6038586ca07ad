"""Handlers for the F and D extensions (and Zfh, Zfhmin, Zfa): ``HANDLERS[NAME]`` is
``trans_NAME`` of the decode table's pattern NAME (riscv_decode.py).

Arithmetic, conversions, comparisons, min/max, fclass and the fused multiply-adds go
through the pure helpers of fp_helpers (which NaN-unbox/box singles); their flags are
ORed into the fflags global.  Loads, stores, sign injection and fmv are inline IR.

mstatus.FS (system mode, from the block flags): with FS Off every handler here emits
the illegal-instruction trap instead; with FS Initial/Clean an instruction that writes
an f register, or accrues non-zero fflags, marks FS Dirty (``fp_state_written``).
Stores, fmv.x.* and fclass only read FP state and mark nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Cond, Const, Helper, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import AND, ANDC, EXT16S, EXT16U, EXT32S, EXT32U, MOV, OR, SHR, XOR
from pemu.target.decode import Args
from pemu.target.riscv import fp_helpers as fp
from pemu.target.riscv.context import DisasContext

BOX = Const(fp.BOX)
BOX_H = Const(fp.BOX_H)
# load/store mnemonic -> (access size, the NaN box of a loaded value, extension needed)
_FP_MEM = {"FLH": (2, BOX_H, "zfhmin"), "FLW": (4, BOX, "f"), "FLD": (8, None, "d"),
           "FSH": (2, None, "zfhmin"), "FSW": (4, None, "f"), "FSD": (8, None, "d")}

Handler = Callable[[DisasContext, Args], "bool | None"]
# an OP-FP emitter: (ctx, fields) -> False when the encoding is reserved
OpFpEmit = Callable[[DisasContext, Args], bool]


# -- loads and stores -------------------------------------------------------------------

def _load_fp(size: int, box: Const | None, needs: str) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if ctx.fp_disabled():
            return None
        if needs not in ctx.ext:
            return False
        fd = ctx.fr[a.rd]
        addr = ctx.address(a.rs1, a.imm)
        if box is None:
            ctx.b.ld(fd, addr, MemOp(size))
        else:
            t = ctx.b.temp()
            ctx.b.ld(t, addr, MemOp(size))
            ctx.b.binop(OR, fd, t, box)
        ctx.fp_state_written()  # after the load: a faulting load leaves FS as it was
        return None
    return trans


def _store_fp(size: int, needs: str) -> Handler:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if ctx.fp_disabled():
            return None
        if needs not in ctx.ext:
            return False
        addr = ctx.address(a.rs1, a.imm)
        # fsw/fsh store the low bits as they are, whatever the boxing
        ctx.b.st(ctx.fr[a.rs2], addr, MemOp(size))
        return None
    return trans


# -- helper calls ------------------------------------------------------------------------

def _call_fp(ctx: DisasContext, helper: Helper, dest: Temp, ins: list[Operand],
             f_dest: bool = True) -> None:
    """Call ``helper``, write its result to ``dest`` and accrue its flags.  ``f_dest``:
    dest is an f register (else an x register: only the flags change FP state)."""
    flags = ctx.b.temp()
    ctx.b.call(helper, [dest, flags], ins)
    ctx.accrue(flags)
    ctx.fp_state_written(None if f_dest else flags)


def _fma(opcode: int) -> Handler:
    """fmadd/fmsub/fnmsub/fnmadd: fp.FMA by (fmt, major opcode)."""
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if ctx.fp_disabled():
            return None
        fmt = a.fmt
        has = _has_format(ctx, fmt) and (fmt != fp.FMT_H or "zfh" in ctx.ext)
        helper = fp.FMA.get((fmt, opcode)) if has else None
        rm_op = ctx.rounding_mode(a.rm) if helper is not None else None
        if helper is None or rm_op is None:
            return False
        _call_fp(ctx, helper, ctx.fr[a.rd], [ctx.fr[a.rs1], ctx.fr[a.rs2], ctx.fr[a.rs3], rm_op])
        return None
    return trans


def _arith2(funct5: int) -> OpFpEmit:
    def emit(ctx: DisasContext, a: Args) -> bool:
        rm_op = ctx.rounding_mode(a.rm)
        if rm_op is None:
            return False
        _call_fp(ctx, fp.ARITH2[(a.fmt, funct5)], ctx.fr[a.rd],
                 [ctx.fr[a.rs1], ctx.fr[a.rs2], rm_op])
        return True
    return emit


def _sqrt(ctx: DisasContext, a: Args) -> bool:
    rm_op = ctx.rounding_mode(a.rm)
    if rm_op is None:
        return False
    _call_fp(ctx, fp.SQRT[a.fmt], ctx.fr[a.rd], [ctx.fr[a.rs1], rm_op])
    return True


# NaN-boxed formats -> (value bits, zero-extension op, canonical NaN, box, sign bit)
_BOXED = {fp.FMT_S: (32, EXT32U, fp.CANONICAL_NAN_S, BOX, fp.F32_SIGN),
          fp.FMT_H: (16, EXT16U, fp.CANONICAL_NAN_H, BOX_H, fp.F16_SIGN)}


def _unboxed(ctx: DisasContext, reg: Temp, fmt: int = fp.FMT_S) -> Temp:
    """IR for NaN-unboxing a single or half: the low bits, or the canonical NaN."""
    bits, zext, nan, _, _ = _BOXED[fmt]
    b = ctx.b
    hi, lo, out = b.temp(), b.temp(), b.temp()
    b.binop(SHR, hi, reg, Const(bits))
    b.unop(zext, lo, reg)
    b.movcond(out, Cond.EQ, hi, Const((1 << (64 - bits)) - 1), lo, Const(nan))
    return out


def _sign_inject(f3: int) -> OpFpEmit:
    """fsgnj (f3 0), fsgnjn (1), fsgnjx (2)."""
    def emit(ctx: DisasContext, a: Args) -> bool:
        return _emit_sign_inject(ctx, a.fmt, a.rd, a.rs1, a.rs2, f3)
    return emit


def _emit_sign_inject(ctx: DisasContext, fmt: int, rd: int, rs1: int, rs2: int, f3: int
                      ) -> bool:
    b = ctx.b
    boxed = _BOXED.get(fmt)
    sign = boxed[4] if boxed else fp.F64_SIGN
    if boxed:
        a: Operand = _unboxed(ctx, ctx.fr[rs1], fmt)
        s: Operand = a if rs1 == rs2 else _unboxed(ctx, ctx.fr[rs2], fmt)
    else:
        a = s = ctx.fr[rs1]
        if rs1 != rs2:
            s = ctx.fr[rs2]
    sign_bit, result = b.temp(), b.temp()
    if f3 == 0:  # fsgnj: sign of rs2
        b.binop(AND, sign_bit, s, Const(sign))
        b.binop(AND, result, a, Const(sign - 1))
        b.binop(OR, result, result, sign_bit)
    elif f3 == 1:  # fsgnjn: inverted sign of rs2
        b.binop(ANDC, sign_bit, Const(sign), s)
        b.binop(AND, result, a, Const(sign - 1))
        b.binop(OR, result, result, sign_bit)
    else:  # fsgnjx: sign of rs1 xor sign of rs2
        b.binop(AND, sign_bit, s, Const(sign))
        b.binop(XOR, result, a, sign_bit)
    if boxed:
        b.binop(OR, ctx.fr[rd], result, boxed[3])
    else:
        b.mov(ctx.fr[rd], result)
    ctx.fp_state_written()
    return True


def _minmax(f3: int) -> OpFpEmit:
    """fmin/fmax (f3 0/1), Zfa's fminm/fmaxm (2/3)."""
    def emit(ctx: DisasContext, a: Args) -> bool:
        fmt = a.fmt
        helper = fp.MINMAX.get((fmt, f3)) or _zfa(ctx, fp.MINMAX_M, (fmt, f3))
        if helper is None:
            return False
        _call_fp(ctx, helper, ctx.fr[a.rd], [ctx.fr[a.rs1], ctx.fr[a.rs2]])
        return True
    return emit


def _fcvt_fp_fp(ctx: DisasContext, a: Args) -> bool:
    # fcvt.s.d is fmt S with src 1 (the source format); fcvt.d.s is fmt D with src 0
    fmt, src = a.fmt, a.src
    helper = fp.FP_CONVERT.get((fmt, src)) if _has_format(ctx, src) else None
    return _round_or_convert(ctx, a, helper)


def _fround(kind: int) -> OpFpEmit:
    """Zfa's fround (kind 4) and froundnx (5): fcvt's encoding with rs2 = kind."""
    def emit(ctx: DisasContext, a: Args) -> bool:
        return _round_or_convert(ctx, a, _zfa(ctx, fp.ROUND, (a.fmt, kind)))
    return emit


def _round_or_convert(ctx: DisasContext, a: Args, helper: Helper | None) -> bool:
    rm_op = ctx.rounding_mode(a.rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.fr[a.rd], [ctx.fr[a.rs1], rm_op])
    return True


def _compare(f3: int) -> OpFpEmit:
    """fle/flt/feq (f3 0/1/2), Zfa's fltq/fleq (4/5)."""
    def emit(ctx: DisasContext, a: Args) -> bool:
        fmt = a.fmt
        helper = fp.COMPARE.get((fmt, f3)) or _zfa(ctx, fp.COMPARE_Q, (fmt, f3))
        if helper is None:
            return False
        _call_fp(ctx, helper, ctx.dest(a.rd), [ctx.fr[a.rs1], ctx.fr[a.rs2]], f_dest=False)
        return True
    return emit


def _fcvt_to_int(ctx: DisasContext, a: Args) -> bool:
    fmt, kind, rm = a.fmt, a.kind, a.rm
    helper = fp.TO_INT.get((fmt, kind))
    if (fmt, kind, rm) == (fp.FMT_D, FCVTMOD_KIND, RM_RTZ) and "zfa" in ctx.ext:
        helper = fp.FCVTMOD_W_D  # fcvtmod.w.d: only with the static rm RTZ
    rm_op = ctx.rounding_mode(rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.dest(a.rd), [ctx.fr[a.rs1], rm_op], f_dest=False)
    return True


def _fcvt_from_int(ctx: DisasContext, a: Args) -> bool:
    helper = fp.FROM_INT.get((a.fmt, a.kind))
    rm_op = ctx.rounding_mode(a.rm) if helper is not None else None
    if helper is None or rm_op is None:
        return False
    _call_fp(ctx, helper, ctx.fr[a.rd], [ctx.xr[a.rs1], rm_op])
    return True


def _fclass(ctx: DisasContext, a: Args) -> bool:
    if a.fmt == fp.FMT_H and "zfh" not in ctx.ext:
        return False  # fclass.h is Zfh's; Zfhmin has only the moves
    ctx.b.call(fp.CLASSIFY[a.fmt], [ctx.dest(a.rd)], [ctx.fr[a.rs1]])
    return True


def _fmv_x(ctx: DisasContext, a: Args) -> bool:
    if a.rd:  # fmv.x.w/fmv.x.h (sign-extend the raw low bits) / fmv.x.d
        ctx.b.unop(_FMV_X[a.fmt], ctx.xr[a.rd], ctx.fr[a.rs1])  # type: ignore[arg-type]
    return True


_FMV_X = {fp.FMT_S: EXT32S, fp.FMT_D: MOV, fp.FMT_H: EXT16S}


def _fli(ctx: DisasContext, a: Args) -> bool:
    if "zfa" not in ctx.ext or (a.fmt == fp.FMT_H and "zfh" not in ctx.ext):
        return False  # fli.h needs Zfh (Zfhmin is not enough)
    ctx.b.movi(ctx.fr[a.rd], fp.fli_bits(a.fmt, a.rs1))  # rs1 is the constant's index
    ctx.fp_state_written()
    return True


def _fmv_f_x(ctx: DisasContext, a: Args) -> bool:
    boxed = _BOXED.get(a.fmt)
    if boxed:  # the box's ones cover every bit above the value's
        ctx.b.binop(OR, ctx.fr[a.rd], ctx.xr[a.rs1], boxed[3])
    else:
        ctx.b.mov(ctx.fr[a.rd], ctx.xr[a.rs1])
    ctx.fp_state_written()
    return True


def _op_fp(emit: OpFpEmit, zfhmin: bool = False) -> Handler:
    """An OP-FP handler: FS Off makes it illegal; the fmt field must name a format the
    hart has (for half precision Zfh, or Zfhmin for its conversions and moves:
    ``zfhmin``)."""
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if ctx.fp_disabled():
            return None
        fmt = a.fmt
        if fmt == fp.FMT_H and not zfhmin and "zfh" not in ctx.ext:
            return False
        if not _has_format(ctx, fmt):
            return False
        return None if emit(ctx, a) else False
    return trans


# Zfa's encodings inside existing OP-FP groups (rs2 / rm fields)
FCVTMOD_KIND = 8
RM_RTZ = 1


def _zfa(ctx: DisasContext, table: dict, key: tuple[int, int]) -> Helper | None:
    """A Zfa helper from ``table`` when the hart has Zfa (and Zfh for half precision)."""
    if "zfa" not in ctx.ext or (key[0] == fp.FMT_H and "zfh" not in ctx.ext):
        return None
    return table.get(key)


_FORMAT_EXTENSION = {fp.FMT_S: "f", fp.FMT_D: "d", fp.FMT_H: "zfhmin"}


def _has_format(ctx: DisasContext, fmt: int) -> bool:
    """Does the hart have any instruction of format ``fmt`` (fmt 3, Q: never)?"""
    return _FORMAT_EXTENSION.get(fmt, "") in ctx.ext


HANDLERS: dict[str, Handler] = {
    **{name: _load_fp(size, box, needs) for name, (size, box, needs) in _FP_MEM.items()
       if name.startswith("FL")},
    **{name: _store_fp(size, needs) for name, (size, _, needs) in _FP_MEM.items()
       if name.startswith("FS")},
    **{name: _fma(opcode) for name, opcode in (
        ("FMADD", 0x43), ("FMSUB", 0x47), ("FNMSUB", 0x4B), ("FNMADD", 0x4F))},
    **{name: _op_fp(_arith2(funct5)) for funct5, name in enumerate(
        ("FADD", "FSUB", "FMUL", "FDIV"))},
    "FSQRT": _op_fp(_sqrt),
    **{name: _op_fp(_sign_inject(f3)) for f3, name in enumerate(("FSGNJ", "FSGNJN", "FSGNJX"))},
    **{name: _op_fp(_minmax(f3)) for f3, name in enumerate(("FMIN", "FMAX", "FMINM", "FMAXM"))},
    # Zfhmin has the half-precision conversions and moves
    "FCVT_F_F": _op_fp(_fcvt_fp_fp, zfhmin=True),
    "FROUND": _op_fp(_fround(4), zfhmin=True), "FROUNDNX": _op_fp(_fround(5), zfhmin=True),
    **{name: _op_fp(_compare(f3)) for f3, name in (
        (0, "FLE"), (1, "FLT"), (2, "FEQ"), (4, "FLTQ"), (5, "FLEQ"))},
    "FCVT_TO_INT": _op_fp(_fcvt_to_int), "FCVT_FROM_INT": _op_fp(_fcvt_from_int),
    "FMV_X": _op_fp(_fmv_x, zfhmin=True), "FCLASS": _op_fp(_fclass, zfhmin=True),
    "FMV_F_X": _op_fp(_fmv_f_x, zfhmin=True), "FLI": _op_fp(_fli, zfhmin=True),
}
