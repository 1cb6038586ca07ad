"""vec_op (accel/tcg/vec_op.py) in SSE2, 16 bytes a step.

    xmm1 = src1's value in every element (scalar forms, once)
    rcx = 0
    loop: while rcx + 16 <= n:
          xmm0 = [src2 + rcx] <op> ([src1 + rcx] or xmm1)  (padd/psub by SEW, pand,
          por, pxor, psll/psrl/psra by the count in xmm1; mov: src1)
          [dst + rcx] = xmm0 ; rcx += 16
    tail: t = n - rcx (< 16) bytes: the same step, stored blended with dst's own bytes
          from t on (a pcmpgtb mask of bytes 0..15 against t)

Unaligned loads and stores (movdqu): the register file is a Python buffer with no
alignment promise, and legacy SSE ops with a memory operand would need 16.  rcx and
r11 are the codegen's scratch registers inside an op, xmm0-xmm3 scratch everywhere
(the generated code keeps no value in an xmm register across ops).
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Const, Op

from . import encoder as x
from .encoder import R11, RCX, Mem

XMM0, XMM1, XMM2, XMM3 = 0, 1, 2, 3
# 66 0F xx: the packed integer op of (kind, SEW)
_PACKED = {("add", 8): 0xFC, ("add", 16): 0xFD, ("add", 32): 0xFE, ("add", 64): 0xD4,
           ("sub", 8): 0xF8, ("sub", 16): 0xF9, ("sub", 32): 0xFA, ("sub", 64): 0xFB}
_LOGIC = {"and": 0xDB, "or": 0xEB, "xor": 0xEF}
# shifts by the count in xmm1's low 64 bits: SSE2 has no byte shifts and no psraq
SHIFT_OPS = {("sll", 16): 0xF1, ("sll", 32): 0xF2, ("sll", 64): 0xF3,
             ("srl", 16): 0xD1, ("srl", 32): 0xD2, ("srl", 64): 0xD3,
             ("sra", 16): 0xE1, ("sra", 32): 0xE2}
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
    if (vo.kind, vo.sew) in SHIFT_OPS:  # xmm1 = the count
        a.mov_rr(64, R11, src1)
        a.alu_ri(x.AND, 64, R11, vo.sew - 1)
        a.op(b"\x0F\x6E", XMM1, R11, 64, prefix=b"\x66")  # movq xmm1, r11
    elif vo.scalar:
        _broadcast(a, vo.sew, src1)
    loop, tail, done = x.Label(), x.Label(), x.Label()
    a.mov_ri(RCX, 0)
    a.bind(loop)  # whole 16-byte steps
    a.lea(R11, Mem(RCX, 16))
    a.alu_rr(x.CMP, 64, R11, n)
    a.jcc(x.CC_A, tail)
    _step(a, vo, dst, src2, src1)
    _movdqu_store(a, Mem(dst, 0, RCX), XMM0)
    a.alu_ri(x.ADD, 64, RCX, 16)
    a.jmp(loop)
    # the last t < 16 bytes: the step computed on the whole 16 bytes there (still inside
    # the register groups: a group is a multiple of 16 bytes, the run ends inside it),
    # stored blended with dst's own bytes from t on (tail elements stay undisturbed)
    a.bind(tail)
    a.mov_rr(64, R11, n)
    a.alu_rr(x.SUB, 64, R11, RCX)
    a.jcc(x.CC_E, done)
    _step(a, vo, dst, src2, src1)
    a.mov_ri(R11, 0x0706_0504_0302_0100)  # xmm2 = bytes 0, 1, ..., 15
    a.op(b"\x0F\x6E", XMM2, R11, 64, prefix=b"\x66")
    a.mov_ri(R11, 0x0F0E_0D0C_0B0A_0908)
    a.op(b"\x0F\x6E", XMM3, R11, 64, prefix=b"\x66")
    _packed(a, 0x6C, XMM2, XMM3)  # punpcklqdq
    a.mov_rr(64, R11, n)  # xmm3 = t in every byte
    a.alu_rr(x.SUB, 64, R11, RCX)
    a.imul_rri(32, R11, R11, 0x0101_0101)
    a.op(b"\x0F\x6E", XMM3, R11, 32, prefix=b"\x66")
    _packed(a, 0x70, XMM3, XMM3)  # pshufd xmm3, xmm3, 0
    a.byte(0)
    _packed(a, 0x64, XMM3, XMM2)  # pcmpgtb: 0xFF where t > i, the bytes to write
    _movdqu_load(a, XMM2, Mem(dst, 0, RCX))
    _packed(a, 0xDB, XMM0, XMM3)  # pand: the new bytes
    _packed(a, 0xDF, XMM3, XMM2)  # pandn: dst's own bytes past t
    _packed(a, 0xEB, XMM0, XMM3)  # por
    _movdqu_store(a, Mem(dst, 0, RCX), XMM0)
    a.bind(done)


def _step(a: x.Assembler, vo: object, dst: int, src2: int, src1: int) -> None:
    """xmm0 = the result of the 16 bytes at offset rcx (not stored)."""
    if vo.kind == "mov":
        if vo.scalar:
            a.op(b"\x0F\x6F", XMM0, XMM1, 32, prefix=b"\x66")  # movdqa xmm0, xmm1
        else:
            _movdqu_load(a, XMM0, Mem(src1, 0, RCX))
        return
    _movdqu_load(a, XMM0, Mem(src2, 0, RCX))
    if not vo.scalar:  # (shifts are scalar: xmm1 holds the count)
        _movdqu_load(a, XMM1, Mem(src1, 0, RCX))
    opcode = (_LOGIC.get(vo.kind) or _PACKED.get((vo.kind, vo.sew))
              or SHIFT_OPS[vo.kind, vo.sew])
    _packed(a, opcode, XMM0, XMM1)


__all__ = ["SHIFT_OPS", "emit_vec_op"]
