"""Multiport virtio-serial's control messages (virtio spec 5.3.6.2): event numbers
and the message layout, shared by the device (serial.py) and its migration state
(serial_state.py)."""

from __future__ import annotations

import struct

# control events (spec 5.3.6.2)
DEVICE_READY = 0
PORT_ADD = 1
PORT_REMOVE = 2
PORT_READY = 3
CONSOLE_PORT = 4
RESIZE = 5
PORT_OPEN = 6
PORT_NAME = 7

CONTROL_RX = 2
CONTROL_TX = 3
CONTROL = struct.Struct("<IHH")
NO_PORT = 0xFFFFFFFF  # the id of DEVICE_READY
