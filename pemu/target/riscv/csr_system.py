"""Machine- and supervisor-level CSRs for system mode, registered in the CSR table.

Each entry reads or writes ``env.ps`` (a ``PrivState``); ``env`` is the system-mode
hart (``pemu.target.riscv.hart.RiscvHart``).  The CSR helper already enforces the
privilege encoded in the CSR number and read-only numbers; the extra rules (TVM for
satp, counter enables, Sstc's STCE) raise here.  Writes that can unmask an interrupt,
change the translation regime or the block flags end the block (``ends_block``) and
kick the vCPU loop so it re-checks interrupts and flags before running on.

The user-level time CSR is wrapped, not replaced: in user mode (an env without
``ps``) it behaves as before.  The counters that count are csr_pmu.py's.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.riscv import csr
from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.csr_stateen import check_senvcfg, register_stateen_csrs
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.hyp import H_INTERRUPTS, MIP_VSSIP, MSTATUS_GVA, MSTATUS_MPV, VIRTUAL_INSN
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U, SATP_MODE_BARE
from pemu.target.riscv.pointer_masking import CSR_MSECCFG, legal_write
from pemu.target.riscv.priv import (
    ALL_INTERRUPTS,
    ENVCFG_FLAG_BITS,
    MEDELEG_WRITABLE,
    MENVCFG_STCE,
    MENVCFG_WRITABLE,
    MIP_SEIP,
    MIP_SSIP,
    MIP_STIP,
    MSTATUS_FLAG_BITS,
    MSTATUS_FS,
    MSTATUS_MIE,
    MSTATUS_MPP,
    MSTATUS_MPP_SHIFT,
    MSTATUS_MXR,
    MSTATUS_SIE,
    MSTATUS_TVM,
    MSTATUS_VS,
    MSTATUS_WRITABLE,
    S_INTERRUPTS,
    SENVCFG_WRITABLE,
    SSTATUS_MASK,
)

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
COUNTER_CY, COUNTER_TM, COUNTER_IR = 0, 1, 2


def _illegal() -> RiscvTrap:
    return RiscvTrap(ILLEGAL_INSN, 0)


def _ps(env: object):  # -> PrivState
    return env.ps  # type: ignore[attr-defined]


def _define(number: int, name: str, read: Callable[[object], int],
            write: Callable[[object, int], None] | None = None, ends_block: bool = False,
            read_for_update: Callable[[object], int] | None = None) -> None:
    register_csr(number, CsrDef(name, read, write, ends_block,
                                read_for_update=read_for_update))


def _field(name: str, mask: int = MASK64, number: int = 0, ends: bool = False) -> None:
    """A plain register: stored in PrivState.<name>, writable bits ``mask``."""

    def read(env: object) -> int:
        return getattr(_ps(env), name)

    def write(env: object, v: int) -> None:
        ps = _ps(env)
        setattr(ps, name, (getattr(ps, name) & ~mask) | (v & mask))
        if ends:
            ps.request_exit()

    _define(number, name, read, write, ends)


# -- status ---------------------------------------------------------------------------

def _legal_mpp(v: int) -> int:
    mpp = (v & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
    if mpp == 2:  # reserved (no H): keep it a supported mode
        mpp = PRV_U
    return (v & ~MSTATUS_MPP) | (mpp << MSTATUS_MPP_SHIFT)


def _write_status(env: object, new: int) -> None:
    ps = _ps(env)
    old = ps.mstatus
    if not ps.vector:
        new &= ~MSTATUS_VS  # no V: VS is read-only zero
    ps.mstatus = new
    if (old ^ new) & MSTATUS_MXR:
        env.tlb_flush_all()  # type: ignore[attr-defined]
    # Linux toggles SUM around every user copy and SIE around every irqsave lock: the
    # vCPU loop must not be left for either.  New block flags (MMU bits, FS) reach the
    # dispatcher in place (the write ends the block with a lookup); only an interrupt
    # that really became deliverable needs an exit.
    if (old ^ new) & MSTATUS_FLAG_BITS:
        ps.on_flags_changed()
    if new & ~old & (MSTATUS_SIE | MSTATUS_MIE):
        ps.recheck_interrupts()


def _write_mstatus(env: object, v: int) -> None:
    ps = _ps(env)
    mask = MSTATUS_WRITABLE | (MSTATUS_MPV | MSTATUS_GVA if ps.has_h else 0)
    _write_status(env, (ps.mstatus & ~mask) | (_legal_mpp(v) & mask))
    ps.sync_address_space()  # H: MPRV with MPV translates as V=1


def _read_sstatus(env: object) -> int:
    return _ps(env).read_mstatus() & SSTATUS_MASK


def _write_sstatus(env: object, v: int) -> None:
    ps = _ps(env)
    mask = SSTATUS_MASK & MSTATUS_WRITABLE
    _write_status(env, (ps.mstatus & ~mask) | (v & mask))


# -- interrupts ----------------------------------------------------------------------

def _write_mie(env: object, v: int) -> None:
    ps = _ps(env)
    ps.mie = v & (ALL_INTERRUPTS | ps.local_interrupts | (H_INTERRUPTS if ps.has_h else 0))
    ps.recheck_interrupts()


def _read_sie(env: object) -> int:
    ps = _ps(env)
    return ps.mie & ps.mideleg


def _write_sie(env: object, v: int) -> None:
    ps = _ps(env)
    ps.mie = (ps.mie & ~ps.mideleg) | (v & ps.mideleg)
    ps.recheck_interrupts()


def _mip_sw_writable(ps) -> int:
    return (MIP_SSIP | MIP_SEIP | (0 if ps.sstc_enabled else MIP_STIP)
            | ps.local_interrupts)


def _read_mip_for_update(env: object) -> int:
    """mip as csrrs/csrrc see it: the software-writable SEIP, not the line's."""
    ps = _ps(env)
    return ps.mip() & ~MIP_SEIP | ps.mip_sw & MIP_SEIP


