"""Emitters for SYSTEM (ecall, ebreak, Zicsr) and MISC-MEM (fence, Zifencei)."""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Const
from pemu.target.riscv import csr
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.csr_hyp import CSR_ACCESS_VIRT
from pemu.target.riscv.csr_inline import (
    CSR_SSTATUS,
    CSR_TIME,
    trans_slot_csr,
    trans_sstatus_inline,
    trans_sstatus_read,
    trans_time_read,
)
from pemu.target.riscv.exceptions import BREAKPOINT, ECALL_M, ECALL_S, ECALL_U
from pemu.target.riscv.helpers import FENCE_I
from pemu.target.riscv.insn_cbo import trans_cbo
from pemu.target.riscv.mmu import PRV_S
from pemu.target.riscv.priv import FLAG_VIRT

ECALL = 0x0000_0073
EBREAK = 0x0010_0073
# Zawrs: wait for a store to the reservation set, with no / a short timeout.  Both may
# end at once (the spec allows any spurious wake-up), so they are no-ops here: a guest
# polls its reservation after them anyway.
WRS_NTO = 0x00D0_0073
WRS_STO = 0x01D0_0073
_ECALL_CAUSE = {0: ECALL_U, 1: ECALL_S, 3: ECALL_M}

# Other funct3=0 SYSTEM instructions (mret, sret, wfi, sfence.vma) by their fixed bits:
# system mode registers emitters here; in user mode they are illegal instructions.
PRIVILEGED: dict[int, Callable[[DisasContext, int], None]] = {}
# H's hlv/hlvx/hsv (funct3 4, bit 31 clear): system mode sets the emitter
# (insn_hyp.trans_hlv_hsv), which returns False for what is none of them
HYPERVISOR_LOAD_STORE: Callable[[DisasContext, int], bool] | None = None
ECALL_VS = 10  # ecall from VS-mode (H)


def trans_system(ctx: DisasContext, insn: int) -> None:
    f3 = (insn >> 12) & 7
    if f3 == 0:
        if insn == ECALL:
            virt_s = ctx.flags & FLAG_VIRT and ctx.priv == PRV_S
            ctx.raise_trap(ECALL_VS if virt_s else _ECALL_CAUSE.get(ctx.priv, ECALL_M), 0)
        elif insn == EBREAK:
            ctx.raise_trap(BREAKPOINT, ctx.pc)
        elif insn in (WRS_NTO, WRS_STO) and "zawrs" in ctx.ext:
            return
        else:
            # VU-mode gets the emitters too: they raise H's virtual instruction
            emit = (PRIVILEGED.get(insn & 0xFE00_7FFF) if ctx.priv or ctx.flags & FLAG_VIRT
                    else None)
            if emit is None:
                ctx.illegal()
            else:
                emit(ctx, insn)
    elif f3 == 4:
        if not (insn >> 31 == 0 and HYPERVISOR_LOAD_STORE is not None
                and HYPERVISOR_LOAD_STORE(ctx, insn)):
            _trans_mop(ctx, insn)
    else:
        _trans_csr(ctx, insn, f3)


def _is_mop(insn: int) -> bool:
    """mop.r.N (bits 31, 29:28, 25:22 = 1, 00, 0111) or mop.rr.N (31, 29:28, 25 = 1, 00,
    1): the Zimop may-be-operations, in funct3 4 of SYSTEM."""
    if insn >> 31 == 0 or (insn >> 28) & 3:
        return False
    return bool(insn >> 25 & 1) or (insn >> 22) & 0xF == 0b0111


def _trans_mop(ctx: DisasContext, insn: int) -> None:
    """Zimop: until an extension gives a may-be-operation a meaning, it writes 0 to rd."""
    if "zimop" not in ctx.ext or not _is_mop(insn):
        ctx.illegal()
        return
    rd = (insn >> 7) & 31
    if rd:
        ctx.b.movi(ctx.xr[rd], 0)  # type: ignore[arg-type]


def _trans_csr(ctx: DisasContext, insn: int, f3: int) -> None:
    rd, src, number = (insn >> 7) & 31, (insn >> 15) & 31, insn >> 20
    value = Const(src) if f3 & 4 else ctx.xr[src]  # csrr*i take a 5-bit immediate
    kind = f3 & 3
    if kind == 1:  # csrrw: no read side effects when rd is x0
        action = csr.ACTION_WRITE | (csr.ACTION_READ if rd else 0)
    else:  # csrrs/csrrc: no write when the source is x0 / zero
        action = csr.ACTION_READ
        if src:
            action |= csr.ACTION_SET if kind == 2 else csr.ACTION_CLEAR
    # V=1 (H): the S CSRs are their VS copies, so none of the inline paths applies
    virt = ctx.flags & FLAG_VIRT
    if not virt and trans_slot_csr(ctx, number, kind, rd, value, action):
        return
    if (not virt and number == CSR_SSTATUS and action == csr.ACTION_READ
            and trans_sstatus_read(ctx, rd)):
        return
    inline_ends = []
    if number == CSR_SSTATUS and kind != 1 and action != csr.ACTION_READ and not virt:
        inline_ends = trans_sstatus_inline(ctx, rd, value, kind == 2)
    elif number == CSR_TIME and action == csr.ACTION_READ and not virt and rd:
        inline_ends = trans_time_read(ctx, rd)
    helper = CSR_ACCESS_VIRT if virt else csr.CSR_ACCESS
    ctx.b.call(helper, [ctx.dest(rd)],
               [Const(number), Const(action), value, Const(ctx.insn)])
    for label in inline_ends:
        ctx.b.set_label(label)
    ctx.frm_checked = False  # frm may have changed
    if action & ~csr.ACTION_READ and csr.write_ends_block(number):
        # a lookup, not a chained jump: the write may have changed the block flags
        # (the dispatcher matches them) or the address space (its jump cache)
        ctx.b.mov(ctx.pc_reg, Const(ctx.next_pc))
        ctx.b.goto_ptr()
        ctx.end = True


FENCE_W = 1  # the W bit of a fence's predecessor and successor sets
FENCE_R = 2
FM_TSO = 0b1000  # fence.tso: orders all but stores before loads


def trans_fence(ctx: DisasContext, insn: int) -> None:
    """Translated code runs a hart's accesses in program order, and x86-64's TSO keeps
    that order for other threads except a load passing an earlier store: only a
    fence ordering stores before loads needs a barrier (IR ``mb``: mfence), and only
    where harts or guest threads run on parallel host threads (``inline_atomics``
    off).  I/O (the fence's O and I bits) needs none: device accesses leave generated
    code for a helper, which takes the GIL and the big lock (locked instructions)."""
    pred, succ, fm = (insn >> 24) & 0xF, (insn >> 20) & 0xF, insn >> 28
    if ctx.inline_atomics or fm == FM_TSO:
        return
    if pred & FENCE_W and succ & FENCE_R:
        ctx.b.mb()


def trans_misc_mem(ctx: DisasContext, insn: int) -> None:
    f3 = (insn >> 12) & 7
    if f3 == 0:
        trans_fence(ctx, insn)
        return
    if f3 == 1:
        ctx.b.call(FENCE_I, [], [])
        ctx.goto(ctx.next_pc)
        return
    if f3 == 2:
        trans_cbo(ctx, insn)
        return
    ctx.illegal()
