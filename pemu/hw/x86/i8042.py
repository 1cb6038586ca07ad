"""The part of the i8042 keyboard controller a microvm needs: the CPU reset line.

Linux reboots (reboot=k, the default) by writing command 0xFE, "pulse output line 0",
to the command port 0x64, which on a PC pulls the CPU reset line.  The board turns that
into a machine reset request.  With no keyboard behind it, the status register reports
empty buffers so probing drivers give up quickly.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.core import Device

DATA_PORT = 0x60
COMMAND_PORT = 0x64
CMD_PULSE_RESET = 0xFE


class I8042(Device):
    """Map ``data`` at 0x60 and ``command`` at 0x64 (one byte each) in the I/O space."""

    type_name = "i8042"

    def __init__(self, on_reset: Callable[[], None]) -> None:
        super().__init__("i8042")
        self.on_reset = on_reset
        self.data = _Port(self, DATA_PORT)
        self.command = _Port(self, COMMAND_PORT)

    def read(self, port: int) -> int:
        return 0  # no byte waiting, input buffer empty, no keyboard

    def write(self, port: int, value: int) -> None:
        if port == COMMAND_PORT and value & 0xFF == CMD_PULSE_RESET:
            self.on_reset()


class _Port:
    def __init__(self, owner: I8042, port: int) -> None:
        self.owner, self.port = owner, port

    def mmio_read(self, offset: int, size: int) -> int:
        return self.owner.read(self.port)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.owner.write(self.port, value)
