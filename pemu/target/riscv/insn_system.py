"""Handlers for SYSTEM (ecall, ebreak, Zicsr, Zawrs, Zimop, the privileged ones'
registry) and MISC-MEM (fence, Zifencei), by the decode table's pattern names."""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Const
from pemu.accel.tcg.spin_hint import END_TURN, HOST_YIELD
from pemu.target.decode import Args
from pemu.target.riscv import csr
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.csr_hyp import CSR_ACCESS_VIRT
from pemu.target.riscv.csr_inline import (
    CSR_MSTATUS,
    CSR_SSTATUS,
    CSR_TIME,
    trans_mstatus_read,
    trans_slot_csr,
    trans_sstatus_inline,
    trans_sstatus_read,
    trans_time_read,
)
from pemu.target.riscv.exceptions import BREAKPOINT, ECALL_M, ECALL_S, ECALL_U
from pemu.target.riscv.helpers import FENCE_I
from pemu.target.riscv.mmu import PRV_S, PRV_U
from pemu.target.riscv.priv import FLAG_VIRT

Handler = Callable[[DisasContext, Args], "bool | None"]

_ECALL_CAUSE = {0: ECALL_U, 1: ECALL_S, 3: ECALL_M}
ECALL_VS = 10  # ecall from VS-mode (H)

# The privileged instructions' handlers by pattern name (mret, sret, wfi, sfence.vma,
# Svinval's, H's hfence.* and hlv/hlvx/hsv): system mode registers them here
# (insn_priv, insn_hyp); user mode has none, and there they are illegal instructions.
PRIVILEGED: dict[str, Handler] = {}
# those that V=0 U-mode may run (hlv/hsv with hstatus.HU: the helper checks)
_USER_MAY_RUN = frozenset({"HLV_B", "HLV_BU", "HLV_H", "HLV_HU", "HLVX_HU", "HLV_W",
                           "HLV_WU", "HLVX_WU", "HLV_D", "HSV_B", "HSV_H", "HSV_W", "HSV_D"})


def _privileged(name: str) -> Handler:
    """Pattern ``name``'s handler: the registered one, outside V=0 U-mode (VU-mode gets
    it too: it raises H's virtual instruction)."""
    any_priv = name in _USER_MAY_RUN

    def trans(ctx: DisasContext, a: Args) -> bool | None:
        handler = PRIVILEGED.get(name)
        if handler is None or not (any_priv or ctx.priv or ctx.flags & FLAG_VIRT):
            return False
        return handler(ctx, a)
    return trans


def trans_ECALL(ctx: DisasContext, a: Args) -> bool | None:
    from_u = PRIVILEGED.get("ECALL_FROM_U")  # system mode's inline trap entry
    if from_u is not None and ctx.priv == PRV_U and not ctx.flags & FLAG_VIRT:
        return from_u(ctx, a)
    virt_s = ctx.flags & FLAG_VIRT and ctx.priv == PRV_S
    ctx.raise_trap(ECALL_VS if virt_s else _ECALL_CAUSE.get(ctx.priv, ECALL_M), 0)


def trans_EBREAK(ctx: DisasContext, a: Args) -> None:
    ctx.raise_trap(BREAKPOINT, ctx.pc_value(ctx.pc))


def trans_WRS(ctx: DisasContext, a: Args) -> bool | None:
    """Zawrs's wrs.nto/wrs.sto wait for a store to the reservation set, with no / a
    short timeout.  Both may end at once (the spec allows any spurious wake-up), so they
    are no-ops here: a guest polls its reservation after them anyway."""
    return None if "zawrs" in ctx.ext else False


def trans_MOP(ctx: DisasContext, a: Args) -> bool | None:
    """Zimop: until an extension gives a may-be-operation a meaning, it writes 0 to rd."""
    if "zimop" not in ctx.ext:
        return False
    if a.rd:
        ctx.b.movi(ctx.xr[a.rd], 0)  # type: ignore[arg-type]
    return None


def trans_C_MOP_N(ctx: DisasContext, a: Args) -> bool | None:
    """Zcmop's c.mop.N: c.lui's encodings with x1, x3 .. x15 and a zero immediate; it
    writes no register."""
    return None if "zcmop" in ctx.ext else False


def _csr(kind: int, immediate: bool) -> Handler:
    """csrrw/csrrs/csrrc (kind 1/2/3); ``immediate``: the csrr*i forms, whose rs1 field
    is a 5-bit immediate."""
    def trans(ctx: DisasContext, a: Args) -> None:
        _trans_csr(ctx, a.rd, a.rs1, a.csr, kind, immediate)
    return trans


def _trans_csr(ctx: DisasContext, rd: int, src: int, number: int, kind: int,
               immediate: bool) -> None:
    value = Const(src) if immediate else ctx.xr[src]
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
    if number == CSR_MSTATUS and action == csr.ACTION_READ and trans_mstatus_read(ctx, rd):
        return
    inline_ends = []
    if number == CSR_SSTATUS and action != csr.ACTION_READ and not virt:
        inline_ends = trans_sstatus_inline(ctx, rd, value, kind)
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
        ctx.b.pc_rel(ctx.pc_reg, ctx.next_pc)
        ctx.b.goto_ptr()
        ctx.end = True


FENCE_W = 1  # the W bit of a fence's predecessor and successor sets
FENCE_R = 2
FM_TSO = 0b1000  # fence.tso: orders all but stores before loads


def trans_FENCE(ctx: DisasContext, a: Args) -> None:
    """Translated code runs a hart's accesses in program order, and x86-64's TSO keeps
    that order for other threads except a load passing an earlier store: only a
    fence ordering stores before loads needs a barrier (IR ``mb``: mfence), and only
    where harts or guest threads run on parallel host threads (``inline_atomics``
    off).  I/O (the fence's O and I bits) needs none: device accesses leave generated
    code for a helper, which takes the GIL and the big lock (locked instructions)."""
    if a.fm == 0 and a.pred == FENCE_W and a.succ == 0:
        # Zihintpause's pause: a spin-wait loop; give the host core away, or the turn
        # to the other vCPUs of this thread (spin_hint.py)
        if not ctx.inline_atomics:
            ctx.b.call(HOST_YIELD, [], [])
        elif ctx.pause_ends_turn:
            ctx.b.call(END_TURN, [], [])
        return
    if ctx.inline_atomics or a.fm == FM_TSO:
        return
    if a.pred & FENCE_W and a.succ & FENCE_R:
        ctx.b.mb()


def trans_FENCE_I(ctx: DisasContext, a: Args) -> None:
    ctx.b.call(FENCE_I, [], [])
    ctx.goto(ctx.next_pc)


HANDLERS: dict[str, Handler] = {
    "ECALL": trans_ECALL, "EBREAK": trans_EBREAK, "WRS_NTO": trans_WRS, "WRS_STO": trans_WRS,
    "MOP_R_N": trans_MOP, "MOP_RR_N": trans_MOP, "C_MOP_N": trans_C_MOP_N, "FENCE": trans_FENCE,
    "FENCE_I": trans_FENCE_I,
    **{name: _csr(kind, immediate) for kind, name, immediate in (
        (1, "CSRRW", False), (2, "CSRRS", False), (3, "CSRRC", False),
        (1, "CSRRWI", True), (2, "CSRRSI", True), (3, "CSRRCI", True))},
    **{name: _privileged(name) for name in (
        "MRET", "SRET", "WFI", "SFENCE_VMA", "SINVAL_VMA", "SFENCE_W_INVAL",
        "SFENCE_INVAL_IR", "HFENCE_VVMA", "HFENCE_GVMA", *_USER_MAY_RUN)},
}
