"""The device tree of the Arm ``virt`` board, from its memory map (memmap.py), as
QEMU's hw/arm/virt.c writes it for the devices pemu builds: CPUs started by PSCI, the
generic timer's PPIs, the GIC (v3 or v2), PL011, PL031, virtio-mmio slots, memory and
/chosen (bootargs, stdout-path, initrd).  The nodes of the board's own devices are
a64dev's builders (virt_fdt_nodes.py); this file adds the rest and the addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.fdt.writer import FDT, Node
from pemu.hw.arm.memmap import SPI_BASE
from pemu.hw.arm.virt_fdt_nodes import (
    IRQ_EDGE_RISING,
    add_apb_clock_node,
    add_gic_node,
    add_pl011_node,
    add_pl031_node,
    add_timer_node,
    spi_cells,
)
from pemu.hw.memmap import MemMapEntry, MemoryMap
from pemu.hw.pci.fdt_node import add_pcie_host_node

PSCI_CPU_SUSPEND, PSCI_CPU_OFF, PSCI_CPU_ON, PSCI_MIGRATE = \
    0xC400_0001, 0x8400_0002, 0xC400_0003, 0xC400_0005


@dataclass
class ArmVirtLayout:
    memmap: MemoryMap
    cpus: list[int]  # MPIDR affinity of each CPU
    cpu_compatible: str
    gic_version: int
    bootargs: str = ""
    initrd: tuple[int, int] | None = None  # (start, end)
    virtio_slots: int = 0  # how many virtio_mmio nodes (QEMU writes all 32)
    pcie: bool = False  # the ECAM host bridge (memmap's pcie_* entries)


def _reg(node: Node, *entries: tuple[int, int]) -> None:
    node.set_cells("reg", [c for base, size in entries for c in ((base, 2), (size, 2))])




def _add_v2m_node(gic: Node, entry: MemMapEntry) -> int:
    """The GICv2m MSI frame, a child of the GIC node as in QEMU's tree."""
    node = gic.add_node(f"v2m@{entry.base:x}")
    node.set_string("compatible", "arm,gic-v2m-frame")
    node.set_empty("msi-controller")
    _reg(node, (entry.base, entry.size))
    return node.phandle()


def _add_pcie_node(root: Node, mm: MemoryMap, gic: int, msi: int | None) -> None:
    """The ECAM host bridge (hw/pci/fdt_node.py), named after its 32-bit window as
    QEMU names it: INTx on SPIs (the GIC's children have two address cells, so the
    parent unit address in the map is two zero cells), and every requester ID's MSIs
    to the v2m frame (``msi-map``) when there is one."""
    def msi_map(node: Node) -> None:
        if msi is not None:
            node.set_u32("msi-map", 0, msi, 0, 0x1_0000)

    add_pcie_host_node(root, f"pcie@{mm['pcie_mmio'].base:x}", mm, gic,
                       lambda spi: (0, 0, *spi_cells(SPI_BASE + spi)), msi_map)


def build_arm_virt_fdt(layout: ArmVirtLayout) -> bytes:
    mm = layout.memmap
    fdt = FDT()
    root = fdt.root
    root.set_string("compatible", "linux,dummy-virt")
    root.set_u32("#address-cells", 2)
    root.set_u32("#size-cells", 2)
    root.set_string("model", "linux,dummy-virt")

    psci = root.add_node("psci")
    psci.set_string("compatible", "arm,psci-1.0", "arm,psci-0.2", "arm,psci")
    psci.set_string("method", "hvc")
    psci.set_u32("cpu_suspend", PSCI_CPU_SUSPEND)
    psci.set_u32("cpu_off", PSCI_CPU_OFF)
    psci.set_u32("cpu_on", PSCI_CPU_ON)
    psci.set_u32("migrate", PSCI_MIGRATE)

    dram = mm["dram"]
    mem = root.add_node(f"memory@{dram.base:x}")
    mem.set_string("device_type", "memory")
    _reg(mem, (dram.base, dram.size))

    cpus = root.add_node("cpus")
    cpus.set_u32("#address-cells", 1)
    cpus.set_u32("#size-cells", 0)
    for aff in layout.cpus:
        cpu = cpus.add_node(f"cpu@{aff:x}")
        cpu.set_string("device_type", "cpu")
        cpu.set_string("compatible", layout.cpu_compatible)
        cpu.set_u32("reg", aff)
        if len(layout.cpus) > 1:
            cpu.set_string("enable-method", "psci")

    dist = mm["gic_dist"]
    # GICv3: the whole redistributor region, as QEMU writes it (GICR_TYPER.Last ends
    # Linux's walk at the last CPU); no maintenance interrupt: that is EL2's
    # (QEMU writes it with virtualization=on only)
    second = (mm["gic_redist"].base, mm["gic_redist"].size) \
        if layout.gic_version == 3 else (mm["gic_cpu"].base, mm["gic_cpu"].size)
    gic = add_gic_node(root, layout.gic_version, (dist.base, dist.size), second)
    v2m = _add_v2m_node(gic, mm["gic_v2m"]) if layout.gic_version == 2 and \
        "gic_v2m" in mm else None
    root.set_u32("interrupt-parent", gic.phandle())
    add_timer_node(root, layout.gic_version, len(layout.cpus))
    clock = add_apb_clock_node(root)
    uart, rtc = mm["uart"], mm["rtc"]
    pl011 = add_pl011_node(root, uart.base, uart.size, SPI_BASE + uart.irq, clock)
    add_pl031_node(root, rtc.base, rtc.size, SPI_BASE + rtc.irq, clock)

    virtio = mm["virtio"]
    for n in range(layout.virtio_slots):
        slot = virtio.slot(n)
        node = root.add_node(f"virtio_mmio@{slot.base:x}")
        node.set_string("compatible", "virtio,mmio")
        _reg(node, (slot.base, slot.size))
        node.set_u32("interrupts", *spi_cells(SPI_BASE + slot.irq, IRQ_EDGE_RISING))
        node.set_empty("dma-coherent")

    if layout.pcie:
        _add_pcie_node(root, mm, gic.phandle(), v2m)

    chosen = root.add_node("chosen")
    chosen.set_string("stdout-path", pl011.path)
    if layout.bootargs:
        chosen.set_string("bootargs", layout.bootargs)
    if layout.initrd is not None:
        chosen.set_u64("linux,initrd-start", layout.initrd[0])
        chosen.set_u64("linux,initrd-end", layout.initrd[1])
    return fdt.to_bytes()


__all__ = ["ArmVirtLayout", "build_arm_virt_fdt"]
