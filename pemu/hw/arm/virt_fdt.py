"""The device tree of the Arm ``virt`` board, from its memory map (memmap.py), as
QEMU's hw/arm/virt.c writes it for the devices pemu builds: CPUs started by PSCI, the
generic timer's PPIs, the GIC (v3 or v2), PL011, PL031, virtio-mmio slots, memory and
/chosen (bootargs, stdout-path, initrd).
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.fdt.writer import FDT, Node
from pemu.hw.arm.memmap import (
    PPI_TIMER_HYP,
    PPI_TIMER_PHYS,
    PPI_TIMER_SEC,
    PPI_TIMER_VIRT,
)
from pemu.hw.riscv.memmap import MemMapEntry, MemoryMap

GIC_SPI, GIC_PPI = 0, 1
IRQ_EDGE_RISING, IRQ_LEVEL_HIGH = 1, 4
APB_CLOCK_HZ = 24_000_000
REDIST_STRIDE = 0x2_0000
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
    virtio_slots: int = 0


def _reg(node: Node, *entries: tuple[int, int]) -> None:
    node.set_cells("reg", [c for base, size in entries for c in ((base, 2), (size, 2))])


def _spi(node: Node, entry: MemMapEntry, trigger: int = IRQ_LEVEL_HIGH) -> None:
    node.set_u32("interrupts", GIC_SPI, entry.irq, trigger)


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

    gic = _gic_node(root, layout)
    root.set_u32("interrupt-parent", gic.phandle())

    timer = root.add_node("timer")
    timer.set_string("compatible", "arm,armv8-timer")
    flags = IRQ_LEVEL_HIGH
    if layout.gic_version == 2:  # GICv2 PPIs name the CPUs they reach
        flags |= ((1 << len(layout.cpus)) - 1) << 8
    cells = []
    for ppi in (PPI_TIMER_SEC, PPI_TIMER_PHYS, PPI_TIMER_VIRT, PPI_TIMER_HYP):
        cells += [GIC_PPI, ppi - 16, flags]
    timer.set_u32("interrupts", *cells)
    timer.set_empty("always-on")

    clk = root.add_node("apb-pclk")
    clk.set_string("compatible", "fixed-clock")
    clk.set_u32("#clock-cells", 0)
    clk.set_u32("clock-frequency", APB_CLOCK_HZ)
    clk.set_string("clock-output-names", "clk24mhz")
    pclk = clk.phandle()

    uart = mm["uart"]
    pl011 = root.add_node(f"pl011@{uart.base:x}")
    pl011.set_string("compatible", "arm,pl011", "arm,primecell")
    _reg(pl011, (uart.base, uart.size))
    _spi(pl011, uart)
    pl011.set_u32("clocks", pclk, pclk)
    pl011.set_string("clock-names", "uartclk", "apb_pclk")

    rtc = mm["rtc"]
    pl031 = root.add_node(f"pl031@{rtc.base:x}")
    pl031.set_string("compatible", "arm,pl031", "arm,primecell")
    _reg(pl031, (rtc.base, rtc.size))
    _spi(pl031, rtc)
    pl031.set_u32("clocks", pclk)
    pl031.set_string("clock-names", "apb_pclk")

    virtio = mm["virtio"]
    for n in range(layout.virtio_slots):
        slot = virtio.slot(n)
        node = root.add_node(f"virtio_mmio@{slot.base:x}")
        node.set_string("compatible", "virtio,mmio")
        _reg(node, (slot.base, slot.size))
        _spi(node, slot, IRQ_EDGE_RISING)
        node.set_empty("dma-coherent")

    chosen = root.add_node("chosen")
    chosen.set_string("stdout-path", pl011.path)
    if layout.bootargs:
        chosen.set_string("bootargs", layout.bootargs)
    if layout.initrd is not None:
        chosen.set_u64("linux,initrd-start", layout.initrd[0])
        chosen.set_u64("linux,initrd-end", layout.initrd[1])
    return fdt.to_bytes()


def _gic_node(root: Node, layout: ArmVirtLayout) -> Node:
    mm = layout.memmap
    dist = mm["gic_dist"]
    gic = root.add_node(f"intc@{dist.base:x}")
    gic.set_u32("#interrupt-cells", 3)
    gic.set_empty("interrupt-controller")
    gic.set_u32("#address-cells", 2)
    gic.set_u32("#size-cells", 2)
    gic.set_empty("ranges")
    if layout.gic_version == 3:
        gic.set_string("compatible", "arm,gic-v3")
        gic.set_u32("#redistributor-regions", 1)
        redist = mm["gic_redist"]
        _reg(gic, (dist.base, dist.size), (redist.base, REDIST_STRIDE * len(layout.cpus)))
        gic.set_u32("interrupts", GIC_PPI, 9, IRQ_LEVEL_HIGH)  # maintenance
    else:
        gic.set_string("compatible", "arm,cortex-a15-gic")
        cpu = mm["gic_cpu"]
        _reg(gic, (dist.base, dist.size), (cpu.base, cpu.size))
    return gic


__all__ = ["ArmVirtLayout", "build_arm_virt_fdt"]
