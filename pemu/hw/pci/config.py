"""PCI configuration space: the bytes, which bits the guest may write, and which are
write-one-to-clear (PCI Local Bus 3.0 ch. 6, PCIe 4.0 ch. 7).

A device's config space is one ``ConfigSpace``: the device sets its read-only fields
(IDs, class, BAR type bits, capabilities) directly in ``data`` and declares each
guest-writable bit in ``wmask`` and each W1C status bit in ``w1cmask``; a guest write
then changes exactly those bits, whatever width it uses.
"""

from __future__ import annotations

# -- the common header (type 0 and type 1) ------------------------------------------------
VENDOR_ID = 0x00
DEVICE_ID = 0x02
COMMAND = 0x04
STATUS = 0x06
REVISION_ID = 0x08
CLASS_PROG = 0x09
CLASS_DEVICE = 0x0A
CACHE_LINE_SIZE = 0x0C
LATENCY_TIMER = 0x0D
HEADER_TYPE = 0x0E
BAR0 = 0x10
CAPABILITY_LIST = 0x34
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D
# type 0 only
SUBSYSTEM_VENDOR_ID = 0x2C
SUBSYSTEM_ID = 0x2E
ROM_ADDRESS = 0x30
# type 1 (bridges) only
PRIMARY_BUS = 0x18
SECONDARY_BUS = 0x19
SUBORDINATE_BUS = 0x1A
IO_BASE = 0x1C
IO_LIMIT = 0x1D
SECONDARY_STATUS = 0x1E
MEMORY_BASE = 0x20
MEMORY_LIMIT = 0x22
PREF_MEMORY_BASE = 0x24
PREF_MEMORY_LIMIT = 0x26
PREF_BASE_UPPER32 = 0x28
PREF_LIMIT_UPPER32 = 0x2C
IO_BASE_UPPER16 = 0x30
IO_LIMIT_UPPER16 = 0x32
BRIDGE_ROM_ADDRESS = 0x38
BRIDGE_CONTROL = 0x3E

HEADER_TYPE_NORMAL = 0
HEADER_TYPE_BRIDGE = 1
HEADER_TYPE_MULTI_FUNCTION = 0x80

COMMAND_IO = 0x1
COMMAND_MEMORY = 0x2
COMMAND_MASTER = 0x4
COMMAND_PARITY = 0x40
COMMAND_SERR = 0x100
COMMAND_INTX_DISABLE = 0x400
COMMAND_WRITABLE = (COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_PARITY
                    | COMMAND_SERR | COMMAND_INTX_DISABLE)

STATUS_INTERRUPT = 0x08
STATUS_CAP_LIST = 0x10
# parity detected, signalled SERR, master/target abort received, target abort
# signalled, master data parity error: all write-one-to-clear
STATUS_W1C = 0xF900

PCI_CONFIG_SIZE = 0x100
PCIE_CONFIG_SIZE = 0x1000
EXT_CAP_START = 0x100


class ConfigSpace:
    """``size`` bytes (256 for PCI, 4096 for PCIe) with per-bit write masks."""

    def __init__(self, size: int = PCI_CONFIG_SIZE) -> None:
        self.size = size
        self.data = bytearray(size)
        self.wmask = bytearray(size)
        self.w1cmask = bytearray(size)

    def grow(self, size: int) -> None:
        """Extend to ``size`` bytes (a device that became PCIe: 4 KiB), new bytes zero."""
        extra = size - self.size
        if extra > 0:
            for buf in (self.data, self.wmask, self.w1cmask):
                buf.extend(bytes(extra))
            self.size = size

    # -- the device's side: fields and masks ---------------------------------------------
    def get(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset:offset + size], "little")

    def set(self, offset: int, size: int, value: int) -> None:
        self.data[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
            size, "little")

    def set_wmask(self, offset: int, size: int, mask: int) -> None:
        self.wmask[offset:offset + size] = mask.to_bytes(size, "little")

    def set_w1c(self, offset: int, size: int, mask: int) -> None:
        self.w1cmask[offset:offset + size] = mask.to_bytes(size, "little")

    # -- the guest's side ----------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset + size > self.size:
            return (1 << (8 * size)) - 1
        return self.get(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest write: writable bits take the new value, W1C bits written as 1 clear,
        everything else keeps its value."""
        for i in range(size):
            o = offset + i
            if o >= self.size:
                return
            b = (value >> (8 * i)) & 0xFF
            w = self.wmask[o]
            self.data[o] = ((self.data[o] & ~w) | (b & w)) & ~(b & self.w1cmask[o]) & 0xFF


def overlaps(offset: int, size: int, start: int, length: int) -> bool:
    """Does the access [offset, offset+size) touch the field [start, start+length)?"""
    return offset < start + length and start < offset + size
