"""Float add, sub, mul, div and sqrt in SSE, where SSE gives the exact answer.

A target marks the soft-float helpers the host may compute with ``Helper.host_float``
(accel/tcg/host_float.py: ``outs = [result, flags]``, ``ins = [a, (b,) rm]``).  In
round-to-nearest-even IEEE arithmetic is fully specified, so the host's SSE unit
computes the same result bits; what the guest defines itself is fixed up inline, from
the helper's ``FloatConventions``:

* the flags come from MXCSR (cleared before the op), IE DZ OE UE PE mapped to the
  guest's bits by a table.  x86 detects tininess after rounding and, with underflow
  masked, raises UE only when the tiny result is also inexact (as RISC-V does).  DE (a
  denormal operand) is ignored; DAZ and FTZ stay off, so denormals are exact.
* a NaN result becomes the guest's canonical NaN (x86 returns its "default NaN" or an
  input's payload).
* NaN-boxed singles: an operand whose upper 32 bits are not all ones takes the helper.

Any other rounding mode - a static rm other than 0, or a dynamic one not 0 at run
time - takes the helper call, which the code generator emits right behind.
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.host_float import FloatConventions, HostFloatOp
from pemu.accel.tcg.ir import Const, Helper, Operand

from . import encoder as x
from .encoder import R11, RAX, RCX, RDI, RDX, RSI, RSP, Assembler, Label, Mem

XMM0, XMM1 = 0, 1
MXCSR_DEFAULT = 0x1F80  # all exceptions masked, round to nearest, no DAZ/FTZ, flags clear
SCRATCH = Mem(RSP, -8)  # red zone: the code is a leaf here (no call before it is read)

# opcode byte of addsd/subsd/mulsd/divsd/sqrtsd (F2 prefix) and the ss forms (F3)
_OPCODE = {"add": 0x58, "sub": 0x5C, "mul": 0x59, "div": 0x5E, "sqrt": 0x51}
# MXCSR exception bits for IEEE's invalid, div-by-zero, overflow, underflow, inexact
_MXCSR_BITS = (1, 4, 8, 16, 32)


def _flags_table(conventions: FloatConventions) -> ctypes.Array:
    """64-byte table: MXCSR exception bits (IE DE ZE OE UE PE) -> the guest's flags."""
    table = (ctypes.c_uint8 * 64)()
    for m in range(64):
        table[m] = sum(guest for mx, guest in zip(_MXCSR_BITS, conventions.flag_bits,
                                                  strict=True) if m & mx)
    return table


_TABLES: dict[FloatConventions, ctypes.Array] = {}  # kept alive: code holds addresses


def flags_table(conventions: FloatConventions) -> ctypes.Array:
    table = _TABLES.get(conventions)
    if table is None:
        table = _TABLES[conventions] = _flags_table(conventions)
    return table


class SseOp:
    __slots__ = ("single", "opcode", "n_in", "canonical_nan", "nan_boxed", "table_address")

    def __init__(self, spec: HostFloatOp) -> None:
        conv = spec.conventions
        self.single = spec.single
        self.opcode = _OPCODE[spec.kind]
        self.n_in = spec.n_in
        self.canonical_nan = conv.canonical_nan_single if spec.single \
            else conv.canonical_nan_double
        self.nan_boxed = spec.single and conv.nan_boxed_single
        self.table_address = ctypes.addressof(flags_table(conv))


_OPS: dict[HostFloatOp, SseOp] = {}


def sse_op(h: Helper) -> SseOp | None:
    """The SSE form of helper h, if its target declared one (``Helper.host_float``)."""
    spec = h.host_float
    if not isinstance(spec, HostFloatOp) or spec.kind not in _OPCODE:
        return None
    op = _OPS.get(spec)
    if op is None:
        op = _OPS[spec] = SseOp(spec)
    return op


def applicable(op: SseOp, ins: list[Operand]) -> bool:
    """False when the static rounding mode rules SSE out (then: only the helper)."""
    rm = ins[op.n_in - 1]
    return not isinstance(rm, Const) or rm.value == 0


def emit_fast_path(a: Assembler, op: SseOp, ins: list[Operand], slow: Label,
                   ctx_offset: int) -> int:
    """With the helper's arguments in rdi, rsi (, rdx): the result in rax and the flags
    in ctx[1] (where a two-output helper's second output goes), or a jump to ``slow``.
    Clobbers rcx, r11, xmm0, xmm1 and the flags.  Returns the offset of the flags
    table's address in the code (a host address: relocated by the translation cache)."""
    rm_reg = (RDI, RSI, RDX)[op.n_in - 1]
    operands = (RDI, RSI)[:op.n_in - 1]
    if not isinstance(ins[op.n_in - 1], Const):
        a.test_rr(64, rm_reg, rm_reg)  # dynamic frm: only round-to-nearest here
        a.jcc(x.CC_NE, slow)
    if op.nan_boxed:
        for r in operands:  # NaN-boxed?
            a.mov_rr(64, R11, r)
            a.shift_ri(x.SHR, 64, R11, 32)
            a.alu_ri(x.CMP, 32, R11, -1)
            a.jcc(x.CC_NE, slow)
    a.store_imm(4, SCRATCH, MXCSR_DEFAULT)
    a.op(b"\x0F\xAE", 2, SCRATCH, 32)  # ldmxcsr
    movq = 32 if op.single else 64  # movd / movq xmm, r
    a.op(b"\x0F\x6E", XMM0, RDI, movq, prefix=b"\x66")
    prefix = b"\xF3" if op.single else b"\xF2"
    if op.n_in == 3:
        a.op(b"\x0F\x6E", XMM1, RSI, movq, prefix=b"\x66")
        a.op(bytes((0x0F, op.opcode)), XMM0, XMM1, 32, prefix=prefix)
    else:
        a.op(bytes((0x0F, op.opcode)), XMM0, XMM0, 32, prefix=prefix)
    a.op(b"\x0F\xAE", 3, SCRATCH, 32)  # stmxcsr
    # result: canonical NaN if unordered with itself
    a.op(b"\x0F\x7E", XMM0, RAX, movq, prefix=b"\x66")  # movq/movd rax, xmm0
    if op.single:
        if op.nan_boxed:
            a.mov_ri(R11, 0xFFFF_FFFF_0000_0000)
            a.alu_rr(x.OR, 64, RAX, R11)
        a.op(b"\x0F\x2E", XMM0, XMM0, 32)  # ucomiss
    else:
        a.op(b"\x0F\x2E", XMM0, XMM0, 32, prefix=b"\x66")  # ucomisd
    a.mov_ri(R11, op.canonical_nan)
    a.cmov(x.CC_P, 64, RAX, R11)
    # flags: table[mxcsr & 63] -> ctx[1]
    a.load(32, RCX, SCRATCH)
    a.alu_ri(x.AND, 32, RCX, 63)
    table_at = a.mov_ri64(R11, op.table_address)
    a.movzx(RCX, Mem(R11, 0, RCX), 1)
    a.load(64, R11, Mem(RSP, ctx_offset))
    a.store(8, Mem(R11, 8), RCX)
    return table_at


__all__ = ["flags_table", "SseOp", "applicable", "emit_fast_path", "sse_op"]
