"""The hot vector instructions in translated code: vsetvli/vsetivli, unit-stride moves
and the simplest integer arithmetic, with the helper (insn_vector.py) as the slow path
of each.

What a Linux kernel with V runs most is its user-copy loop (``vsetvli t0, a2, e8, m8;
vle8ff.v v0, (a1); vse8.v v0, (a0)``, from 768 bytes on) and the context switch's
whole-register saves and restores; each was one Python helper call per instruction.
Here they become IR on the state slots of vector_state.py (vl, vtype, vstart, the
register file's host address):

* vsetvli/vsetivli with a legal vtype immediate: vl = min(AVL, VLMAX) computed inline
  (VLMAX is a constant of the immediate and VLEN); vtype and vstart = 0 stored.
* unit-stride loads and stores (vle<eew>/vle<eew>ff/vse<eew>, unmasked, nf = 1),
  whole-register vl<nf>re<eew>/vs<nf>r and mask vlm/vsm: one ``ld_bytes``/
  ``st_bytes`` of the run between the register group and guest memory.  That op is
  weak: it moves the bytes only where the run lies in one page the inline TLB maps
  for the access (else it moves nothing), and the helper then runs the instruction,
  faulting at the exact element with vstart set.  Elements are packed in a register
  group in memory order, so one copy is exactly the element loop where nothing faults.
* vadd/vsub/vand/vor/vxor .vv/.vx/.vi and vmv.v.v/.v.x/.v.i, unmasked: one ``vec_op``
  over the vl elements of the register groups (accel/tcg/vec_op.py; SSE2 on the native
  backend, the elements past vl undisturbed); vmv<nr>r.v as one ``vec_op`` of
  nr * VLENB bytes (it ignores vtype); vsll/vsrl .vx/.vi at SEW 16-64 and vsra
  .vx/.vi at SEW 16/32 (what SSE2 shifts).

Legality is decided while translating, from the vtype a vsetvli/vsetivli earlier in
the same block set (``ctx.vtype``; a block starting elsewhere calls the helper for
loads and stores whose size depends on vtype): a setting the helper would find
illegal (EMUL out of range, a misaligned group, vill) emits only the helper, which
traps.  At run time the inline path also requires vstart = 0 and mstatus.VS Dirty (the
helper marks a Clean VS Dirty, or traps on Off; user mode's VS reads as Dirty); under
V=1 (H) vsstatus.VS counts too, so those blocks use the helper.  Tail and inactive
elements stay undisturbed either way (the policy the helper implements).
"""

from __future__ import annotations

from pemu.accel.tcg.ir import I64, Cond, Const, Label, Operand
from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    LD_BYTES,
    MINU,
    OR,
    SHL,
    SHR,
    ST_BYTES,
    VEC_OP,
    XOR,
)
from pemu.accel.tcg.vec_op import VecOp
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.priv import FLAG_VIRT
from pemu.target.riscv.vector_state import VType, decode_vtype

MSTATUS_VS = 3 << 9
MASK64 = (1 << 64) - 1
OP_V = 0x57
OP_STORE_FP = 0x27
OPCFG = 7
EEW_BYTES = {0: 1, 5: 2, 6: 4, 7: 8}  # LOAD-FP/STORE-FP width field -> element size
LUMOP_UNIT, LUMOP_WHOLE, LUMOP_MASK, LUMOP_FAULT_FIRST = 0x00, 0x08, 0x0B, 0x10


def set_vtype(insn: int) -> int | None:
    """The vtype immediate of a vsetvli/vsetivli (None: vsetvl, or not a vset)."""
    if insn & 0x7F != OP_V or (insn >> 12) & 7 != OPCFG:
        return None
    if insn >> 31 == 0:
        return (insn >> 20) & 0x7FF
    if insn >> 30 == 3:
        return (insn >> 20) & 0x3FF
    return None


def trans_vector_inline(ctx: DisasContext, insn: int) -> list[Label] | None:
    """Emit the inline path of ``insn`` if it has one: then the caller emits the helper
    call (the slow path the inline code branches to) and binds the returned labels
    after it.  None: nothing emitted, the helper alone runs the instruction."""
    if ctx.flags & FLAG_VIRT:
        return None
    major = insn & 0x7F
    if major == OP_V:
        raw = set_vtype(insn)
        if raw is None:
            return _arith(ctx, insn)
        vt = decode_vtype(raw, ctx.elen)
        return None if vt.vill else _vset(ctx, insn, vt)
    return _unit_stride(ctx, insn, major == OP_STORE_FP)


