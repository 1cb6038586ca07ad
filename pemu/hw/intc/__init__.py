"""Interrupt controllers of the RISC-V virt board."""

from pemu.hw.intc.aclint import ACLINT
from pemu.hw.intc.plic import PLIC

__all__ = ["ACLINT", "PLIC"]
