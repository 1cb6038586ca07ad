"""Advanced SIMD "by element" forms: MUL, MLA, MLS, SQDMULH, SQRDMULH, the long
[SU]MULL/[SU]MLAL/[SU]MLSL/SQDMULL/SQDMLAL/SQDMLSL (and their "2" forms), and FP FMUL,
FMULX, FMLA, FMLS with one lane of Vm.  The lane is replicated into a value that takes Vm's
place in the three-same, three-different and vector FP handlers."""

from __future__ import annotations

from pemu.target.aarch64 import insn_simd, insn_simd_fp, insn_simd_wide
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.simd_common import get_element, replicate
from pemu.target.decode import Args

SIMD_ELEM_DECODE = r"""
SIMD_ELEM    0 q:1 u:1 01111 size:2 l:1 m:1 rm:4 opcode:4 h:1 0 rn:5 rd:5
"""

# (U, opcode) -> the three-same opcode (with U) it is the by-element form of
_SAME = {(0, 8): (0, 19), (1, 0): (0, 18), (1, 4): (1, 18), (0, 12): (0, 22),
         (0, 13): (1, 22)}
# (U, opcode) -> the three-different opcode
_DIFF = {(0, 2): 8, (0, 6): 10, (0, 10): 12, (1, 2): 8, (1, 6): 10, (1, 10): 12,
         (0, 3): 9, (0, 7): 11, (0, 11): 13}
# (U, opcode) -> the vector FP (U, a, fop): FMLA, FMLS, FMUL, FMULX
_FP = {(0, 1): (0, 0, 1), (0, 5): (0, 1, 1), (0, 9): (1, 0, 3), (1, 9): (0, 0, 3)}


def trans_SIMD_ELEM(ctx: DisasContext, a) -> bool | None:
    key = (a.u, a.opcode)
    fp = key in _FP and a.size >= 2
    if fp:
        sz = a.size & 1
        if sz and (a.l or not a.q):
            return False
        esize, index, rm = 32 << sz, (a.h if sz else a.h << 1 | a.l), a.m << 4 | a.rm
    elif a.size == 1:
        esize, index, rm = 16, a.h << 2 | a.l << 1 | a.m, a.rm
    elif a.size == 2:
        esize, index, rm = 32, a.h << 1 | a.l, a.m << 4 | a.rm
    else:
        return False
    if not fp and key not in _SAME and key not in _DIFF:
        return False
    fields = a.fields()
    lane = replicate(ctx, get_element(ctx, rm, esize, index), esize)
    fields["rm"] = (lane, lane)
    if fp:
        u, aa, fop = _FP[key]
        fields.update(u=u, a=aa, fop=fop, sz=a.size & 1)
        return insn_simd_fp.trans_SIMD_3SAME_FP(ctx, Args(fields))
    if key in _SAME:
        fields["u"], fields["opcode"] = _SAME[key]
        return insn_simd.trans_SIMD_3SAME(ctx, Args(fields))
    fields["opcode"] = _DIFF[key]
    return insn_simd_wide.trans_SIMD_3DIFF(ctx, Args(fields))


__all__ = [name for name in dir() if name.startswith("trans_")] + ["SIMD_ELEM_DECODE"]
