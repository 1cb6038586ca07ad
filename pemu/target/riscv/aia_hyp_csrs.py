"""The AIA CSRs of a hart with both H and Ssaia (AIA spec 1.0, chapter 6).

  vsiselect/vsireg   indirect access to the guest interrupt file that hstatus.VGEIN
                     selects (the IMSIC's eidelivery, eithreshold, eip, eie); V=1 code
                     reaches them as siselect/sireg (csr_hyp.VS_ALIASES)
  vstopei            that file's top identity; a write claims it (V=1: stopei)
  vstopi             the top VS-level interrupt (V=1: stopi)
  hvictl             stored, used by vstopi (KVM writes it on every guest entry)
  hviprio1/2         the VS priorities of SSI, STI and LCOFI (hviprio1 only: the
                     local interrupts 16..23 that hviprio2 covers do not exist here)
  hvien              read-only zero (no VS interrupts beyond the standard ones)

hgeie/hgeip and hstatus.VGEIN are H's own (csr_hyp.py); the files' output lines reach
hgeip through hyp.guest_file_sink.  What a VS guest may not reach through vsireg
(the major interrupt priorities, a VGEIN that names no file) raises an illegal
instruction from HS and a virtual instruction from V=1, where the hypervisor
emulates it (KVM does, for the priorities); so does vstopei without a file.
"""

from __future__ import annotations

from pemu.target.riscv.aia_csrs import (
    DEFAULT_IPRIO,
    ISELECT_IPRIO0,
    ISELECT_IPRIO15,
    ISELECT_MASK,
    TOPI_IID_SHIFT,
    AiaHartState,
    ImsicFile,
)
from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.hyp import (
    IRQ_VS_EXT,
    IRQ_VS_SOFT,
    IRQ_VS_TIMER,
    VIRTUAL_INSN,
)

HVICTL_VTI = 1 << 30
HVICTL_IID_SHIFT = TOPI_IID_SHIFT
HVICTL_IID = 0xFFF << HVICTL_IID_SHIFT
HVICTL_IPRIO = 0xFF
HVICTL_WRITABLE = HVICTL_VTI | HVICTL_IID | 1 << 9 | 1 << 8 | HVICTL_IPRIO  # + DPR, IPRIOM
# hviprio1's byte per interrupt: SSI (1) at bits 15:8, STI (5) 31:24, LCOFI (13) 47:40
HVIPRIO1_WRITABLE = 0xFF << 8 | 0xFF << 24 | 0xFF << 40
IRQ_S_EXT_ID = 9  # what the VS guest sees VSEI as (its own SEI)
# VS interrupts in the guest's numbering, in the default priority order
_VS_ORDER = ((IRQ_VS_EXT, 9), (IRQ_VS_SOFT, 1), (IRQ_VS_TIMER, 5))


def _refuse(env: object) -> RiscvTrap:
    """What an access the guest may not make raises: V=1 traps to the hypervisor."""
    virt = env.ps.virt  # type: ignore[attr-defined]
    return RiscvTrap(VIRTUAL_INSN if virt else ILLEGAL_INSN, 0)


def _aia_hyp(env: object):  # -> PrivState of a hart with H and an AIA
    aia: AiaHartState | None = getattr(env, "aia", None)
    ps = env.ps  # type: ignore[attr-defined]
    if aia is None or not ps.has_h:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    return ps


def _guest_file(env: object) -> ImsicFile | None:
    """The guest file hstatus.VGEIN selects (None: VGEIN names none)."""
    ps = _aia_hyp(env)
    vgein = ps.hyp.vgein
    files = env.aia.guest_files  # type: ignore[attr-defined]
    return files[vgein - 1] if 0 < vgein <= len(files) else None


def _write_vsiselect(env: object, v: int) -> None:
    _aia_hyp(env).hyp.vsiselect = v & ISELECT_MASK


def _vsireg_file(env: object) -> tuple[ImsicFile, int]:
    select = _aia_hyp(env).hyp.vsiselect
    if ISELECT_IPRIO0 <= select <= ISELECT_IPRIO15:
        raise _refuse(env)  # the hypervisor emulates the guest's priorities
    f = _guest_file(env)
    if f is None:
        raise _refuse(env)
    return f, select


def _read_vsireg(env: object) -> int:
    f, select = _vsireg_file(env)
    value = f.read_indirect(select)
    if value is None:
        raise _refuse(env)
    return value


def _write_vsireg(env: object, v: int) -> None:
    f, select = _vsireg_file(env)
    if not f.write_indirect(select, v):
        raise _refuse(env)


def _vstopei_file(env: object) -> ImsicFile:
    f = _guest_file(env)
    if f is None:
        raise _refuse(env)  # VGEIN names no file (QEMU 7.2 agrees)
    return f


def _read_vstopei(env: object) -> int:
    return _vstopei_file(env).topei()


def _write_vstopei(env: object, v: int) -> None:
    _vstopei_file(env).claim()


def _read_vstopi(env: object) -> int:
    """The VS guest's stopi: its highest-priority pending and enabled interrupt in its
    own numbering; with hvictl.VTI, the one hvictl names when nothing else is."""
    ps = _aia_hyp(env)
    hyp = ps.hyp
    pending = ps.mip() & ps.mie & hyp.hideleg
    for irq, guest_irq in _VS_ORDER:
        if pending >> irq & 1:
            return guest_irq << TOPI_IID_SHIFT | DEFAULT_IPRIO
    ctl = hyp.hvictl
    iid = (ctl & HVICTL_IID) >> HVICTL_IID_SHIFT
    if ctl & HVICTL_VTI and (iid != IRQ_S_EXT_ID or ctl & HVICTL_IPRIO):
        return iid << TOPI_IID_SHIFT | (ctl & HVICTL_IPRIO or DEFAULT_IPRIO)
    return 0


def _field(name: str, mask: int):  # -> (read, write) of a HypState register
    def read(env: object) -> int:
        return getattr(_aia_hyp(env).hyp, name)

    def write(env: object, v: int) -> None:
        ps = _aia_hyp(env)
        setattr(ps.hyp, name, v & mask)
        ps.recheck_interrupts()

    return read, write


def _read_hvien(env: object) -> int:
    _aia_hyp(env)
    return 0


def _write_hvien(env: object, v: int) -> None:
    _aia_hyp(env)


_registered = False


def register_aia_hyp_csrs() -> None:
    """Add the H AIA CSRs to the table (idempotent; illegal unless the hart has H and
    the board gave it an AIA)."""
    global _registered
    if _registered:
        return
    _registered = True
    register_csr(0x250, CsrDef("vsiselect", *_field("vsiselect", ISELECT_MASK)))
    register_csr(0x251, CsrDef("vsireg", _read_vsireg, _write_vsireg, ends_block=True))
    register_csr(0x25C, CsrDef("vstopei", _read_vstopei, _write_vstopei, ends_block=True))
    register_csr(0xEB0, CsrDef("vstopi", _read_vstopi))
    register_csr(0x608, CsrDef("hvien", _read_hvien, _write_hvien))
    register_csr(0x609, CsrDef("hvictl", *_field("hvictl", HVICTL_WRITABLE)))
    register_csr(0x646, CsrDef("hviprio1", *_field("hviprio1", HVIPRIO1_WRITABLE)))
    register_csr(0x647, CsrDef("hviprio2", *_field("hviprio2", 0)))


__all__ = ["register_aia_hyp_csrs"]
