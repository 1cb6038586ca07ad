"""AArch64 as a TCG target (EL0, Linux user mode): what accel/tcg needs, in one
``TCGTarget``."""

from __future__ import annotations

from pemu.accel.tcg.target import TCGTarget
from pemu.target.aarch64 import cpu_state
from pemu.target.aarch64.disas import disassemble
from pemu.target.aarch64.translate import translate_block

AARCH64 = TCGTarget(
    name="aarch64",
    layout=cpu_state.LAYOUT,
    translate=translate_block,
    new_state=cpu_state.Aarch64CPUState,
    disassemble=disassemble,
    dump_registers=cpu_state.dump_registers,
)

__all__ = ["AARCH64"]
