"""RISC-V pointer masking (Pointer Masking 1.0: Smmpm, Smnpm, Ssnpm; Supm/Sspm).

With pointer masking on, every explicit data access (loads, stores, atomics, CBOs,
vector accesses, hlv/hsv) ignores the top PMLEN bits of its effective address: they
are replaced by the sign extension of bit 63-PMLEN for a virtual address (satp, or
vsatp at V=1, not Bare) or by zeros for a physical one (M-mode, Bare).  Instruction
fetch and implicit accesses (page-table walks) are never masked.

Each privilege mode's setting is a 2-bit WARL ``PMM`` field in the register of the
mode above it: mseccfg (M), menvcfg (S/HS), senvcfg (U/VU), henvcfg (VS), plus
hstatus.HUPMM for hlv/hsv executed in U-mode.  ``PMM`` 01 is reserved: a write of it
leaves the field as it was (QEMU does the same).

Translated code learns the setting of the current data mode from the block flags
(``FLAG_PM_*``, a 3-bit "code": the PMM value and whether to sign-extend), so a block
translated without masking carries no extra op; helpers that compute addresses at run
time (the vector unit, hlv/hsv) use ``transform`` with the same code.
"""

from __future__ import annotations

MASK64 = 0xFFFF_FFFF_FFFF_FFFF

# The PMM field: bits 33:32 of menvcfg, senvcfg, henvcfg and mseccfg
PMM_SHIFT = 32
ENVCFG_PMM = 3 << PMM_SHIFT
PMM_RESERVED = 1
HSTATUS_HUPMM_SHIFT = 48
HSTATUS_HUPMM = 3 << HSTATUS_HUPMM_SHIFT
CSR_MSECCFG = 0x747

# PMM value -> the number of masked bits (RV64: XLEN-57 and XLEN-48)
PMLEN = (0, 0, 7, 16)

# The extensions with a PMM field, as QEMU spells them (isa.py also has Sspm and Supm,
# which name what S- and U-mode software may ask its execution environment for)
EXTENSIONS = ("smmpm", "smnpm", "ssnpm")

# A masking "code": PMM (bits 1:0) | CODE_SIGNED; 0 means no masking
CODE_SIGNED = 4
# The code in the RISC-V block flags (beyond bit 6, FLAG_VIRT: see priv.py)
FLAG_PM_SHIFT = 7
FLAG_PM_MASK = 7 << FLAG_PM_SHIFT


def field(reg: int) -> int:
    """The PMM field of a register value."""
    return (reg >> PMM_SHIFT) & 3


def legal_write(old: int, new: int, implemented: bool, shift: int = PMM_SHIFT) -> int:
    """The PMM bits (in place at ``shift``) a write of ``new`` leaves in a register
    that held ``old``: read-only zero without the extension, the old value for the
    reserved encoding (WARL)."""
    if not implemented:
        return 0
    value = (new >> shift) & 3
    if value == PMM_RESERVED:
        value = (old >> shift) & 3
    return value << shift


def code(pmm: int, virtual: bool) -> int:
    """The masking code for a PMM value and the kind of address (virtual: sign-extend)."""
    if not pmm:
        return 0
    return pmm | (CODE_SIGNED if virtual else 0)


def pmlen(pm_code: int) -> int:
    return PMLEN[pm_code & 3]


def code_from_flags(flags: int) -> int:
    return (flags & FLAG_PM_MASK) >> FLAG_PM_SHIFT


def transform(addr: int, pm_code: int) -> int:
    """The effective address ``addr`` after the ignore transformation of ``pm_code``."""
    n = PMLEN[pm_code & 3]
    if not n:
        return addr & MASK64
    low = addr & (MASK64 >> n)
    if pm_code & CODE_SIGNED and low >> (63 - n) & 1:
        return low | (MASK64 << (64 - n)) & MASK64
    return low


__all__ = ["CODE_SIGNED", "CSR_MSECCFG", "ENVCFG_PMM", "EXTENSIONS", "FLAG_PM_MASK",
           "FLAG_PM_SHIFT", "HSTATUS_HUPMM", "HSTATUS_HUPMM_SHIFT", "code", "code_from_flags",
           "field", "legal_write", "pmlen", "transform"]
