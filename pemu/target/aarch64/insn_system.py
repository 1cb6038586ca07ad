"""A64 branches, exception generation, hints, barriers and system registers (EL0)."""

from __future__ import annotations

from pemu.accel.tcg.ir import Cond, Const, MemOp
from pemu.accel.tcg.opcodes import ADD, AND, OR, SHL, SHR
from pemu.target.aarch64 import insn_el1
from pemu.target.aarch64.context import ZERO, DisasContext, imm
from pemu.target.aarch64.cpu_state import FLAG_SYSTEM, NO_EXCLUSIVE


def trans_B_imm(ctx: DisasContext, a) -> None:
    if a.op:  # BL
        ctx.write(30, imm(ctx.next_pc))
    ctx.goto(ctx.pc + a.imm * 4)


def _branch_if(ctx: DisasContext, cond: Cond, value, target: int) -> None:
    taken = ctx.b.label()
    ctx.b.brcond(cond, value, ZERO, taken)
    ctx.b.goto_pc(ctx.next_pc)
    ctx.b.set_label(taken)
    ctx.goto(target)


def trans_CB(ctx: DisasContext, a) -> None:
    _branch_if(ctx, Cond.NE if a.op else Cond.EQ, ctx.read(a.rt, a.sf), ctx.pc + a.imm * 4)


def trans_TB(ctx: DisasContext, a) -> None:
    bit = a.b5 << 5 | a.b40
    t = ctx.temp()
    ctx.b.binop(AND, t, ctx.read(a.rt), Const(1 << bit))
    _branch_if(ctx, Cond.NE if a.op else Cond.EQ, t, ctx.pc + a.imm * 4)


def trans_B_cond(ctx: DisasContext, a) -> None:
    if a.cond >> 1 == 7:
        ctx.goto(ctx.pc + a.imm * 4)
        return
    _branch_if(ctx, Cond.NE, ctx.condition(a.cond), ctx.pc + a.imm * 4)


def trans_BR(ctx: DisasContext, a) -> None:
    ctx.goto_reg(ctx.read(a.rn))


def trans_BLR(ctx: DisasContext, a) -> None:
    target = ctx.temp()
    ctx.b.mov(target, ctx.read(a.rn))  # BLR X30: the old X30 is the target
    ctx.write(30, imm(ctx.next_pc))
    ctx.goto_reg(target)


def trans_RET(ctx: DisasContext, a) -> None:
    ctx.goto_reg(ctx.read(a.rn))


def trans_SVC(ctx: DisasContext, a) -> None:
    ctx.raise_trap("svc", a.imm)


def trans_BRK(ctx: DisasContext, a) -> None:
    ctx.raise_trap("brk", a.imm)


def trans_HINT(ctx: DisasContext, a) -> None:
    """NOP, YIELD, WFE/WFI/SEV (nothing to wait for at EL0 here), ESB, the PAuth
    hint-space instructions (PACIASP & co: NOPs without FEAT_PAuth) and BTI.  In system
    mode WFI waits for an interrupt; WFE and YIELD end the vCPU's turn when several
    vCPUs share the thread (the loop around them waits for another CPU), else they are
    NOPs (the loop polls)."""
    if a.op == 3 and ctx.flags & FLAG_SYSTEM:
        insn_el1.wfi(ctx)
    elif a.op in (1, 2) and ctx.flags & FLAG_SYSTEM:
        insn_el1.wfe(ctx)


def trans_CLREX(ctx: DisasContext, a) -> None:
    ctx.b.movi(ctx.glob("excl_addr"), NO_EXCLUSIVE)


def trans_BARRIER(ctx: DisasContext, a) -> bool | None:
    """DSB, DMB, ISB: every access of a thread is done when the next instruction runs;
    ISB ends the block so code written before it is translated afresh."""
    if a.op == 3:
        return False  # SB (FEAT_SB) is not in the model
    if a.op == 2:
        if ctx.flags & FLAG_SYSTEM:
            insn_el1.isb(ctx)
        ctx.goto(ctx.next_pc)
    return None


def _sysreg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """The 15-bit field of MRS/MSR (o0 op1 CRn CRm op2) for op0 = 2|o0."""
    return (op0 & 1) << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


