"""vec_op (accel/tcg/vec_op.py) in SSE2: 16 bytes per step, n a multiple of 16.

    xmm1 = src1's value in every element (scalar forms, once)
    rcx = 0
    loop: cmp rcx, n; jae done
          xmm0 = [src2 + rcx]; xmm1 = [src1 + rcx] (vector forms)
          xmm0 = xmm0 <op> xmm1 (padd/psub by SEW, pand, por, pxor; mov: xmm1)
          [dst + rcx] = xmm0; rcx += 16; jmp loop
    done:

Unaligned loads and stores (movdqu): the register file is a Python buffer with no
alignment promise, and legacy SSE ops with a memory operand would need 16.  rcx and
r11 are the codegen's scratch registers inside an op, xmm0/xmm1 scratch everywhere.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Const, Op

from . import encoder as x
from .encoder import R11, RCX, Mem

XMM0, XMM1 = 0, 1
# 66 0F xx: the packed integer op of (kind, SEW)
_PACKED = {("add", 8): 0xFC, ("add", 16): 0xFD, ("add", 32): 0xFE, ("add", 64): 0xD4,
           ("sub", 8): 0xF8, ("sub", 16): 0xF9, ("sub", 32): 0xFA, ("sub", 64): 0xFB}
_LOGIC = {"and": 0xDB, "or": 0xEB, "xor": 0xEF}
# the low SEW bits of r11 times this is the value in every 32-bit lane
_REPEAT32 = {8: 0x0101_0101, 16: 0x0001_0001}


def _packed(a: x.Assembler, opcode: int, d: int, s: int | Mem) -> None:
    a.op(bytes((0x0F, opcode)), d, s, 32, prefix=b"\x66")


def _movdqu_load(a: x.Assembler, d: int, m: Mem) -> None:
    a.op(b"\x0F\x6F", d, m, 32, prefix=b"\xF3")


def _movdqu_store(a: x.Assembler, m: Mem, s: int) -> None:
    a.op(b"\x0F\x7F", s, m, 32, prefix=b"\xF3")


def _broadcast(a: x.Assembler, sew: int, value: int) -> None:
    """xmm1 = the low SEW bits of ``value`` in every element."""
    if sew == 64:
        a.op(b"\x0F\x6E", XMM1, value, 64, prefix=b"\x66")  # movq xmm1, value
        _packed(a, 0x6C, XMM1, XMM1)  # punpcklqdq xmm1, xmm1
        return
    src = value
    if sew in _REPEAT32:
        a.movzx(R11, value, sew // 8)
        a.imul_rri(32, R11, R11, _REPEAT32[sew])
        src = R11
    a.op(b"\x0F\x6E", XMM1, src, 32, prefix=b"\x66")  # movd xmm1, src
    _packed(a, 0x70, XMM1, XMM1)  # pshufd xmm1, xmm1, 0
    a.byte(0)


def emit_vec_op(cg: object, op: Op) -> None:
    a = cg.asm
    vo = op.aux
    regs: list[int] = []
    for v in op.ins:
        if isinstance(v, Const):
            r = cg.ra.pick(set(regs))
            cg.ra.locked.add(r)
            a.mov_ri(r, v.value)
        else:
            r = cg.ra.use(v)
        regs.append(r)
    dst, src2, src1, n = regs
    if vo.scalar:
        _broadcast(a, vo.sew, src1)
    loop, done = x.Label(), x.Label()
    a.mov_ri(RCX, 0)
    a.bind(loop)
    a.alu_rr(x.CMP, 64, RCX, n)
    a.jcc(x.CC_AE, done)
    if vo.kind == "mov":
        if vo.scalar:
            _movdqu_store(a, Mem(dst, 0, RCX), XMM1)
        else:
            _movdqu_load(a, XMM0, Mem(src1, 0, RCX))
            _movdqu_store(a, Mem(dst, 0, RCX), XMM0)
    else:
        _movdqu_load(a, XMM0, Mem(src2, 0, RCX))
        if not vo.scalar:
            _movdqu_load(a, XMM1, Mem(src1, 0, RCX))
        _packed(a, _LOGIC.get(vo.kind) or _PACKED[vo.kind, vo.sew], XMM0, XMM1)
        _movdqu_store(a, Mem(dst, 0, RCX), XMM0)
    a.alu_ri(x.ADD, 64, RCX, 16)
    a.jmp(loop)
    a.bind(done)


__all__ = ["emit_vec_op"]
