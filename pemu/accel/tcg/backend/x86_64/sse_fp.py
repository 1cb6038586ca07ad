"""RISC-V F/D add, sub, mul, div and sqrt in SSE, where SSE gives the exact answer.

The frontend emits these as pure calls to the soft-float helpers of
``pemu.target.riscv.fp_helpers`` (``outs = [result, fflags]``, ``ins = [a, (b,) rm]``).
In round-to-nearest-even IEEE arithmetic is fully specified, so the host's SSE unit
computes the same result bits; what differs is fixed up inline:

* fflags come from MXCSR (cleared before the op): IE->NV, ZE->DZ, OE->OF, UE->UF,
  PE->NX.  Both x86 and RISC-V detect tininess after rounding and, with underflow
  masked, raise UF only when the tiny result is also inexact.  DE (a denormal operand)
  has no RISC-V counterpart; DAZ and FTZ stay off, so denormals are exact.
* a NaN result becomes RISC-V's canonical NaN (x86 returns its "default NaN" or an
  input's payload).
* singles are NaN-boxed: an operand whose upper 32 bits are not all ones takes the
  helper (which reads it as the canonical NaN).

Any other rounding mode - a static rm other than 0, or the dynamic frm not 0 at run
time - takes the helper call, which the code generator emits right behind.
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.ir import Const, Helper, Operand

from . import encoder as x
from .encoder import R11, RAX, RCX, RDI, RDX, RSI, RSP, Assembler, Label, Mem

XMM0, XMM1 = 0, 1
MXCSR_DEFAULT = 0x1F80  # all exceptions masked, round to nearest, no DAZ/FTZ, flags clear
CANONICAL_NAN_D = 0x7FF8_0000_0000_0000
CANONICAL_NAN_S_BOXED = 0xFFFF_FFFF_7FC0_0000
SCRATCH = Mem(RSP, -8)  # red zone: the code is a leaf here (no call before it is read)

# opcode byte of addsd/subsd/mulsd/divsd/sqrtsd (F2 prefix) and the ss forms (F3)
_ADD, _SUB, _MUL, _DIV, _SQRT = 0x58, 0x5C, 0x59, 0x5E, 0x51


def _mxcsr_to_fflags() -> ctypes.Array:
    """64-byte table: MXCSR exception bits (IE DE ZE OE UE PE) -> RISC-V fflags."""
    table = (ctypes.c_uint8 * 64)()
    for m in range(64):
        table[m] = ((16 if m & 1 else 0) | (8 if m & 4 else 0) | (4 if m & 8 else 0)
                    | (2 if m & 16 else 0) | (1 if m & 32 else 0))
    return table


FFLAGS_TABLE = _mxcsr_to_fflags()
_table_address = ctypes.addressof(FFLAGS_TABLE)


class SseOp:
    __slots__ = ("single", "opcode", "n_in")

    def __init__(self, single: bool, opcode: int, n_in: int) -> None:
        self.single = single
        self.opcode = opcode
        self.n_in = n_in


_OPS: dict[int, SseOp] | None = None


def sse_op(h: Helper) -> SseOp | None:
    """The SSE form of helper h, if it is one of the RISC-V arithmetic helpers."""
    global _OPS
    if _OPS is None:
        from pemu.target.riscv import fp_helpers as fp

        ops: dict[int, SseOp] = {}
        for fmt, single in ((fp.FMT_S, True), (fp.FMT_D, False)):
            for f5, opcode in ((0, _ADD), (1, _SUB), (2, _MUL), (3, _DIV)):
                ops[id(fp.ARITH2[(fmt, f5)])] = SseOp(single, opcode, 3)
            ops[id(fp.SQRT[fmt])] = SseOp(single, _SQRT, 2)
        _OPS = ops
    return _OPS.get(id(h))


def applicable(op: SseOp, ins: list[Operand]) -> bool:
    """False when the static rounding mode rules SSE out (then: only the helper)."""
    rm = ins[op.n_in - 1]
    return not isinstance(rm, Const) or rm.value == 0


def emit_fast_path(a: Assembler, op: SseOp, ins: list[Operand], slow: Label,
                   ctx_offset: int) -> None:
    """With the helper's arguments in rdi, rsi (, rdx): the result in rax and the flags
    in ctx[1] (where a two-output helper's second output goes), or a jump to ``slow``.
    Clobbers rcx, r11, xmm0, xmm1 and the flags."""
    rm_reg = (RDI, RSI, RDX)[op.n_in - 1]
    operands = (RDI, RSI)[:op.n_in - 1]
    if not isinstance(ins[op.n_in - 1], Const):
        a.test_rr(64, rm_reg, rm_reg)  # dynamic frm: only round-to-nearest here
        a.jcc(x.CC_NE, slow)
    if op.single:
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
        a.mov_ri(R11, 0xFFFF_FFFF_0000_0000)
        a.alu_rr(x.OR, 64, RAX, R11)
        a.op(b"\x0F\x2E", XMM0, XMM0, 32)  # ucomiss
        a.mov_ri(R11, CANONICAL_NAN_S_BOXED)
    else:
        a.op(b"\x0F\x2E", XMM0, XMM0, 32, prefix=b"\x66")  # ucomisd
        a.mov_ri(R11, CANONICAL_NAN_D)
    a.cmov(x.CC_P, 64, RAX, R11)
    # flags: table[mxcsr & 63] -> ctx[1]
    a.load(32, RCX, SCRATCH)
    a.alu_ri(x.AND, 32, RCX, 63)
    a.mov_ri(R11, _table_address)
    a.movzx(RCX, Mem(R11, 0, RCX), 1)
    a.load(64, R11, Mem(RSP, ctx_offset))
    a.store(8, Mem(R11, 8), RCX)


__all__ = ["FFLAGS_TABLE", "SseOp", "applicable", "emit_fast_path", "sse_op"]