def _write_mip(env: object, v: int) -> None:
    ps = _ps(env)
    mask = _mip_sw_writable(ps)
    ps.mip_sw = (ps.mip_sw & ~mask) | (v & mask)
    if ps.has_h:  # mip.VSSIP is hvip's
        ps.hyp.hvip = ps.hyp.hvip & ~MIP_VSSIP | v & MIP_VSSIP
    ps.recheck_interrupts()


def _read_sip(env: object) -> int:
    ps = _ps(env)
    return ps.mip() & ps.mideleg


def _write_sip(env: object, v: int) -> None:
    ps = _ps(env)
    # S-mode may only set/clear its software interrupt (and Sscofpmf's LCOFIP)
    mask = (MIP_SSIP | ps.local_interrupts) & ps.mideleg
    ps.mip_sw = (ps.mip_sw & ~mask) | (v & mask)
    ps.recheck_interrupts()


def _write_mideleg(env: object, v: int) -> None:
    ps = _ps(env)
    ps.mideleg = v & (S_INTERRUPTS | ps.local_interrupts)
    ps.recheck_interrupts()


def _write_tvec(name: str) -> Callable[[object, int], None]:
    def write(env: object, v: int) -> None:
        setattr(_ps(env), name, v & ~2)  # modes 2 and 3 are reserved: keep direct/vectored
    return write


def _write_epc(name: str) -> Callable[[object, int], None]:
    def write(env: object, v: int) -> None:
        setattr(_ps(env), name, v & ~1)  # IALIGN is 16 with the C extension
    return write


# -- address translation ---------------------------------------------------------------

def _check_tvm(ps) -> None:
    if ps.priv == PRV_S and ps.mstatus & MSTATUS_TVM:
        raise _illegal()


def _read_satp(env: object) -> int:
    ps = _ps(env)
    _check_tvm(ps)
    return ps.satp


