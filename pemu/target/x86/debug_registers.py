"""The x86 debug registers: DR0-DR3 hold four addresses, DR7 says what each one is.

Each slot is an execute breakpoint (it fires before the instruction runs) or a data
watchpoint on writes or on any access, of 1, 2, 4 or 8 aligned bytes; x86 has no
read-only watchpoint.  DR6 reports which slots fired (bit n for slot n).
"""

from __future__ import annotations

SLOTS = 4
EXECUTE, WRITE, ACCESS = "execute", "write", "access"
_RW = {EXECUTE: 0b00, WRITE: 0b01, ACCESS: 0b11}  # DR7 R/Wn
_LEN = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}  # DR7 LENn
WATCH_LENGTHS = tuple(_LEN)
DR7_RESERVED_ONE = 1 << 10  # reads as 1


def can_watch(addr: int, length: int) -> bool:
    return length in _LEN and addr % length == 0


def debug_registers(slots: list[tuple[str, int, int]]) -> list[int]:
    """DR0-DR7 (DR4/DR5/DR6 as 0) for up to ``SLOTS`` (use, address, length) slots,
    ``use`` one of EXECUTE/WRITE/ACCESS; all zero when there is none."""
    if len(slots) > SLOTS:
        raise ValueError(f"x86 has {SLOTS} debug address registers, not {len(slots)}")
    regs = [0] * 8
    dr7 = 0
    for n, (use, addr, length) in enumerate(slots):
        regs[n] = addr
        dr7 |= 1 << (2 * n)  # Ln: local enable
        dr7 |= _RW[use] << (16 + 4 * n)
        if use != EXECUTE:
            dr7 |= _LEN[length] << (18 + 4 * n)
    regs[7] = dr7 | DR7_RESERVED_ONE if dr7 else 0
    return regs
