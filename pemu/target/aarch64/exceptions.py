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
