"""The device-tree node of the generic ECAM PCIe host bridge (``pci-host-ecam-generic``),
as QEMU's virt boards write it, from a board's memory map: ``reg`` is the ECAM,
``ranges`` the I/O window (bus address 0) and the memory windows (bus address = CPU
address), ``interrupt-map`` the INTx swizzle onto the board's interrupt controller.

What differs between boards is passed in: the node's name (RISC-V names it after the
ECAM, Arm after the 32-bit window), how an interrupt line is written under the parent
controller, and the MSI property (``msi-parent`` to an IMSIC, ``msi-map`` to a GICv2m
frame or ITS), which the board adds itself.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.fdt.writer import Node
from pemu.hw.memmap import MemMapEntry, MemoryMap
from pemu.hw.pci.host import ECAM_BUS_SHIFT, INTX_LINES

# PCI bus address spaces in the first cell of a child address (IEEE 1275 PCI binding)
PCI_SPACE_IO = 0x0100_0000
PCI_SPACE_MEM32 = 0x0200_0000
PCI_SPACE_MEM64 = 0x0300_0000


def _cells64(value: int) -> list[int]:
    return [value >> 32, value & 0xFFFF_FFFF]


def add_pcie_host_node(parent: Node, name: str, mm: MemoryMap, irq_parent: int,
                       irq_cells: Callable[[int], tuple[int, ...]],
                       before_imap: Callable[[Node], None] | None = None) -> Node:
    """``irq_cells(line)``: the parent unit address and interrupt specifier of wired
    line ``line`` (the cells after the parent's phandle in ``interrupt-map``);
    ``before_imap(node)`` adds properties before the map (where RISC-V's msi-parent
    was always written)."""
    ecam, pio = mm["pcie_ecam"], mm["pcie_pio"]
    node = parent.add_node(name)
    node.set_u64("reg", ecam.base, ecam.size)
    node.set_u32("#address-cells", 3).set_u32("#interrupt-cells", 1)
    node.set_u32("#size-cells", 2)
    node.set_string("compatible", "pci-host-ecam-generic")
    node.set_string("device_type", "pci")
    node.set_u32("linux,pci-domain", 0)
    node.set_u32("bus-range", 0, ecam.size // (1 << ECAM_BUS_SHIFT) - 1)
    node.set_empty("dma-coherent")
    windows: list[tuple[int, int, MemMapEntry]] = [(PCI_SPACE_IO, 0, pio)]
    windows += [(PCI_SPACE_MEM32, mm["pcie_mmio"].base, mm["pcie_mmio"])]
    if "pcie_mmio_high" in mm:
        windows += [(PCI_SPACE_MEM64, mm["pcie_mmio_high"].base, mm["pcie_mmio_high"])]
    ranges: list[int] = []
    for space, bus_addr, entry in windows:
        ranges += [space, *_cells64(bus_addr), *_cells64(entry.base), *_cells64(entry.size)]
    node.set_u32("ranges", *ranges)
    if before_imap is not None:
        before_imap(node)
    # the swizzle: pin P (1..4) of slot S reaches line (S + P - 1) mod 4; the mask keeps
    # the slot's low two bits (devfn bits 11..12 of phys.hi) and the pin
    assert ecam.irq is not None
    imap: list[int] = []
    for slot in range(INTX_LINES):
        for pin in range(1, INTX_LINES + 1):
            line = ecam.irq + (slot + pin - 1) % INTX_LINES
            imap += [slot << 11, 0, 0, pin, irq_parent, *irq_cells(line)]
    node.set_u32("interrupt-map", *imap)
    node.set_u32("interrupt-map-mask", 0x1800, 0, 0, 0x7)
    return node


__all__ = ["add_pcie_host_node"]
