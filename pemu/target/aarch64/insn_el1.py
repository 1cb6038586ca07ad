"""A64 instructions as system mode runs them (block flags with FLAG_SYSTEM).

MRS/MSR of anything but NZCV, FPCR, FPSR and TPIDR_EL0 go to the CPU's register table
(sysregs.py) through one helper each, except at EL1 the registers Linux touches all
the time, which translated code reads and writes in their state slots: SP_EL0
(``current``), TPIDR_EL1 (the per-CPU offset), DAIF (irqsave/irqrestore), CurrentEL (a
constant of the block flags), MSR DAIFSet/DAIFClr, and reads of the registers the CPU
keeps copies of in slots (DCZID_EL0, CTR_EL0, TCR_EL1, ...).  Code that may unmask an
interrupt compares the new mask with the IRQ/FIQ inputs' mirror slot and asks for an
exit when one is now deliverable; the block ends there, so the exit comes before the
next instruction.  ISB calls its helper only when IC maintenance left code to check.
SYS covers cache maintenance, TLBI and AT; MSR (immediate) sets DAIF and SPSel; ERET,
HVC/SMC (the PSCI conduit), WFI.  The
exception level is in the block flags, so what EL0 may not do is refused when the
block is translated.  Everything that may change the block flags or the translation
regime, or unmask an interrupt, ends the block.
"""

from __future__ import annotations

from pemu.accel.tcg import counters
from pemu.accel.tcg.guest_clock import emit_guest_ticks
from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, CALL_WRITES_STATE, Cond, Const, Helper, Operand
from pemu.accel.tcg.opcodes import AND, OR, XOR
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.cpu_state import FLAG_EL_MASK, FLAG_SPSEL, FLAG_SYSTEM, MASK64
from pemu.target.aarch64.exceptions import UNDEFINED, Aarch64Trap
from pemu.target.aarch64.generic_timer import NS_PER_TICK
from pemu.target.aarch64.sysregs import encoding_of, pack, raz_id_space


def _el(ctx: DisasContext) -> int:
    return ctx.flags & FLAG_EL_MASK


def system_mode(ctx: DisasContext) -> bool:
    return bool(ctx.flags & FLAG_SYSTEM)


# -- helpers (env: system_cpu.Aarch64CPU) ---------------------------------------------------
def _mrs(env, packed: int, insn: int) -> int:
    reg = env.sysregs.get(packed)
    if counters.ENABLED:
        counters.count(f"sysreg:mrs {reg.name if reg else hex(packed)}")
    if reg is None or reg.read is None or (env.el == 0 and not reg.el0):
        if env.el and reg is None and raz_id_space(encoding_of(packed & 0x7FFF)):
            return 0
        raise Aarch64Trap(UNDEFINED, insn)
    return reg.read(env) & MASK64


def _msr(env, packed: int, value: int, insn: int) -> None:
    reg = env.sysregs.get(packed)
    if counters.ENABLED:
        counters.count(f"sysreg:msr {reg.name if reg else hex(packed)}")
    if reg is None or reg.write is None or (env.el == 0 and not reg.el0):
        raise Aarch64Trap(UNDEFINED, insn)
    reg.write(env, value)


def _msr_imm(env, field: int, imm: int, insn: int) -> None:
    if field == DAIFSET:
        env.set_daif(env.daif | imm << 6)
    elif field == DAIFCLR:
        env.set_daif(env.daif & ~(imm << 6))
    elif field == SPSEL:
        env.set_spsel(imm & 1)
    else:
        raise Aarch64Trap(UNDEFINED, insn)


def _eret(env) -> int:
    return env.exception_return()


def _conduit(env, imm: int, insn: int) -> None:
    handler = env.conduit
    if handler is None or not handler(env, imm):
        raise Aarch64Trap(UNDEFINED, insn)


def _wfi(env) -> None:
    env.wait_for_interrupt()