def _guard(ctx: DisasContext) -> Operand:
    """Zero when vstart is 0 and mstatus.VS is Dirty."""
    b = ctx.b
    t = b.temp()
    b.binop(AND, t, b.glob("mstatus"), Const(MSTATUS_VS))
    b.binop(XOR, t, t, Const(MSTATUS_VS))
    b.binop(OR, t, t, b.glob("vstart"))
    return t


def _vset(ctx: DisasContext, insn: int, vt: VType) -> list[Label]:
    b = ctx.b
    rd, rs1 = (insn >> 7) & 31, (insn >> 15) & 31
    vlmax = vt.vlmax(ctx.vlenb)
    slow, done = b.label(), b.label()
    _guard_vs(ctx, slow)
    vl = b.glob("vl")
    if insn >> 30 == 3:  # vsetivli: the AVL is the 5-bit immediate
        b.movi(vl, min(rs1, vlmax))
    elif rs1:
        b.binop(MINU, vl, ctx.xr[rs1], Const(vlmax))
    elif rd:  # x0 with rd != x0: VLMAX
        b.movi(vl, vlmax)
    else:  # both x0: keep vl (at most the new VLMAX)
        b.binop(MINU, vl, vl, Const(vlmax))
    b.movi(b.glob("vtype"), vt.raw)
    b.movi(b.glob("vstart"), 0)
    if rd:
        b.mov(ctx.xr[rd], vl)
    b.br(done)
    b.set_label(slow)
    return [done]


def _guard_vs(ctx: DisasContext, slow: Label) -> None:
    """To ``slow`` unless mstatus.VS is Dirty (vsetvli runs whatever vstart is)."""
    b = ctx.b
    t = b.temp()
    b.binop(AND, t, b.glob("mstatus"), Const(MSTATUS_VS))
    b.brcond(Cond.NE, t, Const(MSTATUS_VS), slow)


