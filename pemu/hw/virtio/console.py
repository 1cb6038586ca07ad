"""virtio-console with a single port (spec 5.3 without MULTIPORT): Linux's hvc0.

``-device virtconsole,chardev=ID`` with no virtio-serial bus on the command line gets
this device (pemu's behaviour before virtio-serial, kept so such command lines still
give an hvc0): the multiport model of serial.py restricted to port 0 on queues 0
and 1.  Its one piece of state, host input taken from the chardev that no guest
buffer had room for yet, is migrated.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.chardev.base import Chardev
from pemu.hw.core import VMState, VMStateField
from pemu.hw.virtio.serial import VirtioSerial
from pemu.hw.virtio.serial_state import RX_CHUNK


class VirtioConsole(VirtioSerial):
    """``VirtioConsole(chardev, cols=80, rows=25)``."""

    offers_multiport = False
    migratable = True  # one port, always open: its pending input is all its state
    # The queues and features are the transport's state (virtio-mmio).
    vmstate = VMState("virtio-console", 1, (
        VMStateField("pending_input", "bytes", max=RX_CHUNK),))

    def __init__(self, chardev: Chardev, cols: int = 80, rows: int = 25,
                 id: str | None = None) -> None:
        super().__init__(1, cols, rows, id)
        self.chardev = chardev
        self.add_port(chardev, 0, console=True)

    # Its one field needs none of the multiport device's checks and re-derivations.
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        pass

    def vmstate_post_load(self) -> None:
        pass

    @property
    def pending_input(self) -> bytes:
        return bytes(self.ports[0].pending)

    @pending_input.setter
    def pending_input(self, data: bytes) -> None:
        self.ports[0].pending = bytearray(data)