def _wfe(env) -> None:
    """WFE/YIELD: a spin-wait (Linux's smp_cond_load, cpu_relax) for what another vCPU
    will do; when several vCPUs take turns on this thread, let the next one run now
    instead of spinning out the quantum."""
    end_turn = env.end_turn
    if end_turn is not None:
        end_turn()


def _isb(env) -> None:
    env.sync_icache()


def _ic_invalidate(env) -> None:
    """IC IALLU/IALLUIS: code may have changed anywhere; the next context
    synchronisation (ISB, ERET) drops the translations of every changed page."""
    env.icache_stale = True


def _ic_ivau(env, vaddr: int) -> None:
    """IC IVAU: the page of ``vaddr`` only (Linux patches its text one instruction at a
    time, each followed by IC IVAU: a whole-memory check per patch would crawl)."""
    env.invalidate_code_at(vaddr)


def _va_of(value: int) -> int:
    """The page a TLBI names: VA[55:12] in bits 43:0, sign-extended from bit 55."""
    va = (value & ((1 << 44) - 1)) << 12
    return va | 0xFF00_0000_0000_0000 if va >> 55 & 1 else va


def _tlbi(env, op: int, value: int) -> None:
    """TLBI (op = CRm << 3 | op2): broadcast forms reach every CPU (one host thread
    runs them all, so "completed by the DSB" holds at once)."""
    crm, op2 = op >> 3, op & 7
    cpus = env.translator.harts if crm in (1, 3) else [env]
    for cpu in cpus:  # (each flush drops the jump-cache entries of what it drops)
        if op2 in (1, 3, 5, 7):  # VAE1, VAAE1, VALE1, VAALE1: the page in every space
            cpu.mmu.flush_page(_va_of(value))
        elif op2 == 2:  # ASIDE1
            cpu.mmu.flush_asid(value >> 48)
        else:  # VMALLE1 and anything else: everything
            cpu.tlb_flush_all()


def _at(env, op2: int, vaddr: int) -> None:
    env.address_translate(vaddr, bool(op2 & 1), 0 if op2 & 2 else 1)


