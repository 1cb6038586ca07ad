"""RISC-V 64 as a TCG target: what accel/tcg needs, in one ``TCGTarget``.

``RISCV64`` serves Linux user mode and system mode alike; system mode also gets its
privileged instructions (``insn_priv.py``) registered when a hart is built
(target/riscv/hart.py).
"""

from __future__ import annotations

import dataclasses
import functools

from pemu.accel.tcg.target import TCGTarget
from pemu.target.riscv import cpu_state
from pemu.target.riscv.context import FLAG_PRIV_MASK
from pemu.target.riscv.disas import disassemble
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.mmu import PRV_U
from pemu.target.riscv.mmu_regime import fetch_fault, fetch_index, mmu_index
from pemu.target.riscv.translate import translate_block


def _user_code(flags: int) -> bool:
    """U-mode (and VU-mode) blocks are position-independent (TCGTarget.relocatable):
    a system's user programs run at other addresses in every process (ASLR), the
    kernel at the same ones every boot (no KASLR in the guests here; its code stays
    as fast as constants make it)."""
    return flags & FLAG_PRIV_MASK == PRV_U

RISCV64 = TCGTarget(
    name="riscv64",
    layout=cpu_state.LAYOUT,
    translate=translate_block,
    new_state=cpu_state.RiscvCPUState,
    disassemble=disassemble,
    dump_registers=cpu_state.dump_registers,
    mmu_index=mmu_index,
    fetch_index=fetch_index,
    fetch_fault=fetch_fault,
    # The frontend reads x0 as a constant and computes no flags, and the builder
    # simplifies li and mv as they are made (ir.simplify): on a boot's 39 k blocks the
    # optimizer then saved ~0.5 % of the host code for ~16 % of the translation time
    # (docs/PERFORMANCE.md, "Translation cost, round two")
    optimize=False,
    relocatable=_user_code,
    pause_ends_turn=True,
)



def riscv64_target(isa: RiscvIsa) -> TCGTarget:
    """RISCV64 for a hart with the extensions ``isa`` (``-cpu``): the same target with
    a frontend that decodes exactly those."""
    if isa == DEFAULT_ISA:
        return RISCV64
    return dataclasses.replace(RISCV64, translate=functools.partial(translate_block, isa=isa),
                               config=_config(isa),
                               new_state=functools.partial(cpu_state.RiscvCPUState,
                                                           isa.vlenb, isa.elen))


def _config(isa: RiscvIsa) -> str:
    """What distinguishes translations: the extensions, and the vector unit's sizes."""
    if isa.vlenb:
        return f"{isa.isa_string},vlen={isa.vlen},elen={isa.elen}"
    return isa.isa_string


__all__ = ["RISCV64", "riscv64_target"]