def _unit_stride(ctx: DisasContext, insn: int, store: bool) -> list[Label] | None:
    """vle/vleff/vse, vl<nf>r/vs<nf>r, vlm/vsm: the run's length in bytes, or None
    where the helper decides (masked, segments, an illegal setting, vtype unknown)."""
    size = EEW_BYTES.get((insn >> 12) & 7)
    vm, mew, mop, nf = insn >> 25 & 1, insn >> 28 & 1, (insn >> 26) & 3, (insn >> 29) + 1
    vd, lumop = (insn >> 7) & 31, (insn >> 20) & 31
    if size is None or not vm or mew or mop:
        return None
    b = ctx.b
    if lumop == LUMOP_WHOLE:
        if nf not in (1, 2, 4, 8) or vd % nf:
            return None
        return _move(ctx, insn, store, vd, Const(nf * ctx.vlenb))
    if nf != 1 or ctx.vtype is None:
        return None
    vt = decode_vtype(ctx.vtype, ctx.elen)
    n = b.temp()
    if lumop == LUMOP_MASK:
        if size != 1:
            return None
        b.binop(ADD, n, b.glob("vl"), Const(7))  # ceil(vl / 8) bytes
        b.binop(SHR, n, n, Const(3))
        return _move(ctx, insn, store, vd, n)
    if lumop not in (LUMOP_UNIT, LUMOP_FAULT_FIRST) or (store and lumop) or size * 8 > ctx.elen:
        return None
    # EMUL = LMUL * EEW / SEW: within 1/8..8, and the group aligned in the file
    num, den = vt.lmul_num * size, vt.lmul_den * vt.sew_bytes
    emul = max(1, num // den)
    if num > 8 * den or num * 8 < den or vd % emul or vd + emul > 32:
        return None
    b.binop(SHL, n, b.glob("vl"), Const(size.bit_length() - 1))
    return _move(ctx, insn, store, vd, n)


# OP-V funct3 -> the form of the second operand; funct6 -> vec_op kind, the forms it has
_OPIVV, _OPIVI, _OPIVX = 0, 3, 4
_FORMS = {_OPIVV: "v", _OPIVI: "i", _OPIVX: "x"}
_ARITH = {0x00: ("add", "vxi"), 0x02: ("sub", "vx"), 0x09: ("and", "vxi"),
          0x0A: ("or", "vxi"), 0x0B: ("xor", "vxi"), 0x17: ("mov", "vxi"),
          0x25: ("sll", "xi"), 0x28: ("srl", "xi"), 0x29: ("sra", "xi")}
# the shifts SSE2 has (no byte shifts, no 64-bit arithmetic shift): the rest are helpers
_SHIFT_SEWS = {"sll": (16, 32, 64), "srl": (16, 32, 64), "sra": (16, 32)}
_VMVNR = 0x27  # with OPIVI: vmv<nr>r.v (simm5 = nr - 1)


def _arith(ctx: DisasContext, insn: int) -> list[Label] | None:
    """vadd/vsub/vand/vor/vxor .vv/.vx/.vi, vmv.v.v/.v.x/.v.i and the shifts SSE2 has,
    unmasked: one vec_op over the vl elements of the register groups."""
    form = _FORMS.get((insn >> 12) & 7)
    entry = _ARITH.get(insn >> 26)
    vm, vd, rs1, vs2 = insn >> 25 & 1, (insn >> 7) & 31, (insn >> 15) & 31, (insn >> 20) & 31
    if insn >> 26 == _VMVNR and form == "i":
        return _whole_register_move(ctx, vm, vd, vs2, rs1 + 1)
    if form is None or entry is None or form not in entry[1] or not vm or ctx.vtype is None:
        return None
    kind = entry[0]
    vt = decode_vtype(ctx.vtype, ctx.elen)
    if kind in _SHIFT_SEWS and vt.sew not in _SHIFT_SEWS[kind]:
        return None
    group = vt.group
    if vd % group or vs2 % group or (form == "v" and rs1 % group) or (kind == "mov" and vs2):
        return None  # misaligned groups, vmv with vs2 != 0: the helper's trap
    b = ctx.b
    base = b.glob("vregs")
    dst, src2 = b.temp(), b.temp()
    b.binop(ADD, dst, base, Const(vd * ctx.vlenb))
    b.binop(ADD, src2, base, Const(vs2 * ctx.vlenb))
    if form == "v":
        src1: Operand = b.temp()
        b.binop(ADD, src1, base, Const(rs1 * ctx.vlenb))
    elif form == "x":
        src1 = ctx.xr[rs1]
    elif kind in _SHIFT_SEWS:
        src1 = Const(rs1)  # the shifts' immediate is unsigned
    else:
        src1 = Const((rs1 - 32 if rs1 & 16 else rs1) & MASK64)  # simm5
    n = b.temp()
    b.binop(SHL, n, b.glob("vl"), Const(vt.sew_bytes.bit_length() - 1))
    return _vec_op(ctx, VecOp(kind, vt.sew, form != "v"), dst, src2, src1, n)


def _whole_register_move(ctx: DisasContext, vm: int, vd: int, vs2: int,
                         nr: int) -> list[Label] | None:
    """vmv<nr>r.v: nr registers as bytes, whatever vtype (vstart 0: all of them)."""
    if not vm or nr not in (1, 2, 4, 8) or vd % nr or vs2 % nr:
        return None
    b = ctx.b
    base = b.glob("vregs")
    dst, src = b.temp(), b.temp()
    b.binop(ADD, dst, base, Const(vd * ctx.vlenb))
    b.binop(ADD, src, base, Const(vs2 * ctx.vlenb))
    return _vec_op(ctx, VecOp("mov", 8, False), dst, src, src, Const(nr * ctx.vlenb))


def _vec_op(ctx: DisasContext, op: VecOp, dst: Operand, src2: Operand, src1: Operand,
            n: Operand) -> list[Label]:
    """``need = 1; if guard ok { vec_op; need = 0 }; if need { helper }``."""
    b = ctx.b
    skip, done = b.label(), b.label()
    need = b.temp()
    b.movi(need, 1)
    b.brcond(Cond.NE, _guard(ctx), Const(0), skip)
    b.emit(VEC_OP, I64, [], [dst, src2, src1, n], op)
    b.movi(need, 0)
    b.set_label(skip)
    b.brcond(Cond.EQ, need, Const(0), done)
    return [done]


def _move(ctx: DisasContext, insn: int, store: bool, vd: int, n: Operand) -> list[Label]:
    """The inline copy of n bytes between register vd on and x[rs1].  Shaped as
    ``need = 1; if guard ok { need = !copied }; if need { helper }`` (forward
    branches only: what the python backend compiles)."""
    b = ctx.b
    skip, done = b.label(), b.label()
    need = b.temp()
    b.movi(need, 1)
    b.brcond(Cond.NE, _guard(ctx), Const(0), skip)
    host = b.temp()
    b.binop(ADD, host, b.glob("vregs"), Const(vd * ctx.vlenb))
    b.emit(ST_BYTES if store else LD_BYTES, I64, [need],
           [host, ctx.masked(ctx.xr[(insn >> 15) & 31]), n])
    b.binop(XOR, need, need, Const(1))
    b.set_label(skip)
    b.brcond(Cond.EQ, need, Const(0), done)
    return [done]


__all__ = ["set_vtype", "trans_vector_inline"]
