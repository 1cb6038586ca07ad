"""SiFive test finisher (virt: 0x100000): how a guest powers off or resets the board.

A 32-bit write of 0x5555 powers off with exit status 0; 0x3333 is FAIL with the exit
status in the upper 16 bits (OpenSBI and riscv-tests use this); 0x7777 resets.  The
board decides what power-off and reset mean, through the two callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pemu.hw.core import Device

FINISHER_FAIL = 0x3333
FINISHER_PASS = 0x5555
FINISHER_RESET = 0x7777
REGION_SIZE = 0x1000


class SiFiveTest(Device):
    """``SiFiveTest(on_shutdown: Callable[[int], None], on_reset: Callable[[], None])``."""

    type_name = "riscv.sifive.test"

    def __init__(self, on_shutdown: Callable[[int], None], on_reset: Callable[[], None],
                 id: str | None = None) -> None:
        super().__init__(id)
        self.on_shutdown = on_shutdown
        self.on_reset = on_reset

    def mmio_read(self, offset: int, size: int) -> int:
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset != 0:
            return
        status, code = value & 0xFFFF, (value >> 16) & 0xFFFF
        if status == FINISHER_PASS:
            self.on_shutdown(0)
        elif status == FINISHER_FAIL:
            self.on_shutdown(code)
        elif status == FINISHER_RESET:
            self.on_reset()
        else:
            print(f"pemu: sifive_test: unknown command 0x{value:x} ignored", file=sys.stderr)