def _write_satp(env: object, v: int) -> None:
    ps = _ps(env)
    _check_tvm(ps)
    mode = v >> 60
    if mode != SATP_MODE_BARE and mode not in ps.satp_modes:
        return  # WARL: a write of an unsupported mode has no effect at all
    # ASIDLEN 16: the ASID is kept, and the softmmu keeps one set of TLBs per
    # address space, so a context switch costs no flush (sfence.vma orders changes).
    old_mode = ps.satp >> 60
    ps.satp = v
    if mode != old_mode:  # a new MODE takes effect at once, fence or not: global code too
        env.mmu.forget_global()  # type: ignore[attr-defined]
    env.mmu.switch()  # type: ignore[attr-defined]  (rebinds the native TLB and jump cache)
    ps.on_flags_changed()  # the python loop holds the old space's jump cache


# -- counters and timers ------------------------------------------------------------------

def _counter_allowed(ps, index: int) -> None:
    if ps.priv < PRV_M and not ps.mcounteren >> index & 1:
        raise _illegal()
    if ps.virt and not ps.hyp.hcounteren >> index & 1:  # H: the hypervisor's refusal
        raise RiscvTrap(VIRTUAL_INSN, 0)
    if ps.virt and ps.priv == PRV_U and not ps.scounteren >> index & 1:
        raise RiscvTrap(VIRTUAL_INSN, 0)
    if ps.priv == PRV_U and not ps.scounteren >> index & 1:
        raise _illegal()


def _user_counter(number: int, index: int, system_read: Callable[[object], int]) -> None:
    """Wrap the user-mode cycle/time/instret CSR with the counter-enable rules."""
    user = csr.CSR_TABLE[number]

    def read(env: object) -> int:
        ps = getattr(env, "ps", None)
        if ps is None:
            return user.read(env)
        _counter_allowed(ps, index)
        return system_read(env)

    _define(number, user.name, read)


def _read_time(env: object) -> int:
    ps = _ps(env)
    if ps.virt:  # H: a guest's time is offset by htimedelta
        return (ps.now() + ps.hyp.htimedelta) & MASK64
    return ps.now()


def _zero(env: object) -> int:
    return 0


def _ignore(env: object, v: int) -> None:
    pass


def _check_stimecmp(ps) -> None:
    if ps.priv < PRV_M and not (ps.menvcfg & MENVCFG_STCE and ps.mcounteren >> COUNTER_TM & 1):
        raise _illegal()


def _read_stimecmp(env: object) -> int:
    ps = _ps(env)
    _check_stimecmp(ps)
    return ps.stimecmp


def _write_stimecmp(env: object, v: int) -> None:
    ps = _ps(env)
    _check_stimecmp(ps)
    ps.set_stimecmp(v)


def _read_senvcfg(env: object) -> int:
    ps = _ps(env)
    check_senvcfg(ps)
    return ps.senvcfg


def _write_senvcfg(env: object, v: int) -> None:
    ps = _ps(env)
    check_senvcfg(ps)
    old = ps.senvcfg
    ps.senvcfg = v & SENVCFG_WRITABLE | legal_write(old, v, "ssnpm" in ps.pm_extensions)
    if (old ^ ps.senvcfg) & ENVCFG_FLAG_BITS:
        ps.on_flags_changed()  # U/VU-mode's pointer masking and cbo.zero (block flags)


def _write_menvcfg(env: object, v: int) -> None:
    ps = _ps(env)
    old = ps.menvcfg
    ps.menvcfg = v & MENVCFG_WRITABLE | legal_write(old, v, "smnpm" in ps.pm_extensions)
    if (old ^ ps.menvcfg) & ENVCFG_FLAG_BITS:
        ps.on_flags_changed()  # S-mode's pointer masking, cbo.zero (in the block flags)
    ps.request_exit()


def _check_mseccfg(ps) -> None:
    """mseccfg exists on a hart with Smmpm (pemu has no Smepmp or Zkr)."""
    if "smmpm" not in ps.pm_extensions:
        raise _illegal()


def _read_mseccfg(env: object) -> int:
    ps = _ps(env)
    _check_mseccfg(ps)
    return ps.mseccfg