MRS = Helper("a64_mrs", _mrs, n_out=1, needs_env=True)
MSR = Helper("a64_msr", _msr, n_out=0, needs_env=True)
MSR_IMM = Helper("a64_msr_imm", _msr_imm, n_out=0, needs_env=True)
ERET = Helper("a64_eret", _eret, n_out=1, needs_env=True)
CONDUIT = Helper("a64_conduit", _conduit, n_out=0, needs_env=True)
WFI = Helper("a64_wfi", _wfi, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
WFE = Helper("a64_wfe", _wfe, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
ISB = Helper("a64_isb", _isb, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
IC_INVALIDATE = Helper("a64_ic_invalidate", _ic_invalidate,
                       flags=CALL_SIDE_EFFECTS | CALL_WRITES_STATE, n_out=0, needs_env=True)
IC_IVAU = Helper("a64_ic_ivau", _ic_ivau, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
TLBI = Helper("a64_tlbi", _tlbi, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
AT = Helper("a64_at", _at, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)

DAIFSET, DAIFCLR, SPSEL = 3 << 3 | 6, 3 << 3 | 7, 0 << 3 | 5  # MSR (immediate): op1:op2


# -- emitters called by insn_system for system-mode blocks -----------------------------------
def _field(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return pack((op0, op1, crn, crm, op2)) & 0x7FFF  # MRS/MSR's 15-bit field


SP_EL0_FIELD = _field(3, 0, 4, 1, 0)
TPIDR_EL1_FIELD = _field(3, 0, 13, 0, 4)
DAIF_FIELD = _field(3, 3, 4, 2, 1)
CURRENT_EL_FIELD = _field(3, 0, 4, 2, 2)
_SP_EL0_INLINE = FLAG_SPSEL | 1  # EL1 on SP_EL1: SP_EL0 is its bank slot
DAIF_MASK = 0x3C0


def _inline_slot(ctx: DisasContext, a) -> str | None:
    """The state slot global an EL1 MRS/MSR of this register reads or writes, if any."""
    if _el(ctx) != 1:
        return None  # at EL0 the helper decides (most of these are UNDEFINED there)
    if a.sysreg == SP_EL0_FIELD:
        return "sp_el0" if ctx.flags & _SP_EL0_INLINE == _SP_EL0_INLINE else None
    return {TPIDR_EL1_FIELD: "tpidr_el1", DAIF_FIELD: "daif"}.get(a.sysreg)


# MRS field -> (the slot global of its copy, readable at EL0): registers Linux reads
# often (DCZID_EL0 and CTR_EL0 in clear_page, memset and the cache maintenance
# loops; TCR_EL1 around user accesses) that change only through the CPU
_MIRRORED = {_field(3, 3, 0, 0, 7): ("dczid_el0", True), _field(3, 3, 0, 0, 1): ("ctr_el0", True),
             _field(3, 0, 0, 6, 0): ("id_aa64isar0_el1", False),
             _field(3, 0, 2, 0, 2): ("tcr_el1", False)}


# CNTPCT_EL0, CNTVCT_EL0 (CNTVOFF is zero): the vDSO's and the kernel's clock reads
_COUNTER_FIELDS = (_field(3, 3, 14, 0, 1), _field(3, 3, 14, 0, 2))


def mrs(ctx: DisasContext, a) -> None:
    slot = _inline_slot(ctx, a)
    if slot is not None:
        ctx.write(a.rt, ctx.glob(slot))
        return
    mirrored = _MIRRORED.get(a.sysreg)
    if mirrored is not None and (_el(ctx) or mirrored[1]):
        ctx.write(a.rt, ctx.glob(mirrored[0]))
        return
    if a.sysreg == CURRENT_EL_FIELD and _el(ctx):
        ctx.write(a.rt, Const(_el(ctx) << 2))
        return
    if a.sysreg in _COUNTER_FIELDS:  # readable at EL0 and EL1 alike (as the helper has it)
        out = ctx.temp()
        emit_guest_ticks(ctx.b, out, ctx.glob("counter_start_ns"), Const(NS_PER_TICK), Const(0))
        ctx.write(a.rt, out)
        return
    out = ctx.temp()
    ctx.b.call(MRS, [out], [Const(pack(encoding_of(a.sysreg))), Const(ctx.insn)])
    ctx.write(a.rt, out)


def msr(ctx: DisasContext, a) -> None:
    slot = _inline_slot(ctx, a)
    if slot == "daif":
        new = ctx.temp()
        ctx.b.binop(AND, new, ctx.read(a.rt), Const(DAIF_MASK))
        _set_daif(ctx, new)
        return
    if slot is not None:
        ctx.b.mov(ctx.glob(slot), ctx.read(a.rt))
        return
    ctx.b.call(MSR, [], [Const(pack(encoding_of(a.sysreg))), ctx.read(a.rt), Const(ctx.insn)])
    ctx.goto(ctx.next_pc)


def _set_daif(ctx: DisasContext, new: Operand, unmasks: bool = True) -> None:
    """PSTATE.DAIF = ``new``, inline.  If that may unmask an interrupt whose input is
    high, request an exit and end the block: the vCPU loop takes the interrupt before
    the next instruction, as after the helper (check_interrupts)."""
    b = ctx.b
    daif = ctx.glob("daif")
    b.mov(daif, new)
    if not unmasks:
        return
    deliverable, done = ctx.temp(), b.label()
    b.binop(XOR, deliverable, daif, Const(DAIF_MASK))
    b.binop(AND, deliverable, deliverable, ctx.glob("irq_lines"))
    b.brcond(Cond.EQ, deliverable, Const(0), done)
    b.movi(ctx.glob("exit_request"), 1)  # only ever 1: another thread may set it too
    b.set_label(done)
    ctx.goto(ctx.next_pc)


def wfi(ctx: DisasContext) -> None:
    ctx.b.call(WFI, [], [])
    ctx.goto(ctx.next_pc)


def wfe(ctx: DisasContext) -> None:
    ctx.b.call(WFE, [], [])
    ctx.goto(ctx.next_pc)


def isb(ctx: DisasContext) -> None:
    """The helper only when IC IALLU left translated code to check (sync_icache)."""
    b = ctx.b
    clean = b.label()
    b.brcond(Cond.EQ, ctx.glob("icache_stale"), Const(0), clean)
    b.call(ISB, [], [])
    b.set_label(clean)


# SYS encodings (op1, CRn, CRm, op2) EL0 may use; the rest are EL1's
_DC_EL0 = {(3, 7, 11, 1), (3, 7, 10, 1), (3, 7, 14, 1), (3, 7, 12, 1), (3, 7, 13, 1)}
_DC_EL1 = {(0, 7, 6, 1), (0, 7, 6, 2), (0, 7, 10, 2), (0, 7, 14, 2)}
_IC = {(0, 7, 1, 0): 1, (0, 7, 5, 0): 1, (3, 7, 5, 1): 0}  # -> EL1 only


def sys(ctx: DisasContext, a, dc_zva) -> bool | None:
    """SYS in system mode; ``dc_zva(ctx, a)`` emits DC ZVA (shared with user mode)."""
    key = (a.op1, a.crn, a.crm, a.op2)
    el = _el(ctx)
    if key == (3, 7, 4, 1):
        return dc_zva(ctx, a)
    if key in _DC_EL0 or (key in _DC_EL1 and el):
        return None  # caches are coherent: nothing to clean or invalidate
    if key in _IC:
        if _IC[key] and not el:
            return False
        if _IC[key]:
            ctx.b.call(IC_INVALIDATE, [], [])
        else:
            ctx.b.call(IC_IVAU, [], [ctx.read(a.rt)])
        return None
    if not el or a.op1 != 0:
        return False
    if a.crn == 8 and a.crm in (1, 3, 7):
        ctx.b.call(TLBI, [], [Const(a.crm << 3 | a.op2), ctx.read(a.rt)])
        ctx.goto(ctx.next_pc)
        return None
    if (a.crn, a.crm) == (7, 8) and a.op2 < 4:
        ctx.b.call(AT, [], [Const(a.op2), ctx.read(a.rt)])
        return None
    return False


# -- instructions only system mode has ---------------------------------------------------------
def trans_MSR_imm(ctx: DisasContext, a) -> bool | None:
    if not system_mode(ctx) or not _el(ctx):
        return False
    field = a.op1 << 3 | a.op2
    if field not in (DAIFSET, DAIFCLR, SPSEL):
        return False
    if field != SPSEL:  # DAIFSet only masks: the block goes on; DAIFClr may unmask
        new = ctx.temp()
        if field == DAIFSET:
            ctx.b.binop(OR, new, ctx.glob("daif"), Const(a.crm << 6))
        else:
            ctx.b.binop(AND, new, ctx.glob("daif"), Const(DAIF_MASK & ~(a.crm << 6)))
        _set_daif(ctx, new, unmasks=field == DAIFCLR)
        return None
    ctx.b.call(MSR_IMM, [], [Const(field), Const(a.crm), Const(ctx.insn)])
    ctx.goto(ctx.next_pc)
    return None


def trans_ERET(ctx: DisasContext, a) -> bool | None:
    if not system_mode(ctx) or not _el(ctx):
        return False
    pc = ctx.temp()
    ctx.b.call(ERET, [pc], [])
    ctx.goto_reg(pc)
    return None


def _conduit_insn(ctx: DisasContext, a) -> bool | None:
    if not system_mode(ctx) or not _el(ctx):
        return False
    ctx.b.call(CONDUIT, [], [Const(a.imm), Const(ctx.insn)])
    ctx.goto(ctx.next_pc)
    return None


trans_HVC = _conduit_insn
trans_SMC = _conduit_insn

__all__ = ["isb", "mrs", "msr", "sys", "system_mode", "trans_ERET", "trans_HVC",
           "trans_MSR_imm", "trans_SMC", "wfe", "wfi"]
