"""Running one vector instruction: the toolkit the instruction families share.

Every V instruction becomes one helper call (insn_vector.py) that decodes the bits and
runs the instruction on the register file as bytes (vector_state.py); the families
live in vector_alu.py (integer, fixed point, masks, permutations), vector_fp.py
(floating point) and vector_mem.py (loads/stores).  ``VInsn`` is one instruction being
run: its fields, element and mask-bit access, the x/f registers in the state block,
and the legality checks they share.

Policies: tail and inactive elements are left undisturbed, which the spec allows for
the agnostic settings too, and which QEMU 7.2 does by default (``rvv_ta_all_1s`` off).
Elements run from vstart to vl; an instruction that completes resets vstart to 0, one
that traps in the middle (a memory fault) leaves vstart at the faulting element.
"""

from __future__ import annotations

from pemu.target.riscv.cpu_state import F0, X0
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.pointer_masking import transform
from pemu.target.riscv.vector_state import VectorState, VType, decode_vtype

MASK64 = (1 << 64) - 1
MSTATUS_VS = 3 << 9



class IllegalVector(Exception):
    """Raised by the instruction families for a reserved encoding or setting."""


class VInsn:
    """One vector instruction being run: its fields and element access to the state."""

    __slots__ = ("env", "vs", "slots", "insn", "vlenb", "elen", "vd", "rs1", "rs2", "vm",
                 "f3", "vt", "views", "regs", "pm_code")

    def __init__(self, env: object, insn: int, pm_code: int = 0) -> None:
        state = env.state  # type: ignore[attr-defined]
        self.env = env
        self.vs: VectorState = state.vector
        self.slots = state.slots
        self.insn = insn
        self.vlenb = self.vs.vlenb
        self.elen = self.vs.elen
        self.vd = (insn >> 7) & 31
        self.rs1 = (insn >> 15) & 31
        self.rs2 = (insn >> 20) & 31
        self.vm = bool(insn >> 25 & 1)  # 1: unmasked
        self.f3 = (insn >> 12) & 7
        self.vt: VType = self.vs.vtype
        self.regs = self.vs.regs
        self.views = self.vs.views
        # pointer masking of the data accesses (pointer_masking.py; 0: none)
        self.pm_code = pm_code

    # -- scalar registers -------------------------------------------------------------------
    def x(self, r: int) -> int:
        return self.slots[X0 + r] if r else 0

    def data_address(self, addr: int) -> int:
        """An element's effective address as memory sees it: pointer-masked."""
        return transform(addr, self.pm_code) if self.pm_code else addr & MASK64

    def set_x(self, r: int, value: int) -> None:
        if r:
            self.slots[X0 + r] = value & MASK64

    def f(self, r: int) -> int:
        return self.slots[F0 + r]

    def set_f(self, r: int, value: int) -> None:
        self.slots[F0 + r] = value & MASK64

    # -- elements -------------------------------------------------------------------------------
    def elem(self, reg: int, i: int, size: int) -> int:
        """Element ``i`` (``size`` bytes) of the register group at ``reg``, unsigned."""
        return self.views[size][reg * self.vlenb // size + i]

    def set_elem(self, reg: int, i: int, size: int, value: int) -> None:
        self.views[size][reg * self.vlenb // size + i] = value & ((1 << (8 * size)) - 1)

    def mask_bit(self, reg: int, i: int) -> int:
        return self.regs[reg * self.vlenb + (i >> 3)] >> (i & 7) & 1

    def set_mask_bit(self, reg: int, i: int, bit: int) -> None:
        at = reg * self.vlenb + (i >> 3)
        if bit:
            self.regs[at] |= 1 << (i & 7)
        else:
            self.regs[at] &= ~(1 << (i & 7)) & 0xFF

    def active(self, i: int) -> bool:
        return self.vm or bool(self.regs[i >> 3] >> (i & 7) & 1)

    def body(self) -> range:
        """The element indices an instruction processes: vstart up to vl."""
        return range(self.vs.vstart, self.vs.vl)

    @property
    def vlmax(self) -> int:
        return self.vt.vlmax(self.vlenb)

    # -- the legality checks every family shares ----------------------------------------------
    def require_vtype(self) -> VType:
        """The current vtype; illegal when vill is set."""
        if self.vt.vill:
            raise IllegalVector
        return self.vt

    def group_regs(self, factor_num: int = 1, factor_den: int = 1) -> int:
        """Registers in a group of EMUL = LMUL * factor (at least 1); illegal above 8 or
        below 1/8."""
        vt = self.vt
        num, den = vt.lmul_num * factor_num, vt.lmul_den * factor_den
        if num > 8 * den or num * 8 < den:
            raise IllegalVector
        return max(1, num // den)

    @staticmethod
    def require_aligned(reg: int, nregs: int) -> None:
        if reg % nregs or reg + nregs > 32:
            raise IllegalVector

    def require_legal_overlap(self, dst: int, dst_regs: int, src: int, src_regs: int,
                              dest_wider: bool) -> None:
        """The spec's rules (5.2) for a destination group overlapping a source group of
        another EEW: a wider destination may overlap only with its highest-numbered part
        (and only a source with EMUL >= 1); a narrower one (a mask too) only the
        lowest-numbered part of the source.  Call it where the EEWs differ."""
        if dst + dst_regs <= src or src + src_regs <= dst:
            return
        if dest_wider:
            ok = self.vt.lmul_den == 1 and src + src_regs == dst + dst_regs and dst < src
        else:
            ok = dst == src
        if not ok:
            raise IllegalVector

    def require_no_v0_overlap(self) -> None:
        """A masked instruction may not write a vector (non-mask) result into v0."""
        if not self.vm and self.vd == 0:
            raise IllegalVector


def sign(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def unbox(value: int, bits: int) -> int:
    """A SEW-bit FP scalar from an f register: NaN-boxed narrower values are unboxed,
    a badly boxed one reads as the canonical NaN (as scalar F does)."""
    if bits >= 64:
        return value
    if value >> bits == (1 << (64 - bits)) - 1:
        return value & ((1 << bits) - 1)
    return _CANONICAL_NAN[bits]


_CANONICAL_NAN = {16: 0x7E00, 32: 0x7FC0_0000}


def vs_check(env: object, dirty: bool = True) -> None:
    """System mode: vector instructions and CSRs are illegal with mstatus.VS Off; one
    that writes vector state makes VS Dirty (the kernel saves the registers on a context
    switch only then).  Raises the trap with tval 0: the caller fills in the insn."""
    ps = getattr(env, "ps", None)
    if ps is None:
        return
    ms = ps.mstatus
    if not ms & MSTATUS_VS:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    if dirty and ms & MSTATUS_VS != MSTATUS_VS:
        ps.mstatus = ms | MSTATUS_VS
    if ps.virt:  # H: V=1 code also needs the guest's vsstatus.VS, and dirties it too
        vs = ps.hyp.vsstatus
        if not vs & MSTATUS_VS:
            raise RiscvTrap(ILLEGAL_INSN, 0)
        if dirty and vs & MSTATUS_VS != MSTATUS_VS:
            ps.hyp.vsstatus = vs | MSTATUS_VS


# -- vsetvli / vsetivli / vsetvl ----------------------------------------------------------------

def exec_vset(v: VInsn) -> None:
    insn = v.insn
    rd, rs1 = v.vd, v.rs1
    vs = v.vs
    if insn >> 31 == 0:  # vsetvli
        raw = (insn >> 20) & 0x7FF
    elif insn >> 30 == 3:  # vsetivli: the AVL is the 5-bit immediate
        raw = (insn >> 20) & 0x3FF
    elif insn >> 25 == 0x40:  # vsetvl
        raw = v.x(v.rs2)
    else:
        raise IllegalVector
    vt = decode_vtype(raw, v.elen)
    if insn >> 30 == 3:
        avl = rs1
    elif rs1:
        avl = v.x(rs1)
    else:  # x0: keep vl (rd = x0 too) or ask for VLMAX
        avl = vs.vl if not rd else MASK64
    vs.vtype = vt
    vs.vl = 0 if vt.vill else min(avl, vt.vlmax(v.vlenb))
    vs.vstart = 0
    v.set_x(rd, vs.vl)


__all__ = ["IllegalVector", "VInsn", "exec_vset", "sign", "unbox", "vs_check"]
