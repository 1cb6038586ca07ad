"""The system registers of a system-mode AArch64 CPU, as a table.

A register is an encoding ``(op0, op1, CRn, CRm, op2)`` mapped to a ``SysReg``: how it
reads and writes and whether EL0 may touch it.  MRS/MSR in system mode call one helper
that looks the encoding up in the CPU's table; an encoding the table lacks is an
undefined instruction (precise, at the MRS/MSR).  Devices add their own registers
(the GICv3 CPU interface, ICC_*_EL1) with ``register_external_sysregs``.

The architectural behaviour of the registers with side effects (translation, timers,
PSTATE) lives with the CPU (system_cpu.py, generic_timer.py); this module only binds
encodings to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pemu.target.aarch64.system_cpu import Aarch64CPU

Encoding = tuple[int, int, int, int, int]  # op0, op1, CRn, CRm, op2
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


@dataclass
class SysReg:
    name: str
    read: Callable[[Aarch64CPU], int] | None = None  # None: write-only
    write: Callable[[Aarch64CPU, int], None] | None = None  # None: read-only
    el0: bool = False  # accessible at EL0 too


class ExternalSysReg(Protocol):
    """A register a device implements (a64dev's GICv3 CPU interface)."""

    def read(self, cpu_index: int) -> int: ...

    def write(self, cpu_index: int, value: int) -> None: ...


def encoding_of(field15: int, op0_high: int = 1) -> Encoding:
    """The encoding an MRS/MSR names with its 15-bit field (o0 op1 CRn CRm op2)."""
    return (2 | field15 >> 14, field15 >> 11 & 7, field15 >> 7 & 15, field15 >> 3 & 15,
            field15 & 7)


def pack(enc: Encoding) -> int:
    op0, op1, crn, crm, op2 = enc
    return op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


def register_external_sysregs(cpu: Aarch64CPU, regs: dict[Encoding, ExternalSysReg]) -> None:
    """Add registers implemented outside the CPU (EL1 only), e.g. ``gic.icc_sysregs()``."""
    index = cpu.index
    for enc, reg in regs.items():
        cpu.sysregs[pack(enc)] = SysReg(
            type(reg).__name__,
            (lambda _cpu, reg=reg: reg.read(index) & MASK64),
            (lambda _cpu, value, reg=reg: reg.write(index, value)))


def stored(name: str, enc: Encoding, reset: int = 0, mask: int = MASK64,
           el0: bool = False, on_write: Callable[[Aarch64CPU], None] | None = None
           ) -> tuple[int, SysReg]:
    """A register that only holds its value (``cpu.regs[name]``)."""
    def write(cpu: Aarch64CPU, value: int) -> None:
        cpu.regs[name] = value & mask
        if on_write is not None:
            on_write(cpu)
    return pack(enc), SysReg(name, lambda cpu: cpu.regs.setdefault(name, reset), write, el0)


def constant(name: str, enc: Encoding, value: int | Callable[[Aarch64CPU], int],
             el0: bool = False) -> tuple[int, SysReg]:
    """Read-only (an ID register, or one computed from the CPU)."""
    read = value if callable(value) else (lambda _cpu: value)
    return pack(enc), SysReg(name, read, None, el0)


def raz_wi(name: str, enc: Encoding, el0: bool = False) -> tuple[int, SysReg]:
    """Reads as zero, ignores writes (the PMU, debug and auxiliary registers)."""
    return pack(enc), SysReg(name, lambda _cpu: 0, lambda _cpu, _v: None, el0)


def special(name: str, enc: Encoding, read: Callable[[Aarch64CPU], int] | None,
            write: Callable[[Aarch64CPU, int], None] | None,
            el0: bool = False) -> tuple[int, SysReg]:
    return pack(enc), SysReg(name, read, write, el0)


def raz_id_space(enc: Encoding) -> bool:
    """The reserved part of the ID register space (op0 3, op1 0, CRn 0, CRm 1-7) reads
    as zero: Linux reads ID registers of features newer than the model."""
    op0, op1, crn, crm, _ = enc
    return op0 == 3 and op1 == 0 and crn == 0 and 1 <= crm <= 7


__all__ = ["Encoding", "ExternalSysReg", "SysReg", "constant", "encoding_of", "pack",
           "raz_id_space", "raz_wi", "register_external_sysregs", "special", "stored"]
