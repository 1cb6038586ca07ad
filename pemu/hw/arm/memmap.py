"""QEMU's Arm ``virt`` memory map (hw/arm/virt.c's base_memmap), for the devices pemu's
virt builds.  ``irq`` is the SPI number (GIC INTID = 32 + irq), as the device tree
writes it.  The same ``MemoryMap`` table type as the RISC-V boards (hw/riscv/memmap.py).
"""

from __future__ import annotations

from pemu.hw.riscv.memmap import MemMapEntry, MemoryMap

VIRT_MEMMAP = MemoryMap({
    "gic_dist": MemMapEntry(0x0800_0000, 0x1_0000),
    "gic_cpu": MemMapEntry(0x0801_0000, 0x1_0000),  # GICv2 CPU interface
    "gic_redist": MemMapEntry(0x080A_0000, 0xF6_0000),  # GICv3: 0x20000 per CPU (123)
    "uart": MemMapEntry(0x0900_0000, 0x1000, irq=1),  # PL011
    "rtc": MemMapEntry(0x0901_0000, 0x1000, irq=2),  # PL031
    "virtio": MemMapEntry(0x0A00_0000, 0x200, irq=16, count=32),  # virtio-mmio
    "dram": MemMapEntry(0x4000_0000, 0),  # sized by -m
})

# the generic timer's PPIs (INTIDs), as QEMU's virt wires them
PPI_TIMER_SEC, PPI_TIMER_HYP, PPI_TIMER_VIRT, PPI_TIMER_PHYS = 29, 26, 27, 30
SPI_BASE = 32

__all__ = ["PPI_TIMER_HYP", "PPI_TIMER_PHYS", "PPI_TIMER_SEC", "PPI_TIMER_VIRT", "SPI_BASE",
           "VIRT_MEMMAP"]
