"""The device tree of pemu's RISC-V ``virt`` board: exactly the devices it creates.

The layout of nodes and properties follows what Linux and OpenSBI read on QEMU's virt
(see riscv64/qemu-virt.dts in the shared guests folder): cpus with their local interrupt
controllers, memory, the PLIC and CLINT with ``interrupts-extended``, the UART, RTC,
test finisher (with syscon poweroff/reboot), the virtio-mmio slots, the ECAM PCIe host
bridge (``pci-host-ecam-generic``) and ``/chosen``.  Flash and fw-cfg do not exist on
this board and are not described.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pemu.fdt.writer import FDT, Node
from pemu.hw.riscv.memmap import PCI_INTX_LINES, MemMapEntry, MemoryMap

CPU_ISA = "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbs_sstc"
TIMEBASE_HZ = 10_000_000
UART_CLOCK_HZ = 3_686_400
IRQ_S_EXT, IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER = 9, 11, 3, 7


@dataclass(frozen=True)
class PCIInterruptRoute:
    """Where the PCIe host's interrupts go: ``wired`` names the interrupt controller
    node (a key of the builder's phandle table: "plic" today) that INTA..INTD reach
    through ``interrupt-map``, with ``wired_cells`` cells per interrupt (1: the PLIC's
    source; 2: an APLIC's source and level-high type).  ``msi_parent`` names the MSI
    controller (an IMSIC) the guest's MSIs go to; None: no ``msi-parent``, and Linux
    uses INTx."""

    wired: str = "plic"
    wired_cells: int = 1
    msi_parent: str | None = None


@dataclass
class VirtLayout:
    """What the DT must describe; the board fills it in.  Every address and interrupt
    number comes from ``memmap``, the board's table sized for this machine."""

    num_harts: int
    memmap: MemoryMap
    plic_sources: int
    bootargs: str = ""
    initrd: tuple[int, int] | None = None  # (start, end)
    mmu_type: str = "riscv,sv57"
    pci_interrupts: PCIInterruptRoute = PCIInterruptRoute()


def _device(parent: Node, name: str, entry: MemMapEntry) -> Node:
    """A node ``name@base`` with its ``reg``, from its memory-map entry."""
    node = parent.add_node(f"{name}@{entry.base:x}")
    node.set_u64("reg", entry.base, entry.size)
    return node


def _wire(node: Node, plic_phandle: int, entry: MemMapEntry) -> None:
    node.set_u32("interrupt-parent", plic_phandle).set_u32("interrupts", entry.irq)


def build_virt_fdt(layout: VirtLayout) -> bytes:
    mm = layout.memmap
    fdt = FDT()
    root = fdt.root
    root.set_u32("#address-cells", 2).set_u32("#size-cells", 2)
    root.set_string("compatible", "riscv-virtio")
    root.set_string("model", "riscv-virtio,qemu")

    chosen = root.add_node("chosen")
    if layout.bootargs:
        chosen.set_string("bootargs", layout.bootargs)
    chosen.set_string("stdout-path", f"/soc/serial@{mm['uart0'].base:x}")
    if layout.initrd is not None:
        # cells as wide as the root's address cells, as the kernel reads them
        chosen.set_u64("linux,initrd-start", layout.initrd[0])
        chosen.set_u64("linux,initrd-end", layout.initrd[1])
    chosen.set_bytes("rng-seed", os.urandom(32))  # lets the kernel's CRNG start at once

    memory = _device(root, "memory", mm["dram"])
    memory.set_string("device_type", "memory")

    cpus = root.add_node("cpus")
    cpus.set_u32("#address-cells", 1).set_u32("#size-cells", 0)
    cpus.set_u32("timebase-frequency", TIMEBASE_HZ)
    intcs = []
    cpu_map = cpus.add_node("cpu-map").add_node("cluster0")
    for h in range(layout.num_harts):
        cpu = cpus.add_node(f"cpu@{h}")
        cpu.set_string("device_type", "cpu")
        cpu.set_u32("reg", h)
        cpu.set_string("status", "okay")
        cpu.set_string("compatible", "riscv")
        cpu.set_string("riscv,isa", CPU_ISA)
        cpu.set_string("mmu-type", layout.mmu_type)
        intc = cpu.add_node("interrupt-controller")
        intc.set_u32("#interrupt-cells", 1)
        intc.set_empty("interrupt-controller")
        intc.set_string("compatible", "riscv,cpu-intc")
        intcs.append(intc.phandle())
        cpu_map.add_node(f"core{h}").set_u32("cpu", cpu.phandle())

    soc = root.add_node("soc")
    soc.set_u32("#address-cells", 2).set_u32("#size-cells", 2)
    soc.set_string("compatible", "simple-bus")
    soc.set_empty("ranges")

    plic = _device(soc, "plic", mm["plic"])
    plic.set_u32("#interrupt-cells", 1).set_u32("#address-cells", 0)
    plic.set_string("compatible", "sifive,plic-1.0.0", "riscv,plic0")
    plic.set_empty("interrupt-controller")
    ext = []
    for ph in intcs:
        ext += [ph, IRQ_M_EXT, ph, IRQ_S_EXT]
    plic.set_u32("interrupts-extended", *ext)
    plic.set_u32("riscv,ndev", layout.plic_sources - 1)
    plic_ph = plic.phandle()

    clint = _device(soc, "clint", mm["clint"])
    clint.set_string("compatible", "sifive,clint0", "riscv,clint0")
    ext = []
    for ph in intcs:
        ext += [ph, IRQ_M_SOFT, ph, IRQ_M_TIMER]
    clint.set_u32("interrupts-extended", *ext)

    virtio = mm["virtio"]
    for n in reversed(range(virtio.count)):  # QEMU's order: the highest slot first
        slot = virtio.slot(n)
        node = _device(soc, "virtio_mmio", slot)
        node.set_string("compatible", "virtio,mmio")
        _wire(node, plic_ph, slot)

    test = _device(soc, "test", mm["test"])
    test.set_string("compatible", "sifive,test1", "sifive,test0", "syscon")
    test_ph = test.phandle()

    uart = _device(soc, "serial", mm["uart0"])
    uart.set_string("compatible", "ns16550a")
    uart.set_u32("clock-frequency", UART_CLOCK_HZ)
    _wire(uart, plic_ph, mm["uart0"])

    rtc = _device(soc, "rtc", mm["rtc"])
    rtc.set_string("compatible", "google,goldfish-rtc")
    _wire(rtc, plic_ph, mm["rtc"])

    _pcie_host(soc, mm, layout.pci_interrupts, {"plic": plic_ph})

    for name, value in (("poweroff", 0x5555), ("reboot", 0x7777)):
        node = root.add_node(name)
        node.set_string("compatible", f"syscon-{name}")
        node.set_u32("regmap", test_ph).set_u32("offset", 0).set_u32("value", value)
    return fdt.to_bytes()


# PCI bus address spaces in the first cell of a child address (IEEE 1275 PCI binding)
_PCI_SPACE_IO = 0x0100_0000
_PCI_SPACE_MEM32 = 0x0200_0000
_PCI_SPACE_MEM64 = 0x0300_0000
IRQ_TYPE_LEVEL_HIGH = 4


def _pcie_host(soc: Node, mm: MemoryMap, route: PCIInterruptRoute,
               phandles: dict[str, int]) -> Node:
    """The generic ECAM host bridge, as QEMU's virt describes it."""
    ecam, pio = mm["pcie_ecam"], mm["pcie_pio"]
    mmio, high = mm["pcie_mmio"], mm["pcie_mmio_high"]
    node = _device(soc, "pci", ecam)
    node.set_u32("#address-cells", 3).set_u32("#interrupt-cells", 1)
    node.set_u32("#size-cells", 2)
    node.set_string("compatible", "pci-host-ecam-generic")
    node.set_string("device_type", "pci")
    node.set_u32("linux,pci-domain", 0)
    node.set_u32("bus-range", 0, ecam.size // (1 << 20) - 1)
    node.set_empty("dma-coherent")
    ranges: list[int] = []
    # (space, bus address, CPU address, size): I/O from bus address 0, memory 1:1
    for space, bus_addr, entry in ((_PCI_SPACE_IO, 0, pio),
                                   (_PCI_SPACE_MEM32, mmio.base, mmio),
                                   (_PCI_SPACE_MEM64, high.base, high)):
        ranges += [space, bus_addr >> 32, bus_addr & 0xFFFFFFFF,
                   entry.base >> 32, entry.base & 0xFFFFFFFF,
                   entry.size >> 32, entry.size & 0xFFFFFFFF]
    node.set_u32("ranges", *ranges)
    if route.msi_parent is not None:
        node.set_u32("msi-parent", phandles[route.msi_parent])
    # the swizzle: pin P (1..4) of slot S reaches line (S + P - 1) mod 4; the mask keeps
    # the slot's low two bits (devfn bits 11..12 of phys.hi) and the pin
    parent = phandles[route.wired]
    assert ecam.irq is not None
    imap: list[int] = []
    for slot in range(PCI_INTX_LINES):
        for pin in range(1, PCI_INTX_LINES + 1):
            irq = ecam.irq + (slot + pin - 1) % PCI_INTX_LINES
            spec = [irq] if route.wired_cells == 1 else [irq, IRQ_TYPE_LEVEL_HIGH]
            imap += [slot << 11, 0, 0, pin, parent, *spec]
    node.set_u32("interrupt-map", *imap)
    node.set_u32("interrupt-map-mask", 0x1800, 0, 0, 0x7)
    return node
