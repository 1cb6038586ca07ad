"""AArch64 synchronous exceptions raised by translated code (EL0 view).

``Aarch64Trap.kind`` is the exception class the Linux user-mode loop (and later the
EL1 entry of system mode) dispatches on; ``syndrome`` is the instruction's immediate
(SVC/BRK) or its raw bits (undefined instructions).
"""

from __future__ import annotations

SVC = "svc"
UNDEFINED = "undefined"
BRK = "brk"
ALIGNMENT = "alignment"


class Aarch64Trap(Exception):
    def __init__(self, kind: str, syndrome: int = 0, addr: int = 0) -> None:
        super().__init__(f"{kind} (syndrome 0x{syndrome:x}, addr 0x{addr:x})")
        self.kind = kind
        self.syndrome = syndrome
        self.addr = addr


# -- system mode: exceptions taken to EL1 -------------------------------------------------
EXCEPTION = "exception"  # syndrome: the whole ESR_EL1 value, addr: FAR_EL1
HVC = "hvc"
SMC = "smc"
ESR_IL = 1 << 25
EC_UNKNOWN, EC_SVC64, EC_HVC64, EC_SMC64 = 0x00, 0x15, 0x16, 0x17
EC_IABT_LOW, EC_IABT_CUR, EC_PC_ALIGN, EC_DABT_LOW, EC_DABT_CUR, EC_SP_ALIGN = \
    0x20, 0x21, 0x22, 0x24, 0x25, 0x26
EC_BRK64 = 0x3C
_ACCESS_EXEC, _ACCESS_WRITE = 2, 1  # softmmu.ACCESS_*


def abort_trap(el: int, access: int, vaddr: int, fsc: int) -> Aarch64Trap:
    """An instruction or data abort taken from ``el`` with fault status ``fsc``."""
    if access == _ACCESS_EXEC:
        ec = EC_IABT_CUR if el else EC_IABT_LOW
        iss = fsc
    else:
        ec = EC_DABT_CUR if el else EC_DABT_LOW
        iss = fsc | (1 << 6 if access == _ACCESS_WRITE else 0)
    return Aarch64Trap(EXCEPTION, ec << 26 | ESR_IL | iss, vaddr)
