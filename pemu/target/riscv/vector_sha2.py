"""Zvknha (vector SHA-256), on the OP-VE major opcode (0x77), OPMVV.

  vsha2ms.vv vd, vs2, vs1   funct6 101101: four new message-schedule words W[16..19]
                            from vd = W[3..0], vs2 = {W[11], W[10], W[9], W[4]},
                            vs1 = W[15..12]
  vsha2ch.vv vd, vs2, vs1   funct6 101110: two rounds with the message+constant words
  vsha2cl.vv vd, vs2, vs1   funct6 101111  in elements 2, 3 (ch) or 0, 1 (cl) of vs1;
                            vs2 = {a, b, e, f}, vd = {c, d, g, h} (element 3 first),
                            and vd gets the new {a, b, e, f}

Element groups of four 32-bit elements (EGS 4, SEW 32: SHA-256; SEW 64, SHA-512, is
Zvknhb, which pemu does not have).  vl and vstart multiples of 4, unmasked, vd apart
from vs1 and vs2, else illegal.  QEMU 7.2 has none of this.
"""

from __future__ import annotations

from pemu.target.riscv.vector_exec import IllegalVector, VInsn

F6_MS, F6_CH, F6_CL = 0x2D, 0x2E, 0x2F
EGS = 4
M32 = 0xFFFF_FFFF


def is_zvknha(insn: int) -> bool:
    return insn & 0x7F == 0x77 and insn >> 12 & 7 == 2 and insn >> 26 in (F6_MS, F6_CH, F6_CL)


def _ror(x: int, n: int) -> int:
    return (x >> n | x << (32 - n)) & M32


def _sig0(x: int) -> int:
    return _ror(x, 7) ^ _ror(x, 18) ^ x >> 3


def _sig1(x: int) -> int:
    return _ror(x, 17) ^ _ror(x, 19) ^ x >> 10


def _sum0(x: int) -> int:
    return _ror(x, 2) ^ _ror(x, 13) ^ _ror(x, 22)


def _sum1(x: int) -> int:
    return _ror(x, 6) ^ _ror(x, 11) ^ _ror(x, 25)


def message_schedule(w0_3: list[int], w4_9_11: list[int], w12_15: list[int]) -> list[int]:
    """Element order (0 first): vd = W0..W3, vs2 = W4, W9, W10, W11, vs1 = W12..W15."""
    w = dict(enumerate(w0_3))
    w[4], w[9], w[10], w[11] = w4_9_11
    w.update({12 + i: x for i, x in enumerate(w12_15)})
    for t in range(16, 20):
        w[t] = (_sig1(w[t - 2]) + w[t - 7] + _sig0(w[t - 15]) + w[t - 16]) & M32
    return [w[16], w[17], w[18], w[19]]


def two_rounds(abef: list[int], cdgh: list[int], wk: tuple[int, int]) -> list[int]:
    """Elements 0..3: abef = f, e, b, a and cdgh = h, g, d, c; returns f, e, b, a."""
    f, e, b, a = abef
    h, g, d, c = cdgh
    for word in wk:
        t1 = (h + _sum1(e) + (e & f ^ ~e & g) + word) & M32
        t2 = (_sum0(a) + (a & b ^ a & c ^ b & c)) & M32
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & M32, c, b, a, (t1 + t2) & M32
    return [f, e, b, a]


def exec_sha2(v: VInsn) -> None:
    vt = v.require_vtype()
    vs = v.vs
    if (vt.sew != 32 or not v.vm or vs.vl % EGS or vs.vstart % EGS
            or vt.lmul_num * v.vlenb * 8 < 128 * vt.lmul_den):
        raise IllegalVector
    nregs = v.group_regs()
    for reg in (v.vd, v.rs1, v.rs2):
        v.require_aligned(reg, nregs)
    if v.vd in (v.rs1, v.rs2):  # groups are aligned: overlap means the same start
        raise IllegalVector
    f6 = v.insn >> 26
    for g in range(vs.vstart // EGS, vs.vl // EGS):
        def group(reg: int) -> list[int]:
            return [v.elem(reg, EGS * g + i, 4) for i in range(EGS)]  # noqa: B023
        d, s2, s1 = group(v.vd), group(v.rs2), group(v.rs1)
        if f6 == F6_MS:
            out = message_schedule(d, s2, s1)
        else:
            out = two_rounds(s2, d, (s1[2], s1[3]) if f6 == F6_CH else (s1[0], s1[1]))
        for i, word in enumerate(out):
            v.set_elem(v.vd, EGS * g + i, 4, word)


__all__ = ["exec_sha2", "is_zvknha"]
