"""System-mode instructions: mret, sret, wfi and sfence.vma (and Svinval's).

User mode has no privileged instructions (they are illegal there), so these handlers
are not in the frontend's registry (insn_system.PRIVILEGED) until system mode
registers them (``register_privileged_instructions``, called when a hart is built).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pemu.accel.tcg.ir import (
    CALL_READS_STATE,
    CALL_SIDE_EFFECTS,
    CALL_WRITES_STATE,
    Cond,
    Const,
    Helper,
    Label,
)
from pemu.accel.tcg.opcodes import AND
from pemu.accel.tcg.softmmu import PAGE_FLUSH_PROBE
from pemu.target.decode import Args
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv import insn_system, trap_inline
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.helpers import RAISE_EXCEPTION
from pemu.target.riscv.hyp import HSTATUS_VTSR, HSTATUS_VTVM, HSTATUS_VTW, VIRTUAL_INSN
from pemu.target.riscv.insn_hyp import fence_guest_spaces
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U
from pemu.target.riscv.mmu_regime import ASID_MASK
from pemu.target.riscv.priv import FLAG_VIRT, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW

if TYPE_CHECKING:  # the hart imports this module to register the emitters
    from pemu.target.riscv.hart import RiscvHart

MRET = 0x3020_0073
SRET = 0x1020_0073
WFI = 0x1050_0073
# xRET reads and writes the pc slot's neighbours (exit request): sync all globals around it
_XRET_FLAGS = CALL_SIDE_EFFECTS | CALL_READS_STATE | CALL_WRITES_STATE


def _mret(env: RiscvHart) -> int:
    return env.ps.mret()  # the vCPU loop re-derives the block flags after the kick


def _sret(env: RiscvHart, insn: int) -> int:
    ps = env.ps
    if ps.virt:  # VS-mode: the hypervisor may want to emulate it (hstatus.VTSR)
        if ps.hyp.hstatus & HSTATUS_VTSR:
            raise RiscvTrap(VIRTUAL_INSN, insn)
    elif ps.priv == PRV_S and ps.mstatus & MSTATUS_TSR:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    return ps.sret()


def _kick_after(fn: Callable[..., int]) -> Callable[..., int]:
    """xRET: new privilege (block flags), maybe newly enabled interrupts.  The block
    ends with a lookup under the new flags; Python sees it only for an interrupt."""
    def wrapped(env: RiscvHart, *args: int) -> int:
        result = fn(env, *args)
        ps = env.ps
        ps.on_flags_changed()
        ps.recheck_interrupts()
        env.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        return result
    return wrapped


def _wfi(env: RiscvHart, insn: int) -> None:
    ps = env.ps
    if ps.priv < PRV_M and ps.mstatus & MSTATUS_TW:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    if ps.virt and (ps.priv == PRV_U or ps.hyp.hstatus & HSTATUS_VTW):
        raise RiscvTrap(VIRTUAL_INSN, insn)
    ps.waiting = True
    ps.request_exit()


SFENCE_ADDR, SFENCE_ASID = 1, 2  # which of rs1/rs2 an sfence.vma names (not x0)


def _sfence_vma(env: RiscvHart, vaddr: int, asid: int, which: int, insn: int) -> None:
    ps = env.ps
    if ps.virt:  # VS-mode's sfence.vma fences its own (VS-stage) translations
        if ps.hyp.hstatus & HSTATUS_VTVM:
            raise RiscvTrap(VIRTUAL_INSN, insn)
    elif ps.priv == PRV_S and ps.mstatus & MSTATUS_TVM:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    mmu = env.mmu
    if ps.virt:  # only the guest's own translations: the host's TLB stays
        fence_guest_spaces(env, vaddr, asid, which)
        return
    if which & SFENCE_ASID:
        asid &= ASID_MASK
        if which & SFENCE_ADDR:
            mmu.flush_page(vaddr, asid)
        else:
            mmu.flush_asid(asid)
    elif which & SFENCE_ADDR:
        mmu.flush_page(vaddr)
    else:
        mmu.flush_all()


MRET_HELPER = Helper("mret", _kick_after(_mret), flags=_XRET_FLAGS, needs_env=True)
SRET_HELPER = Helper("sret", _kick_after(_sret), flags=_XRET_FLAGS, needs_env=True)
WFI_HELPER = Helper("wfi", _wfi, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
SFENCE_HELPER = Helper("sfence_vma", _sfence_vma, flags=CALL_SIDE_EFFECTS, n_out=0,
                       needs_env=True)


def _xret(insn: int) -> Callable[[DisasContext, Args], None]:
    """mret, sret or wfi (``insn``: its encoding, the helpers' trap value)."""
    def trans(ctx: DisasContext, a: Args) -> None:
        _emit_xret(ctx, insn)
    return trans


def _emit_xret(ctx: DisasContext, insn: int) -> None:
    if ctx.flags & FLAG_VIRT and ctx.priv == PRV_U and insn in (SRET, WFI):
        ctx.raise_trap(VIRTUAL_INSN, insn)  # VU-mode: for the hypervisor to emulate
        return
    if insn == MRET and ctx.priv == PRV_M:
        ctx.b.call(MRET_HELPER, [ctx.pc_reg], [])
    elif insn == SRET and ctx.priv >= PRV_S:
        inline = ctx.priv == PRV_S and trap_inline.can_inline(ctx)
        done = trap_inline.emit_sret(ctx) if inline else None
        ctx.b.call(SRET_HELPER, [ctx.pc_reg], [Const(insn)])
        if done is not None:
            ctx.b.set_label(done)
    elif insn == WFI and ctx.priv != PRV_U:
        ctx.b.call(WFI_HELPER, [], [Const(insn)])
        ctx.goto(ctx.next_pc)
        return
    else:
        ctx.illegal()
        return
    ctx.b.goto_ptr()
    ctx.end = True


def trans_ecall_from_u(ctx: DisasContext, a: Args) -> None:
    """ecall from U-mode (V=0) in system mode: the inline entry into S where it may be
    (trap_inline.py), the exception to Python otherwise."""
    if not trap_inline.can_inline(ctx):
        ctx.raise_trap(ECALL_U, 0)
        return
    done = trap_inline.emit_ecall_u(ctx)
    ctx.b.call(RAISE_EXCEPTION, [], [Const(ECALL_U), Const(0)])
    ctx.b.set_label(done)
    ctx.b.goto_ptr()
    ctx.end = True


def trans_SFENCE_VMA(ctx: DisasContext, a: Args) -> None:
    if ctx.priv == PRV_U:
        if ctx.flags & FLAG_VIRT:
            ctx.raise_trap(VIRTUAL_INSN, ctx.insn)  # VU-mode
            return
        ctx.illegal()
        return
    rs1, rs2 = a.rs1, a.rs2
    which = (SFENCE_ADDR if rs1 else 0) | (SFENCE_ASID if rs2 else 0)
    b = ctx.b
    done = None
    if rs1 and not ctx.flags & FLAG_VIRT:
        done = _emit_page_flush_probe(ctx, rs1)
    b.call(SFENCE_HELPER, [], [ctx.xr[rs1], ctx.xr[rs2], Const(which), Const(ctx.insn)])
    if done is not None:
        b.set_label(done)
    ctx.goto(ctx.next_pc)


def _emit_page_flush_probe(ctx: DisasContext, rs1: int) -> Label:
    """sfence.vma with an address, V=0: Linux fences each PTE it installs, nearly
    always for a page no TLB holds.  The softmmu's probe (PAGE_FLUSH_PROBE: machine
    code with the native backend) finds that out without Python; then the helper
    call is skipped (jump to the label returned, placed after it).  Not when
    mstatus.TVM makes S-mode's sfence.vma trap: the helper raises that."""
    b = ctx.b
    cached, probed, done = b.temp(), b.label(), b.label()
    b.movi(cached, 1)
    if ctx.priv == PRV_S:
        tvm = b.temp()
        b.binop(AND, tvm, b.glob("mstatus"), Const(MSTATUS_TVM))
        b.brcond(Cond.NE, tvm, Const(0), probed)
    b.call(PAGE_FLUSH_PROBE, [cached], [ctx.xr[rs1]])
    b.set_label(probed)
    b.brcond(Cond.EQ, cached, Const(0), done)
    return done


def trans_SINVAL_VMA(ctx: DisasContext, a: Args) -> None:
    """Svinval's sinval.vma: sfence.vma's invalidation alone.  pemu orders nothing
    (translated code runs accesses in order), so it is sfence.vma itself."""
    if "svinval" not in ctx.ext:
        ctx.illegal()
        return
    trans_SFENCE_VMA(ctx, a)


def trans_SFENCE_INVAL(ctx: DisasContext, a: Args) -> None:
    """sfence.w.inval and sfence.inval.ir: the fences around a batch of sinval.vma,
    ordering that pemu always has: no-ops outside U-mode."""
    if "svinval" not in ctx.ext or ctx.priv == PRV_U:
        ctx.illegal()


def register_privileged_instructions() -> None:
    """Put mret/sret/wfi, sfence.vma and Svinval's in the frontend's registry of
    privileged instructions (idempotent)."""
    insn_system.PRIVILEGED.update({
        "ECALL_FROM_U": trans_ecall_from_u,
        "MRET": _xret(MRET), "SRET": _xret(SRET), "WFI": _xret(WFI),
        "SFENCE_VMA": trans_SFENCE_VMA, "SINVAL_VMA": trans_SINVAL_VMA,
        "SFENCE_W_INVAL": trans_SFENCE_INVAL, "SFENCE_INVAL_IR": trans_SFENCE_INVAL})


__all__ = ["register_privileged_instructions"]