def _write_mseccfg(env: object, v: int) -> None:
    ps = _ps(env)
    _check_mseccfg(ps)
    old = ps.mseccfg
    ps.mseccfg = legal_write(old, v, True)  # PMM: M-mode's pointer masking
    if old != ps.mseccfg:
        ps.on_flags_changed()


# -- PMP -----------------------------------------------------------------------------------

def _pmpcfg(reg: int) -> None:
    def read(env: object) -> int:
        return env.pmp.read_cfg(reg)  # type: ignore[attr-defined]

    def write(env: object, v: int) -> None:
        env.pmp.write_cfg(reg, v)  # type: ignore[attr-defined]

    _define(0x3A0 + reg, f"pmpcfg{reg}", read, write, True)


def _pmpaddr(n: int) -> None:
    def read(env: object) -> int:
        return env.pmp.read_addr(n)  # type: ignore[attr-defined]

    def write(env: object, v: int) -> None:
        env.pmp.write_addr(n, v)  # type: ignore[attr-defined]

    _define(0x3B0 + n, f"pmpaddr{n}", read, write, True)


_registered = False


def register_system_csrs() -> None:
    """Add the M/S CSRs to the table (idempotent; called by the system-mode hart)."""
    global _registered
    if _registered:
        return
    _registered = True
    # machine information
    _define(0xF11, "mvendorid", _zero)
    _define(0xF12, "marchid", _zero)
    _define(0xF13, "mimpid", _zero)
    _define(0xF14, "mhartid", lambda env: _ps(env).hartid)
    _define(0xF15, "mconfigptr", _zero)
    # machine trap setup and handling
    _define(0x300, "mstatus", lambda env: _ps(env).read_mstatus(), _write_mstatus, True)
    _define(0x301, "misa", lambda env: _ps(env).misa, _ignore)
    _field("medeleg", MEDELEG_WRITABLE, 0x302)
    _define(0x303, "mideleg", lambda env: _ps(env).mideleg, _write_mideleg, True)
    _define(0x304, "mie", lambda env: _ps(env).mie, _write_mie, True)
    _define(0x305, "mtvec", lambda env: _ps(env).mtvec, _write_tvec("mtvec"))
    _field("mcounteren", 0xFFFF_FFFF, 0x306)
    _define(0x30A, "menvcfg", lambda env: _ps(env).menvcfg, _write_menvcfg, True)
    _define(CSR_MSECCFG, "mseccfg", _read_mseccfg, _write_mseccfg, True)
    _field("mscratch", MASK64, 0x340)
    _define(0x341, "mepc", lambda env: _ps(env).mepc, _write_epc("mepc"))
    _field("mcause", MASK64, 0x342)
    _field("mtval", MASK64, 0x343)
    _define(0x344, "mip", lambda env: _ps(env).mip(), _write_mip, True,
            read_for_update=_read_mip_for_update)
    for reg in (0, 2):
        _pmpcfg(reg)
    for n in range(16):
        _pmpaddr(n)
    # the other counters (mcycle, minstret, hpm*, mcountinhibit): csr_pmu.py
    _user_counter(0xC01, COUNTER_TM, _read_time)
    # supervisor
    _define(0x100, "sstatus", _read_sstatus, _write_sstatus, True)
    _define(0x104, "sie", _read_sie, _write_sie, True)
    _define(0x105, "stvec", lambda env: _ps(env).stvec, _write_tvec("stvec"))
    _field("scounteren", 0xFFFF_FFFF, 0x106)
    _define(0x10A, "senvcfg", _read_senvcfg, _write_senvcfg, True)  # PMM: block flags
    register_stateen_csrs()
    _field("sscratch", MASK64, 0x140)
    _define(0x141, "sepc", lambda env: _ps(env).sepc, _write_epc("sepc"))
    _field("scause", MASK64, 0x142)
    _field("stval", MASK64, 0x143)
    _define(0x144, "sip", _read_sip, _write_sip, True)
    _define(0x14D, "stimecmp", _read_stimecmp, _write_stimecmp, True)
    _define(0x180, "satp", _read_satp, _write_satp, True)


__all__ = ["register_system_csrs", "PRV_S", "MIP_STIP", "MSTATUS_FS"]
