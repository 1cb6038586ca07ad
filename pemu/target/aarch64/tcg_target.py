"""AArch64 as a TCG target (EL0, Linux user mode): what accel/tcg needs, in one
``TCGTarget``."""

from __future__ import annotations

from pemu.accel.tcg.target import TCGTarget
from pemu.target.aarch64 import cpu_state
from pemu.target.aarch64.disas import disassemble
from pemu.target.aarch64.exceptions import EC_IABT_CUR, ESR_IL, EXCEPTION, Aarch64Trap
from pemu.target.aarch64.translate import translate_block


def _el_index(flags: int) -> int:
    """System mode: data and fetch MMU index = the block's exception level."""
    return flags & cpu_state.FLAG_EL_MASK


def _fetch_fault(paddr: int) -> Aarch64Trap:
    """Code at a physical address with no RAM: an instruction abort (external)."""
    return Aarch64Trap(EXCEPTION, EC_IABT_CUR << 26 | ESR_IL | 0x10, paddr)


AARCH64 = TCGTarget(
    name="aarch64",
    layout=cpu_state.LAYOUT,
    translate=translate_block,
    new_state=cpu_state.Aarch64CPUState,
    disassemble=disassemble,
    dump_registers=cpu_state.dump_registers,
    mmu_index=_el_index,
    fetch_index=_el_index,
    fetch_fault=_fetch_fault,
)

__all__ = ["AARCH64"]
