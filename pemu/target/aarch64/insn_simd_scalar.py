"""Advanced SIMD scalar forms: the same operations on one lane held in a B/H/S/D
register (the rest of the V register zeroed).  Three-same, two-register miscellaneous
and shift-by-immediate run the vector handlers on a view of the fields with
``scalar`` set (simd_common.lane_count: one lane); pairwise (ADDP, FADDP, FMAXP,
FMINP, FMAXNMP, FMINNMP) and DUP (element) to a scalar are here."""

from __future__ import annotations

from pemu.accel.tcg.ir import Const
from pemu.accel.tcg.opcodes import ADD
from pemu.target.aarch64 import insn_simd, insn_simd_fp, insn_simd_misc
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.simd_common import get_element, read_v, scalar_view, write_v
from pemu.target.decode import Args

SCALAR_DECODE = r"""
# -- Advanced SIMD scalar -----------------------------------------------------------------
SIMD_SCALAR_3SAME    01 u:1 11110 size:2 1 rm:5 opcode:5 1 rn:5 rd:5
SIMD_SCALAR_MISC     01 u:1 11110 size:2 10000 opcode:5 10 rn:5 rd:5
SIMD_SCALAR_PAIRWISE 01 u:1 11110 size:2 11000 opcode:5 10 rn:5 rd:5
SIMD_SCALAR_SHIFT    01 u:1 111110 immh:4 immb:3 opcode:5 1 rn:5 rd:5
SIMD_SCALAR_COPY     01 op:1 11110000 imm5:5 0 imm4:4 1 rn:5 rd:5
"""


def _fp_view(a) -> Args:
    """A scalar FP instruction's fields as the vector FP handlers read them."""
    view = scalar_view(a)
    view.a, view.sz = a.size >> 1, a.size & 1
    return view


def trans_SIMD_SCALAR_3SAME(ctx: DisasContext, a) -> bool | None:
    if a.opcode >= 24:  # FABD, FCMEQ/GE/GT, FACGE/GT (FMULX, FRECPS, FRSQRTS: not yet)
        view = _fp_view(a)
        view.fop = a.opcode & 7
        return insn_simd_fp.trans_SIMD_3SAME_FP(ctx, view)
    return insn_simd.trans_SIMD_3SAME(ctx, scalar_view(a))


def trans_SIMD_SCALAR_MISC(ctx: DisasContext, a) -> bool | None:
    if insn_simd_misc.trans_SIMD_MISC(ctx, scalar_view(a)) is None:
        return None
    # the FP compares with zero and conversions (SCVTF d0, d1; FCVTZS s0, s1...)
    return insn_simd_fp.trans_SIMD_MISC_FP(ctx, _fp_view(a))


def trans_SIMD_SCALAR_SHIFT(ctx: DisasContext, a) -> bool | None:
    if a.immh == 0:
        return False
    return insn_simd_misc.trans_SIMD_SHIFT(ctx, scalar_view(a))


_FP_PAIRWISE = {(12, 0): "fmaxnmp", (12, 1): "fminnmp", (13, 0): "faddp", (15, 0): "fmaxp",
                (15, 1): "fminp"}


def trans_SIMD_SCALAR_PAIRWISE(ctx: DisasContext, a) -> bool | None:
    lo, hi = read_v(ctx, a.rn)
    if (a.u, a.opcode) == (0, 27) and a.size == 3:  # ADDP d, v.2d
        r = ctx.temp()
        ctx.b.binop(ADD, r, lo, hi)
        write_v(ctx, a.rd, r, Const(0), 0)
        return None
    name = _FP_PAIRWISE.get((a.opcode, a.size >> 1))
    if not a.u or name is None:
        return False
    sz = a.size & 1
    # single: the two lanes of the low half; double: the two halves, one lane each
    r = insn_simd_fp.pairwise_half(ctx, name, sz, lo, Const(0) if sz == 0 else hi)
    write_v(ctx, a.rd, r, Const(0), 0)
    return None


def trans_SIMD_SCALAR_COPY(ctx: DisasContext, a) -> bool | None:
    """DUP (element) to a scalar: MOV b/h/s/d, Vn.T[i]."""
    if a.op or a.imm4 or not a.imm5 & 0xF:
        return False
    k = (a.imm5 & -a.imm5).bit_length() - 1
    esize, index = 8 << k, a.imm5 >> (k + 1)
    write_v(ctx, a.rd, get_element(ctx, a.rn, esize, index), Const(0), 0)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")] + ["SCALAR_DECODE"]
