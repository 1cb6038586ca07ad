"""The capability lists: the classic one in the first 256 bytes (a chain from 0x34,
each entry ``id, next``) and the PCIe extended one from 0x100 (each header ``id:16,
version:4, next:12``).  Capabilities are placed one after the other, dword-aligned;
a new one goes at the head of the chain, as QEMU's do, so the guest sees the last
added first."""

from __future__ import annotations

from pemu.hw.pci.config import (
    CAPABILITY_LIST,
    EXT_CAP_START,
    PCI_CONFIG_SIZE,
    STATUS,
    STATUS_CAP_LIST,
    ConfigSpace,
)

CAP_ID_PM = 0x01
CAP_ID_MSI = 0x05
CAP_ID_VENDOR = 0x09
CAP_ID_EXP = 0x10
CAP_ID_MSIX = 0x11
FIRST_CAP = 0x40


class CapabilityAllocator:
    """Hands out config space for capabilities and keeps both chains linked."""

    def __init__(self, config: ConfigSpace) -> None:
        self.config = config
        self._next_free = FIRST_CAP
        self._next_ext: int | None = None  # None: no extended capability yet

    def add(self, cap_id: int, size: int) -> int:
        """Room for a ``size``-byte capability; returns its offset (id and next set)."""
        offset = self._next_free
        if offset + size > PCI_CONFIG_SIZE:
            raise ValueError(f"no room for capability 0x{cap_id:x} ({size} bytes)")
        self._next_free = (offset + size + 3) & ~3
        cfg = self.config
        cfg.set(offset, 1, cap_id)
        cfg.set(offset + 1, 1, cfg.get(CAPABILITY_LIST, 1))
        cfg.set(CAPABILITY_LIST, 1, offset)
        cfg.set(STATUS, 2, cfg.get(STATUS, 2) | STATUS_CAP_LIST)
        return offset

    def add_extended(self, cap_id: int, version: int, size: int) -> int:
        """Room for an extended capability (PCIe config space only)."""
        cfg = self.config
        if cfg.size <= EXT_CAP_START:
            raise ValueError("extended capabilities need PCIe config space")
        if self._next_ext is None:
            offset, self._next_ext = EXT_CAP_START, EXT_CAP_START
        else:
            offset = self._next_ext
        if offset + size > cfg.size:
            raise ValueError(f"no room for extended capability 0x{cap_id:x}")
        # appended at the tail: the header at 0x100 must stay the first one
        if offset != EXT_CAP_START:
            tail = EXT_CAP_START
            while (nxt := cfg.get(tail, 4) >> 20) != 0:
                tail = nxt
            cfg.set(tail, 4, (cfg.get(tail, 4) & 0xFFFFF) | (offset << 20))
        cfg.set(offset, 4, cap_id | (version << 16))
        self._next_ext = (offset + size + 3) & ~3
        return offset


def find_capability(config: ConfigSpace, cap_id: int) -> int | None:
    """The offset of the first capability ``cap_id`` on the chain (as a driver finds it)."""
    offset = config.get(CAPABILITY_LIST, 1) & ~3
    seen = 0
    while offset and seen < 48:
        if config.get(offset, 1) == cap_id:
            return offset
        offset = config.get(offset + 1, 1) & ~3
        seen += 1
    return None
