"""The hart's AIA CSRs (Smaia/Ssaia, AIA spec 1.0 chapters 2, 5 and 6).

A hart has them only when the board gives it an ``AiaHartState`` as ``hart.aia`` (virt
with ``aia=aplic-imsic``); on other harts every one of these CSRs is an illegal
instruction, which is how firmware (OpenSBI probes mtopi) finds out there is no AIA.

  miselect/mireg, siselect/sireg   indirect access to the level's IMSIC file
                                   (eidelivery 0x70, eithreshold 0x72, eip 0x80..,
                                   eie 0xc0..); iprio 0x30..0x3f read zero (all major
                                   interrupts keep the default priority order)
  mtopei/stopei                    the file's top identity; a write claims it
  mtopi/stopi                      the highest-priority pending and enabled major
                                   interrupt of the level (IID in bits 27:16)
  mvien/mvip                       no virtual interrupts to S-mode: mvien reads zero,
                                   mvip is the alias of mip's S bits the spec allows

The IMSIC files themselves are device models (pemu/hw/intc/imsic.py); their output
lines drive MEIP/SEIP through the hart's ordinary interrupt lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pemu.target.riscv.csr import CSR_TABLE, CsrDef, register_csr
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.priv import IRQ_PRIORITY, MIP_SEIP, MIP_SSIP, MIP_STIP


class ImsicFile(Protocol):
    """What the hart calls on an interrupt file (the model is pemu/hw/intc/imsic.py, a
    device: the target names only this)."""

    def topei(self) -> int: ...
    def claim(self) -> None: ...
    def read_indirect(self, select: int, xlen: int = 64) -> int | None: ...
    def write_indirect(self, select: int, value: int, xlen: int = 64) -> bool: ...

ISELECT_IPRIO0, ISELECT_IPRIO15 = 0x30, 0x3F
ISELECT_MASK = 0xFFF
TOPI_IID_SHIFT = 16
DEFAULT_IPRIO = 1  # every iprio is zero: topi reports the lowest non-zero priority
MVIP_ALIASED = MIP_SSIP | MIP_STIP | MIP_SEIP


@dataclass
class AiaHartState:
    """One hart's AIA: its interrupt files (None where the board has no IMSIC) and
    the two select registers."""

    m_file: ImsicFile | None
    s_file: ImsicFile | None
    miselect: int = 0
    siselect: int = 0
    # the guest interrupt files 1..GEILEN (H only; aia_hyp_csrs.py)
    guest_files: list[ImsicFile] = field(default_factory=list)

    def reset(self) -> None:
        self.miselect = self.siselect = 0


def _illegal() -> RiscvTrap:
    return RiscvTrap(ILLEGAL_INSN, 0)


def _aia(env: object) -> AiaHartState:
    aia = getattr(env, "aia", None)
    if aia is None:
        raise _illegal()
    return aia


def _file(env: object, machine: bool) -> ImsicFile:
    aia = _aia(env)
    f = aia.m_file if machine else aia.s_file
    if f is None:
        raise _illegal()
    return f


# -- indirect access ---------------------------------------------------------------------

def _select_csrs(number: int, name: str, machine: bool) -> None:
    attr = "miselect" if machine else "siselect"

    def read(env: object) -> int:
        return getattr(_aia(env), attr)

    def write(env: object, v: int) -> None:
        setattr(_aia(env), attr, v & ISELECT_MASK)

    register_csr(number, CsrDef(name, read, write))


def _ireg_csrs(number: int, name: str, machine: bool) -> None:
    attr = "miselect" if machine else "siselect"

    def read(env: object) -> int:
        select = getattr(_aia(env), attr)
        if ISELECT_IPRIO0 <= select <= ISELECT_IPRIO15:
            if select & 1:
                raise _illegal()  # RV64: odd iprio registers do not exist
            return 0
        value = _file(env, machine).read_indirect(select)
        if value is None:
            raise _illegal()
        return value

    def write(env: object, v: int) -> None:
        select = getattr(_aia(env), attr)
        if ISELECT_IPRIO0 <= select <= ISELECT_IPRIO15:
            if select & 1:
                raise _illegal()
            return  # read-only zero priorities
        if not _file(env, machine).write_indirect(select, v):
            raise _illegal()

    # ends_block: a write can raise xEIP; the vCPU loop looks at it before running on
    register_csr(number, CsrDef(name, read, write, ends_block=True))


def _topei_csrs(number: int, name: str, machine: bool) -> None:
    def read(env: object) -> int:
        return _file(env, machine).topei()

    def write(env: object, v: int) -> None:
        _file(env, machine).claim()

    register_csr(number, CsrDef(name, read, write, ends_block=True))


# -- top interrupt -----------------------------------------------------------------------

def _top_major(pending: int) -> int:
    for irq in IRQ_PRIORITY:
        if pending >> irq & 1:
            return irq << TOPI_IID_SHIFT | DEFAULT_IPRIO
    return 0


def _read_mtopi(env: object) -> int:
    _aia(env)
    ps = env.ps  # type: ignore[attr-defined]
    return _top_major(ps.mip() & ps.mie & ~ps.mideleg)


def _read_stopi(env: object) -> int:
    _aia(env)
    ps = env.ps  # type: ignore[attr-defined]
    return _top_major(ps.mip() & ps.mie & ps.mideleg)


def _read_mvien(env: object) -> int:
    _aia(env)
    return 0


def _write_mvien(env: object, v: int) -> None:
    _aia(env)


def _mip_software_view(env: object) -> int:
    """mip with SEIP as the software-writable bit alone (what mvip aliases, and what
    a write back must start from: the controller's line must not be latched)."""
    mip = CSR_TABLE[0x344]
    read = mip.read_for_update or mip.read
    return read(env)


def _read_mvip(env: object) -> int:
    _aia(env)
    return _mip_software_view(env) & MVIP_ALIASED


def _write_mvip(env: object, v: int) -> None:
    _aia(env)
    old = _mip_software_view(env)
    CSR_TABLE[0x344].write(env, (old & ~MVIP_ALIASED) | (v & MVIP_ALIASED))  # type: ignore[misc]


_registered = False


def register_aia_csrs() -> None:
    """Add the AIA CSRs to the table (idempotent; after the system CSRs, whose mip
    mvip aliases)."""
    global _registered
    if _registered:
        return
    _registered = True
    _select_csrs(0x350, "miselect", True)
    _ireg_csrs(0x351, "mireg", True)
    _topei_csrs(0x35C, "mtopei", True)
    register_csr(0xFB0, CsrDef("mtopi", _read_mtopi))
    register_csr(0x308, CsrDef("mvien", _read_mvien, _write_mvien))
    register_csr(0x309, CsrDef("mvip", _read_mvip, _write_mvip, ends_block=True))
    _select_csrs(0x150, "siselect", False)
    _ireg_csrs(0x151, "sireg", False)
    _topei_csrs(0x15C, "stopei", False)
    register_csr(0xDB0, CsrDef("stopi", _read_stopi))


__all__ = ["AiaHartState", "register_aia_csrs"]
