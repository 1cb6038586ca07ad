"""GICv2m: the MSI frame that turns a device's MSI write into an SPI of a GICv2 (Arm's
"GICv2m" extension, as QEMU's virt gives its GICv2 machines for PCIe MSIs).

The frame is stateless: MSI_TYPER says which SPIs it owns, and a 32-bit write of an
INTID to MSI_SETSPI_NS raises that SPI for one edge (the driver configures the SPIs
edge-triggered).  Writes of other INTIDs are ignored, as the architecture allows.
"""

from __future__ import annotations

from collections.abc import Callable

MSI_TYPER = 0x008
MSI_SETSPI_NS = 0x040
MSI_IIDR = 0xFCC
FRAME_SIZE = 0x1000


class Gicv2m:
    type_name = "arm-gicv2m"

    def __init__(self, first_intid: int, count: int,
                 pulse_spi: Callable[[int], None]) -> None:
        if not 0 < count <= 0x3FF or not 32 <= first_intid <= 0x3FF:
            raise ValueError(f"GICv2m: SPIs {first_intid}+{count}")
        self.first_intid = first_intid
        self.count = count
        self._pulse = pulse_spi

    def mmio_read(self, offset: int, size: int) -> int:
        if offset == MSI_TYPER:
            return self.first_intid << 16 | self.count
        return 0  # MSI_IIDR and the ID registers: no implementer code

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == MSI_SETSPI_NS:
            intid = value & 0x3FF
            if self.first_intid <= intid < self.first_intid + self.count:
                self._pulse(intid)


__all__ = ["FRAME_SIZE", "Gicv2m"]
