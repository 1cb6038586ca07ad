"""The hypervisor extension's CSRs (h*, vs*, mtval2/mtinst) and the CSR view of V=1.

Every CSR here is illegal on a hart without H (the table is one for all harts).
Code running with V=1 reaches the CSR helper through ``CSR_ACCESS_VIRT`` (the
translator picks it from the block flags), which applies the spec's redirections
(section 8.2): an S CSR names its VS copy (sstatus -> vsstatus, satp -> vsatp, ...),
an H or VS CSR, or an S CSR from VU-mode, raises the virtual-instruction exception.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Helper
from pemu.target.riscv import csr
from pemu.target.riscv.cpu_state import PRIV
from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.csr_stateen import MSTATEEN_WRITABLE, STATEEN0_ENVCFG, STATEEN_SE0
from pemu.target.riscv.csr_system import _write_mideleg
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.hyp import (
    H_INTERRUPTS,
    HCOUNTEREN_MASK,
    HEDELEG_WRITABLE,
    HENVCFG_WRITABLE,
    HGATP_MODE_SHIFT,
    HGATP_VMID_SHIFT,
    HSTATUS_VGEIN,
    HSTATUS_VGEIN_SHIFT,
    HSTATUS_VTVM,
    HSTATUS_WRITABLE,
    MEDELEG_H,
    MIP_VSSIP,
    VIRTUAL_INSN,
    VMIDLEN,
    VS_INTERRUPTS,
)
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U, SATP_MODE_BARE
from pemu.target.riscv.pointer_masking import (
    HSTATUS_HUPMM,
    HSTATUS_HUPMM_SHIFT,
    legal_write,
)
from pemu.target.riscv.priv import (
    ENVCFG_FLAG_BITS,
    MEDELEG_WRITABLE,
    MENVCFG_STCE,
    MSTATUS_FS,
    MSTATUS_MXR,
    MSTATUS_SD,
    MSTATUS_SIE,
    MSTATUS_SUM,
    MSTATUS_TVM,
    MSTATUS_VS,
    MSTATUS_WRITABLE,
    SSTATUS_MASK,
)

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
VSSTATUS_WRITABLE = SSTATUS_MASK & MSTATUS_WRITABLE
# S CSRs that V=1 code reaches as their VS copies
VS_ALIASES = {0x100: 0x200, 0x104: 0x204, 0x105: 0x205, 0x140: 0x240, 0x141: 0x241,
              0x142: 0x242, 0x143: 0x243, 0x144: 0x244, 0x180: 0x280, 0x14D: 0x24D,
              # AIA (aia_hyp_csrs.py): siselect, sireg, stopei, stopi
              0x150: 0x250, 0x151: 0x251, 0x15C: 0x25C, 0xDB0: 0xEB0}
# S CSRs the hypervisor swaps itself (no VS copy): V=1 code reaches them directly
VS_SHARED = frozenset({0x106, 0x10A, 0x10C, 0x10D, 0x10E, 0x10F})


def _hps(env: object):  # -> PrivState of a hart with H
    ps = env.ps  # type: ignore[attr-defined]
    if not ps.has_h:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    return ps


def _define(number: int, name: str, read: Callable[[object], int],
            write: Callable[[object, int], None] | None = None, ends_block: bool = False
            ) -> None:
    register_csr(number, CsrDef(name, read, write, ends_block))


def _hyp_field(name: str, number: int, mask: int = MASK64) -> None:
    """A plain HypState register with writable bits ``mask``."""

    def read(env: object) -> int:
        return getattr(_hps(env).hyp, name)

    def write(env: object, v: int) -> None:
        hyp = _hps(env).hyp
        setattr(hyp, name, (getattr(hyp, name) & ~mask) | (v & mask))

    _define(number, name, read, write)


# -- machine level -----------------------------------------------------------------------

def _write_medeleg(env: object, v: int) -> None:
    ps = env.ps  # type: ignore[attr-defined]
    ps.medeleg = v & (MEDELEG_WRITABLE | (MEDELEG_H if ps.has_h else 0))


def _read_mideleg(env: object) -> int:
    return env.ps.mideleg_effective  # type: ignore[attr-defined]


# -- hypervisor level ----------------------------------------------------------------------

def _write_hstatus(env: object, v: int) -> None:
    ps = _hps(env)
    hyp = ps.hyp
    mask = HSTATUS_WRITABLE
    if (v & HSTATUS_VGEIN) >> HSTATUS_VGEIN_SHIFT <= hyp.geilen:
        mask |= HSTATUS_VGEIN  # WLRL: a guest file number, or 0; others keep the old
    old_vgein = hyp.vgein
    # HUPMM: hlv/hsv's pointer masking in U-mode (read by their helper at run time)
    hupmm = legal_write(hyp.hstatus, v, "ssnpm" in ps.pm_extensions, HSTATUS_HUPMM_SHIFT)
    hyp.hstatus = (hyp.hstatus & ~mask | v & mask) & ~HSTATUS_HUPMM | hupmm
    if hyp.vgein != old_vgein:
        ps.recheck_interrupts()  # VSEIP follows another guest file now


def _write_hideleg(env: object, v: int) -> None:
    ps = _hps(env)
    ps.hyp.hideleg = v & VS_INTERRUPTS
    ps.recheck_interrupts()


def _read_hie(env: object) -> int:
    return _hps(env).mie & H_INTERRUPTS


def _write_hie(env: object, v: int) -> None:
    ps = _hps(env)
    ps.mie = ps.mie & ~H_INTERRUPTS | v & H_INTERRUPTS
    ps.recheck_interrupts()


def _read_hip(env: object) -> int:
    return _hps(env).mip() & H_INTERRUPTS


def _write_hip(env: object, v: int) -> None:
    ps = _hps(env)  # only VSSIP is writable in hip (an alias of hvip's)
    ps.hyp.hvip = ps.hyp.hvip & ~MIP_VSSIP | v & MIP_VSSIP
    ps.recheck_interrupts()


def _write_hvip(env: object, v: int) -> None:
    ps = _hps(env)
    ps.hyp.hvip = v & VS_INTERRUPTS
    ps.recheck_interrupts()


def _hgatp_ps(env: object):  # -> PrivState; hgatp from HS obeys mstatus.TVM as satp does
    ps = _hps(env)
    if ps.priv == PRV_S and ps.mstatus & MSTATUS_TVM:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    return ps


def _write_hgatp(env: object, v: int) -> None:
    ps = _hgatp_ps(env)
    mode = v >> HGATP_MODE_SHIFT
    if mode != SATP_MODE_BARE and mode not in ps.satp_modes:
        return  # WARL: Sv39x4/Sv48x4/Sv57x4 as far as the hart's satp modes go (KVM probes)
    # VMIDLEN 14 as QEMU's (bits 57:44; the TLB keys hold the whole hgatp, so guests
    # of different VMIDs never share entries); the root is 16 KiB aligned: PPN[1:0]
    # are zero
    ps.hyp.hgatp = v & ~((1 << 60) - (1 << (HGATP_VMID_SHIFT + VMIDLEN))) & ~3
    if ps.space_virt:  # M-mode with MPRV+MPV: its data address space changed
        env.mmu.switch()  # type: ignore[attr-defined]


def _write_henvcfg(env: object, v: int) -> None:
    ps = _hps(env)
    mask = HENVCFG_WRITABLE
    if not ps.sstc_enabled:
        mask &= ~MENVCFG_STCE  # read-only zero while menvcfg.STCE is clear
    old = ps.hyp.henvcfg
    ps.hyp.henvcfg = v & mask | legal_write(old, v, "ssnpm" in ps.pm_extensions)
    if (old ^ ps.hyp.henvcfg) & ENVCFG_FLAG_BITS:
        ps.on_flags_changed()  # VS-mode's pointer masking, cbo.zero (in the block flags)
    ps.set_vstimecmp(ps.hyp.vstimecmp)  # VSTIP may follow vstimecmp from now on


def _write_htimedelta(env: object, v: int) -> None:
    ps = _hps(env)
    ps.hyp.htimedelta = v
    ps.set_vstimecmp(ps.hyp.vstimecmp)  # the guest's time moved: a new deadline


def _check_vstimecmp(ps) -> None:
    if ps.priv < PRV_M and not (ps.menvcfg & MENVCFG_STCE and ps.mcounteren >> 1 & 1):
        raise RiscvTrap(ILLEGAL_INSN, 0)


def _read_vstimecmp(env: object) -> int:
    ps = _hps(env)
    _check_vstimecmp(ps)
    return ps.hyp.vstimecmp


def _write_vstimecmp(env: object, v: int) -> None:
    ps = _hps(env)
    _check_vstimecmp(ps)
    ps.set_vstimecmp(v)  # (which kicks the loops and re-checks interrupts)


def _guest_files_mask(hyp) -> int:
    """hgeie/hgeip bits 1..GEILEN (bit 0 is read-only zero)."""
    return (1 << (hyp.geilen + 1)) - 2


def _write_hgeie(env: object, v: int) -> None:
    ps = _hps(env)
    ps.hyp.hgeie = v & _guest_files_mask(ps.hyp)
    ps.recheck_interrupts()


def _read_hgeip(env: object) -> int:
    hyp = _hps(env).hyp
    return hyp.hgeip & _guest_files_mask(hyp)


# -- VS level (as HS sees them; V=1 code reaches them through the S numbers) ---------------

def _read_vsstatus(env: object) -> int:
    vs = _hps(env).hyp.vsstatus
    if (vs & MSTATUS_FS) == MSTATUS_FS or (vs & MSTATUS_VS) == MSTATUS_VS:
        vs |= MSTATUS_SD
    return vs


def _write_vsstatus(env: object, v: int) -> None:
    ps = _hps(env)
    hyp = ps.hyp
    old = hyp.vsstatus
    mask = VSSTATUS_WRITABLE if ps.vector else VSSTATUS_WRITABLE & ~MSTATUS_VS
    hyp.vsstatus = old & ~mask | v & mask
    if (old ^ hyp.vsstatus) & MSTATUS_MXR:
        env.tlb_flush_all()  # type: ignore[attr-defined]
    if (old ^ hyp.vsstatus) & (MSTATUS_SUM | MSTATUS_FS | MSTATUS_MXR):  # MXR: masking
        ps.on_flags_changed()
    if hyp.vsstatus & ~old & MSTATUS_SIE:
        ps.recheck_interrupts()


def _read_vsip(env: object) -> int:
    ps = _hps(env)
    return (ps.mip() & ps.hyp.hideleg & VS_INTERRUPTS) >> 1


def _write_vsip(env: object, v: int) -> None:
    ps = _hps(env)
    mask = ps.hyp.hideleg & MIP_VSSIP
    ps.hyp.hvip = ps.hyp.hvip & ~mask | (v << 1) & mask
    ps.recheck_interrupts()


def _read_vsie(env: object) -> int:
    ps = _hps(env)
    return (ps.mie & ps.hyp.hideleg & VS_INTERRUPTS) >> 1


def _write_vsie(env: object, v: int) -> None:
    ps = _hps(env)
    mask = ps.hyp.hideleg & VS_INTERRUPTS
    ps.mie = ps.mie & ~mask | (v << 1) & mask
    ps.recheck_interrupts()


def _write_vstvec(env: object, v: int) -> None:
    _hps(env).hyp.vstvec = v & ~2


def _write_vsepc(env: object, v: int) -> None:
    _hps(env).hyp.vsepc = v & ~1


def _read_vsatp(env: object) -> int:
    return _hps(env).hyp.vsatp


def _write_vsatp(env: object, v: int) -> None:
    ps = _hps(env)
    mode = v >> 60
    if mode != SATP_MODE_BARE and mode not in ps.satp_modes:
        return
    ps.hyp.vsatp = v
    if ps.space_virt:  # the guest's own satp write (or M's with MPRV+MPV)
        env.mmu.switch()  # type: ignore[attr-defined]
        ps.on_flags_changed()


def _hstateen(n: int) -> None:
    """hstateenN (Smstateen with H): its bits exist where mstateenN's are set; HS needs
    mstateenN.SE0 (KVM swaps hstateen0 on every guest entry when the host has it)."""
    name = f"hstateen{n}"

    def check(env: object):  # -> PrivState
        ps = _hps(env)
        if not ps.smstateen or (ps.priv < PRV_M and not ps.mstateen[n] & STATEEN_SE0):
            raise RiscvTrap(ILLEGAL_INSN, 0)
        return ps

    def read(env: object) -> int:
        return getattr(check(env).hyp, name)

    def write(env: object, v: int) -> None:
        ps = check(env)
        setattr(ps.hyp, name, v & MSTATEEN_WRITABLE[n] & ps.mstateen[n])

    _define(0x60C + n, name, read, write)


def _check_stateen_virt(ps, number: int, insn: int) -> None:
    """V=1 and Smstateen: senvcfg needs hstateen0.ENVCFG, sstateenN hstateenN.SE0 (where
    M allows them at all; otherwise the CSR itself raises the illegal instruction)."""
    n, bit = (0, STATEEN0_ENVCFG) if number == 0x10A else (number - 0x10C, STATEEN_SE0)
    if ps.mstateen[n] & bit and not getattr(ps.hyp, f"hstateen{n}") & bit:
        raise RiscvTrap(VIRTUAL_INSN, insn)


# -- V=1 ----------------------------------------------------------------------------------

def csr_access_virt(env: object, number: int, action: int, value: int, insn: int) -> int:
    """``csr.csr_access`` for code running with V=1."""
    level = (number >> 8) & 3
    if level in (1, 2):
        known = number in csr.CSR_TABLE
        if (level == 2 or env.state.slots[PRIV] == PRV_U  # type: ignore[attr-defined]
                or (number not in VS_ALIASES and number not in VS_SHARED)):
            raise RiscvTrap(VIRTUAL_INSN if known else ILLEGAL_INSN, insn)
        ps = env.ps  # type: ignore[attr-defined]
        if ps.smstateen and number in VS_SHARED and number != 0x106:
            _check_stateen_virt(ps, number, insn)
        number = VS_ALIASES.get(number, number)
        hyp = ps.hyp
        if number == 0x280 and hyp.hstatus & HSTATUS_VTVM:
            raise RiscvTrap(VIRTUAL_INSN, insn)
        # the guest's stimecmp is vstimecmp only where HS lets it (STCE and TM)
        if number == 0x24D and (not hyp.henvcfg & MENVCFG_STCE or not hyp.hcounteren & 2):
            raise RiscvTrap(VIRTUAL_INSN, insn)
    return csr.csr_access(env, number, action, value, insn)


CSR_ACCESS_VIRT = Helper("csr_access_virt", csr_access_virt, needs_env=True)

_registered = False


def register_hyp_csrs() -> None:
    """Add H's CSRs to the table (idempotent; after register_system_csrs)."""
    global _registered
    if _registered:
        return
    _registered = True
    m_field = csr.CSR_TABLE[0x302]
    register_csr(0x302, CsrDef(m_field.name, m_field.read, _write_medeleg))
    register_csr(0x303, CsrDef("mideleg", _read_mideleg, _write_mideleg, True))
    _hyp_field("mtinst", 0x34A)
    _hyp_field("mtval2", 0x34B)
    _define(0x600, "hstatus", lambda env: _hps(env).hyp.hstatus, _write_hstatus)
    _hyp_field("hedeleg", 0x602, HEDELEG_WRITABLE)
    _define(0x603, "hideleg", lambda env: _hps(env).hyp.hideleg, _write_hideleg, True)
    _define(0x604, "hie", _read_hie, _write_hie, True)
    _define(0x605, "htimedelta", lambda env: _hps(env).hyp.htimedelta, _write_htimedelta,
            True)
    _hyp_field("hcounteren", 0x606, HCOUNTEREN_MASK)
    _define(0x607, "hgeie", lambda env: _hps(env).hyp.hgeie, _write_hgeie, True)
    _define(0x60A, "henvcfg", lambda env: _hps(env).hyp.henvcfg, _write_henvcfg, True)
    _hyp_field("htval", 0x643)
    _define(0x644, "hip", _read_hip, _write_hip, True)
    _define(0x645, "hvip", lambda env: _hps(env).hyp.hvip, _write_hvip, True)
    _hyp_field("htinst", 0x64A)
    _define(0x680, "hgatp", lambda env: _hgatp_ps(env).hyp.hgatp, _write_hgatp)
    _define(0xE12, "hgeip", _read_hgeip)
    _define(0x200, "vsstatus", _read_vsstatus, _write_vsstatus, True)
    _define(0x204, "vsie", _read_vsie, _write_vsie, True)
    _define(0x205, "vstvec", lambda env: _hps(env).hyp.vstvec, _write_vstvec)
    _hyp_field("vsscratch", 0x240)
    _define(0x241, "vsepc", lambda env: _hps(env).hyp.vsepc, _write_vsepc)
    _hyp_field("vscause", 0x242)
    _hyp_field("vstval", 0x243)
    _define(0x244, "vsip", _read_vsip, _write_vsip, True)
    _define(0x280, "vsatp", _read_vsatp, _write_vsatp, True)
    _define(0x24D, "vstimecmp", _read_vstimecmp, _write_vstimecmp, True)
    for n in range(4):
        _hstateen(n)


__all__ = ["CSR_ACCESS_VIRT", "VS_ALIASES", "csr_access_virt", "register_hyp_csrs"]
