"""OP-V floating-point instructions (RVV 1.0 chapter 13) through pemu/fpu.

Not all of chapter 13 is here yet: the instructions listed in ``OPS`` under category
"f" are; the others decode as illegal instructions.
"""

from __future__ import annotations

from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap


def fp_check(env: object) -> None:
    """System mode: FP vector instructions need mstatus.FS on, and they may write
    fflags or an f register: FS becomes Dirty."""
    ps = getattr(env, "ps", None)
    if ps is None:
        return
    if ps.fp_off():
        raise RiscvTrap(ILLEGAL_INSN, 0)
    ps.mark_fs_dirty()


__all__ = ["fp_check"]
