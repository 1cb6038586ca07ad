"""The MSI capability (PCI 3.0 6.8.1): 64-bit addresses and per-vector masking.

A message is a 32-bit write of ``data`` (with the vector number in its low bits,
multiple-message mode) to ``address``; ``send(address, data)`` is the bus master
write the device's bus provides.  A masked vector sets its pending bit instead and
fires when unmasked.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.pci.capability import CAP_ID_MSI, CapabilityAllocator
from pemu.hw.pci.config import ConfigSpace, overlaps

FLAGS = 2
ADDRESS_LO = 4
ADDRESS_HI = 8
DATA = 12
MASK = 16
PENDING = 20
SIZE = 24

FLAG_ENABLE = 0x1
FLAG_64BIT = 0x80
FLAG_MASKBIT = 0x100

Sender = Callable[[int, int], None]


class MSI:
    def __init__(self, config: ConfigSpace, caps: CapabilityAllocator, vectors: int,
                 send: Sender) -> None:
        if vectors not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"MSI: {vectors} vectors (1, 2, 4, ... 32)")
        self.config = config
        self.vectors = vectors
        self.send = send
        self.offset = off = caps.add(CAP_ID_MSI, SIZE)
        mmc = vectors.bit_length() - 1
        config.set(off + FLAGS, 2, FLAG_64BIT | FLAG_MASKBIT | (mmc << 1))
        config.set_wmask(off + FLAGS, 2, FLAG_ENABLE | 0x70)  # enable, MME
        config.set_wmask(off + ADDRESS_LO, 4, 0xFFFFFFFC)
        config.set_wmask(off + ADDRESS_HI, 4, 0xFFFFFFFF)
        config.set_wmask(off + DATA, 2, 0xFFFF)
        config.set_wmask(off + MASK, 4, (1 << vectors) - 1)

    def reset(self) -> None:
        off = self.offset
        cfg = self.config
        cfg.set(off + FLAGS, 2, cfg.get(off + FLAGS, 2) & ~(FLAG_ENABLE | 0x70))
        for field in (ADDRESS_LO, ADDRESS_HI, DATA, MASK, PENDING):
            cfg.set(off + field, 4 if field != DATA else 2, 0)

    @property
    def enabled(self) -> bool:
        return bool(self.config.get(self.offset + FLAGS, 2) & FLAG_ENABLE)

    @property
    def enabled_vectors(self) -> int:
        return 1 << ((self.config.get(self.offset + FLAGS, 2) >> 4) & 7)

    def _message(self, vector: int) -> tuple[int, int]:
        cfg, off = self.config, self.offset
        address = cfg.get(off + ADDRESS_LO, 4) | (cfg.get(off + ADDRESS_HI, 4) << 32)
        n = self.enabled_vectors
        data = (cfg.get(off + DATA, 2) & ~(n - 1)) | (vector & (n - 1))
        return address, data

    def notify(self, vector: int) -> None:
        if not self.enabled or vector >= self.enabled_vectors:
            return
        cfg, off = self.config, self.offset
        if cfg.get(off + MASK, 4) & (1 << vector):
            cfg.set(off + PENDING, 4, cfg.get(off + PENDING, 4) | (1 << vector))
            return
        self.send(*self._message(vector))

    def config_written(self, offset: int, size: int) -> None:
        """After a guest write: vectors unmasked with a message pending fire now."""
        if not overlaps(offset, size, self.offset, SIZE) or not self.enabled:
            return
        cfg, off = self.config, self.offset
        ready = cfg.get(off + PENDING, 4) & ~cfg.get(off + MASK, 4)
        for vector in range(self.enabled_vectors):
            if ready & (1 << vector):
                cfg.set(off + PENDING, 4, cfg.get(off + PENDING, 4) & ~(1 << vector))
                self.send(*self._message(vector))
