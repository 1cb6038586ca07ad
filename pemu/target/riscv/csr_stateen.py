"""Smstateen: mstateen0..3 and sstateen0..3, and the accesses they gate.

pemu has none of the state the spec's low bits guard (Zfinx's fcsr, Zcmt's jvt,
custom state), so the only writable bits are the ones with an effect here:
mstateenN.SE0 (bit 63: S-mode may use sstateenN) and mstateen0.ENVCFG (bit 62: S-mode
may use senvcfg).  The sstateen registers have no implemented bit and read 0.  A hart
without Smstateen (``PrivState.smstateen`` False) has none of these CSRs, and senvcfg is
not gated.
"""

from __future__ import annotations

from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.mmu import PRV_M

STATEEN_SE0 = 1 << 63
STATEEN0_ENVCFG = 1 << 62
MSTATEEN_WRITABLE = (STATEEN_SE0 | STATEEN0_ENVCFG, STATEEN_SE0, STATEEN_SE0, STATEEN_SE0)
CSR_MSTATEEN0 = 0x30C
CSR_SSTATEEN0 = 0x10C


def _ps(env: object):  # -> PrivState, with the Smstateen check
    ps = env.ps  # type: ignore[attr-defined]
    if not ps.smstateen:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    return ps


def _mstateen(n: int) -> None:
    def read(env: object) -> int:
        return _ps(env).mstateen[n]

    def write(env: object, v: int) -> None:
        _ps(env).mstateen[n] = v & MSTATEEN_WRITABLE[n]

    register_csr(CSR_MSTATEEN0 + n, CsrDef(f"mstateen{n}", read, write, False))


def _sstateen(n: int) -> None:
    def check(env: object) -> None:
        ps = _ps(env)
        if ps.priv < PRV_M and not ps.mstateen[n] & STATEEN_SE0:
            raise RiscvTrap(ILLEGAL_INSN, 0)

    def read(env: object) -> int:
        check(env)
        return 0  # no implemented bit

    def write(env: object, v: int) -> None:
        check(env)

    register_csr(CSR_SSTATEEN0 + n, CsrDef(f"sstateen{n}", read, write, False))


def check_senvcfg(ps) -> None:
    """senvcfg below M needs mstateen0.ENVCFG on a hart with Smstateen."""
    if ps.smstateen and ps.priv < PRV_M and not ps.mstateen[0] & STATEEN0_ENVCFG:
        raise RiscvTrap(ILLEGAL_INSN, 0)


def register_stateen_csrs() -> None:
    for n in range(4):
        _mstateen(n)
        _sstateen(n)
