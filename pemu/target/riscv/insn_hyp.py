"""H's instructions: hfence.vvma/hfence.gvma and the hypervisor loads and stores
(hlv, hlvx, hsv), plus the virtual-instruction exception V=1 code gets for them.

hlv/hsv access memory as V=1 code at privilege hstatus.SPVP would (two stages,
vsstatus.SUM/MXR) while the hart stays in HS (or U with hstatus.HU, or M): a helper
translates and accesses each one directly, never through a TLB, so they cost a walk
each but never mix V=1 translations into the running V=0 address space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Const, Helper
from pemu.accel.tcg.softmmu import ACCESS_READ, ACCESS_WRITE, PAGE_MASK, PAGE_SIZE, PERM_R, PERM_W
from pemu.target.decode import Args
from pemu.target.riscv import insn_system
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.hyp import (
    HGATP_VMID_SHIFT,
    HSTATUS_HU,
    HSTATUS_SPVP,
    VIRTUAL_INSN,
    VMID_MASK,
    GuestTrap,
)
from pemu.target.riscv.mmu import PRV_S, PRV_U
from pemu.target.riscv.mmu_regime import ASID_MASK, VIRT_KEY
from pemu.target.riscv.pointer_masking import HSTATUS_HUPMM_SHIFT, code, field, transform
from pemu.target.riscv.priv import FLAG_VIRT, MSTATUS_MXR, MSTATUS_SUM, MSTATUS_TVM

if TYPE_CHECKING:
    from pemu.target.riscv.hart import RiscvHart

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
MMU_S, MMU_U = 1, 0  # mmu_regime's indexes, for the PMP check of an hlv/hsv


def virtual_instruction(ctx: DisasContext) -> None:
    """V=1 code ran an instruction HS-mode could run: the hypervisor emulates it."""
    ctx.raise_trap(VIRTUAL_INSN, ctx.insn)


HFENCE_ADDR, HFENCE_ID = 1, 2  # which of rs1/rs2 an hfence names (not x0)


def fence_guest_spaces(env: RiscvHart, vaddr: int, asid: int, which: int) -> None:
    """Fence VS-stage translations: hfence.vvma, and VS-mode's own sfence.vma.

    V=1 translations live in TLB contexts of their own (keys with VIRT_KEY, which
    hold hgatp and so the VMID), so the host's (HS/U) contexts stay.  The fence
    applies to the current VMID's spaces; with an ASID only that guest address space
    goes, with an address only that page."""
    vmid = _space_vmid(VIRT_KEY | env.ps.hyp.hgatp << 64)
    if which & HFENCE_ID:
        asid &= ASID_MASK
        space_asid = env.regime.space_asid

        def selects(key: int) -> bool:
            return _space_vmid(key) == vmid and space_asid(key) == asid
    else:
        def selects(key: int) -> bool:
            return _space_vmid(key) == vmid
    env.mmu.flush_spaces(selects, vaddr & MASK64 if which & HFENCE_ADDR else None)


def _space_vmid(key: int) -> int:
    """The VMID of a V=1 address-space key (mmu_regime.space_key); -1 for V=0's."""
    if not key & VIRT_KEY:
        return -1
    return (key >> (64 + HGATP_VMID_SHIFT)) & VMID_MASK


def _is_guest_space(key: int) -> bool:
    return bool(key & VIRT_KEY)


def _hfence_helper(env: RiscvHart, vaddr: int, asid: int, which: int, gvma: int, insn: int
            ) -> None:
    ps = env.ps
    if gvma and ps.priv == PRV_S and ps.mstatus & MSTATUS_TVM:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    if gvma:
        # G-stage: the TLB holds guest virtual -> host physical, so any guest page may
        # rest on a given guest physical page: every space of the VMID named (of all
        # guests without one) goes, not the host's
        if which & HFENCE_ID:
            vmid = asid & VMID_MASK
            env.mmu.flush_spaces(lambda key: _space_vmid(key) == vmid)
        else:
            env.mmu.flush_spaces(_is_guest_space)
    else:
        fence_guest_spaces(env, vaddr, asid, which)


HFENCE_HELPER = Helper("hfence", _hfence_helper, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)


def _hfence(gvma: int) -> Callable[[DisasContext, Args], None]:
    def trans(ctx: DisasContext, a: Args) -> None:
        if "h" not in ctx.ext:
            ctx.illegal()
        elif ctx.flags & FLAG_VIRT:
            virtual_instruction(ctx)
        elif ctx.priv == PRV_U:
            ctx.illegal()
        else:
            rs1, rs2 = a.rs1, a.rs2
            which = (HFENCE_ADDR if rs1 else 0) | (HFENCE_ID if rs2 else 0)
            ctx.b.call(HFENCE_HELPER, [], [ctx.xr[rs1], ctx.xr[rs2], Const(which),
                                           Const(gvma), Const(ctx.insn)])
            ctx.goto(ctx.next_pc)
    return trans


# -- hlv / hlvx / hsv -----------------------------------------------------------------------

def _guest_address(env: RiscvHart, vaddr: int, size: int, write: bool, exec_: bool,
                   insn: int) -> int:
    ps = env.ps
    if ps.priv == PRV_U and not ps.hyp.hstatus & HSTATUS_HU:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    priv = PRV_S if ps.hyp.hstatus & HSTATUS_SPVP else PRV_U
    sum_ = bool(ps.hyp.vsstatus & MSTATUS_SUM)
    vaddr &= MASK64
    two_stage = env.regime.two_stage
    if exec_:
        paddr = two_stage.translate_hlvx(vaddr, priv, sum_)[0]
    else:
        paddr = two_stage.translate(vaddr, ACCESS_WRITE if write else ACCESS_READ, priv,
                                    sum_)[0]
    if not env.regime.allows(paddr, size, PERM_W if write else PERM_R,
                             MMU_S if priv == PRV_S else MMU_U):
        raise GuestTrap(7 if write else 5, vaddr, gva=True)
    return paddr