NZCV = _sysreg(3, 3, 4, 2, 0)
FPCR = _sysreg(3, 3, 4, 4, 0)
FPSR = _sysreg(3, 3, 4, 4, 1)
TPIDR_EL0 = _sysreg(3, 3, 13, 0, 2)
TPIDRRO_EL0 = _sysreg(3, 3, 13, 0, 3)
# read-only ID registers EL0 may read (Linux emulates the MIDR/ID ones with HWCAP_CPUID)
CONSTANT_SYSREGS = {
    _sysreg(3, 3, 0, 0, 1): 0x8444_C004,  # CTR_EL0: 64-byte lines, IDC/DIC clear
    _sysreg(3, 3, 0, 0, 7): 0x10,  # DCZID_EL0: DC ZVA prohibited
    _sysreg(3, 0, 0, 0, 0): 0x410F_D083,  # MIDR_EL1: Cortex-A72 r0p3
    _sysreg(3, 0, 0, 0, 5): 0x8000_0000,  # MPIDR_EL1
    _sysreg(3, 0, 0, 4, 0): 0x0011,  # ID_AA64PFR0_EL1: EL0/EL1 AArch64, FP and AdvSIMD
}
_FLAGS = (("nf", 31), ("zf", 30), ("cf", 29), ("vf", 28))


def trans_MRS(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    if ctx.flags & FLAG_SYSTEM and a.sysreg not in (NZCV, FPCR, FPSR, TPIDR_EL0):
        insn_el1.mrs(ctx, a)
        return None
    if a.sysreg == NZCV:
        r = ctx.temp()
        b.movi(r, 0)
        t = ctx.temp()
        for name, bit in _FLAGS:
            b.binop(SHL, t, ctx.glob(name), Const(bit))
            b.binop(OR, r, r, t)
        ctx.write(a.rt, r)
    elif a.sysreg in (FPCR, FPSR, TPIDR_EL0):
        ctx.write(a.rt, ctx.glob({FPCR: "fpcr", FPSR: "fpsr", TPIDR_EL0: "tpidr_el0"}
                                 [a.sysreg]))
    elif a.sysreg in CONSTANT_SYSREGS:
        ctx.write(a.rt, Const(CONSTANT_SYSREGS[a.sysreg]))
    else:
        return False
    return None


def trans_MSR_reg(ctx: DisasContext, a) -> bool | None:
    b = ctx.b
    if ctx.flags & FLAG_SYSTEM and a.sysreg not in (NZCV, FPCR, FPSR, TPIDR_EL0):
        insn_el1.msr(ctx, a)
        return None
    value = ctx.read(a.rt)
    if a.sysreg == NZCV:
        for name, bit in _FLAGS:
            b.binop(SHR, ctx.glob(name), value, Const(bit))
            b.binop(AND, ctx.glob(name), ctx.glob(name), Const(1))
    elif a.sysreg == FPCR:
        b.binop(AND, ctx.glob("fpcr"), value, Const(0x07FF_9F00))
    elif a.sysreg == FPSR:
        b.binop(AND, ctx.glob("fpsr"), value, Const(0xF800_009F))
    elif a.sysreg == TPIDR_EL0:
        b.mov(ctx.glob("tpidr_el0"), value)
    else:
        return False
    return None


def trans_SYS(ctx: DisasContext, a) -> bool | None:
    """Cache maintenance EL0 may use: IC IVAU and DC CVAU/CVAC/CIVAC/CVAP are ordering
    no-ops here (translated code is invalidated on stores); DC ZVA is prohibited by
    DCZID_EL0 but zeroes its 64-byte block when used anyway."""
    if ctx.flags & FLAG_SYSTEM:
        return insn_el1.sys(ctx, a, _dc_zva)
    if a.op1 != 3:
        return False
    if (a.crn, a.crm, a.op2) == (7, 4, 1):
        return _dc_zva(ctx, a)
    if (a.crn, a.crm, a.op2) in ((7, 5, 1), (7, 11, 1), (7, 10, 1), (7, 14, 1), (7, 12, 1),
                                 (7, 13, 1)):
        return None
    return False


def _dc_zva(ctx: DisasContext, a) -> None:
    """DC ZVA: zero the 64-byte block."""
    base = ctx.temp()
    ctx.b.binop(AND, base, ctx.read(a.rt), imm(~63))
    for off in range(0, 64, 8):
        addr = ctx.temp()
        ctx.b.binop(ADD, addr, base, Const(off))
        ctx.b.st(ZERO, addr, MemOp(8))


__all__ = [name for name in dir() if name.startswith("trans_")]