def _phys_access(env: RiscvHart, paddr: int, size: int, vaddr: int, write: bool,
                 value: int = 0) -> int:
    """One access to host physical memory within one page."""
    space = env.regime.space
    try:
        if write:
            space.store(paddr, size, value)
            return 0
        return space.load(paddr, size)
    except Exception:  # noqa: BLE001 - nothing there: an access fault
        raise GuestTrap(7 if write else 5, vaddr, gva=True) from None


def _split(vaddr: int, size: int) -> list[tuple[int, int, int]]:
    """(guest address, size, byte offset) pieces of an access, one per guest page:
    an access across a page boundary is translated page by page."""
    first = min(size, PAGE_SIZE - (vaddr & PAGE_MASK))
    pieces = [(vaddr, first, 0)]
    if first < size:
        pieces.append(((vaddr + first) & MASK64, size - first, first))
    return pieces


def _pointer_masked(env: RiscvHart, vaddr: int) -> int:
    """hlv/hsv's address after pointer masking (Ssnpm): the setting of the mode they
    access as, VS (hstatus.SPVP: henvcfg.PMM) or VU (in U-mode hstatus.HUPMM, else
    senvcfg.PMM), sign-extending under a vsatp mode; none while MXR is in effect."""
    ps = env.ps
    hyp = ps.hyp
    if not ps.pm_extensions or (ps.mstatus | hyp.vsstatus) & MSTATUS_MXR:
        return vaddr
    if hyp.hstatus & HSTATUS_SPVP:
        pmm = field(hyp.henvcfg)
    elif ps.priv == PRV_U:
        pmm = hyp.hstatus >> HSTATUS_HUPMM_SHIFT & 3
    else:
        pmm = field(ps.senvcfg)
    return transform(vaddr, code(pmm, hyp.vsatp >> 60 != 0))


def _hlv(env: RiscvHart, vaddr: int, kind: int, insn: int) -> int:
    size, signed, exec_ = 1 << (kind & 3), bool(kind & 4), bool(kind & 8)
    if not exec_:  # hlvx emulates a fetch: never masked
        vaddr = _pointer_masked(env, vaddr)
    value = 0
    for addr, n, offset in _split(vaddr & MASK64, size):
        paddr = _guest_address(env, addr, n, False, exec_, insn)
        value |= _phys_access(env, paddr, n, addr, False) << (8 * offset)
    if signed and value >> (8 * size - 1):
        value -= 1 << (8 * size)
    return value & MASK64


def _hsv(env: RiscvHart, vaddr: int, value: int, size: int, insn: int) -> None:
    vaddr = _pointer_masked(env, vaddr)
    pieces = [(addr, n, offset, _guest_address(env, addr, n, True, False, insn))
              for addr, n, offset in _split(vaddr & MASK64, size)]  # all pages first
    for addr, n, offset, paddr in pieces:
        _phys_access(env, paddr, n, addr, True, (value >> (8 * offset)) & ((1 << (8 * n)) - 1))


HLV_HELPER = Helper("hlv", _hlv, flags=CALL_SIDE_EFFECTS, needs_env=True)
HSV_HELPER = Helper("hsv", _hsv, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)

# the loads' kinds (log2 size | 4 signed | 8 hlvx) and the stores' sizes, by pattern name
_HLV_KINDS = {"HLV_B": 0 | 4, "HLV_BU": 0, "HLV_H": 1 | 4, "HLV_HU": 1, "HLVX_HU": 1 | 8,
              "HLV_W": 2 | 4, "HLV_WU": 2, "HLVX_WU": 2 | 8, "HLV_D": 3 | 4}
_HSV_SIZES = {"HSV_B": 1, "HSV_H": 2, "HSV_W": 4, "HSV_D": 8}


def _trans_hlv(kind: int) -> Callable[[DisasContext, Args], bool | None]:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if "h" not in ctx.ext:
            return False
        if ctx.flags & FLAG_VIRT:
            virtual_instruction(ctx)
        else:
            ctx.b.call(HLV_HELPER, [ctx.dest(a.rd)], [ctx.xr[a.rs1], Const(kind),
                                                       Const(ctx.insn)])
        return None
    return trans


def _trans_hsv(size: int) -> Callable[[DisasContext, Args], bool | None]:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if "h" not in ctx.ext:
            return False
        if ctx.flags & FLAG_VIRT:
            virtual_instruction(ctx)
        else:
            ctx.b.call(HSV_HELPER, [], [ctx.xr[a.rs1], ctx.xr[a.rs2], Const(size),
                                        Const(ctx.insn)])
        return None
    return trans


def register_hyp_instructions() -> None:
    """hfence.* and hlv/hlvx/hsv in the frontend's registry of privileged instructions
    (idempotent)."""
    insn_system.PRIVILEGED.update({"HFENCE_VVMA": _hfence(0), "HFENCE_GVMA": _hfence(1)})
    insn_system.PRIVILEGED.update({name: _trans_hlv(kind) for name, kind in _HLV_KINDS.items()})
    insn_system.PRIVILEGED.update({name: _trans_hsv(size) for name, size in _HSV_SIZES.items()})


__all__ = ["register_hyp_instructions", "virtual_instruction"]
