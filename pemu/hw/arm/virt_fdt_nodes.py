"""Device-tree nodes of the Arm ``virt`` board's own devices, written as QEMU's virt
writes them (Linux binds its drivers from these): the GIC (``intc``), the architected
timer, the APB clock, the PL011 and the PL031.  The board builds the rest of the tree
(cpus, memory, virtio-mmio, PCIe, /chosen) and decides the addresses.

Interrupt specifiers have three cells, ``<type number flags>``: type 0 is an SPI
(number = INTID - 32), 1 a PPI (number = INTID - 16); flags 4 is level-high, 1 a rising
edge.  On GICv2 a PPI's flags also carry the mask of the CPUs it reaches (bits 8-15).
The root is expected to have #address-cells = #size-cells = 2.
"""

from __future__ import annotations

from pemu.fdt.writer import Node

SPI, PPI = 0, 1
IRQ_EDGE_RISING = 1
IRQ_LEVEL_HIGH = 4
APB_CLOCK_HZ = 24_000_000
# The architected timer's PPIs in the order the binding lists them: secure physical,
# non-secure physical, virtual, hypervisor physical (INTIDs 29, 30, 27, 26).
TIMER_PPIS = (13, 14, 11, 10)


def spi_cells(intid: int, flags: int = IRQ_LEVEL_HIGH) -> tuple[int, int, int]:
    """The ``interrupts`` cells of SPI ``intid`` (32 and up)."""
    if intid < 32:
        raise ValueError(f"SPI INTID {intid} below 32")
    return SPI, intid - 32, flags


def gicv2_ppi_flags(num_cpus: int, flags: int = IRQ_LEVEL_HIGH) -> int:
    """GICv2 PPI flags: which of the (at most 8) CPUs the PPI reaches, in bits 8-15."""
    return flags | (((1 << min(num_cpus, 8)) - 1) << 8)


def _reg(node: Node, *regions: tuple[int, int]) -> None:
    node.set_u64("reg", *(v for region in regions for v in region))


def _unit(base: int) -> str:
    return f"{base:x}"


def add_gic_node(parent: Node, version: int, dist: tuple[int, int],
                 second: tuple[int, int]) -> Node:
    """The interrupt controller: ``dist`` is the distributor's (base, size); ``second``
    is the redistributor region (GICv3) or the CPU interface (GICv2).  Returns the node;
    its ``phandle()`` is every device's interrupt-parent."""
    node = parent.add_node(f"intc@{_unit(dist[0])}")
    if version == 3:
        node.set_string("compatible", "arm,gic-v3")
        node.set_u32("#redistributor-regions", 1)
    elif version == 2:
        node.set_string("compatible", "arm,cortex-a15-gic")
    else:
        raise ValueError(f"GIC version {version}: want 2 or 3")
    node.set_u32("#interrupt-cells", 3)
    node.set_empty("interrupt-controller")
    # Cells for child nodes (an ITS or GICv2m frame), as QEMU writes them.
    node.set_u32("#address-cells", 2)
    node.set_u32("#size-cells", 2)
    node.set_empty("ranges")
    _reg(node, dist, second)
    node.phandle()
    return node


def add_timer_node(parent: Node, gic_version: int, num_cpus: int) -> Node:
    """The architected (generic) timer: its four PPIs, level-high."""
    flags = gicv2_ppi_flags(num_cpus) if gic_version == 2 else IRQ_LEVEL_HIGH
    node = parent.add_node("timer")
    node.set_string("compatible", "arm,armv8-timer", "arm,armv7-timer")
    node.set_u32("interrupts", *(v for ppi in TIMER_PPIS for v in (PPI, ppi, flags)))
    node.set_empty("always-on")
    return node


def add_apb_clock_node(parent: Node) -> Node:
    """The fixed 24 MHz clock the PrimeCells name as ``apb_pclk``."""
    node = parent.add_node("apb-pclk")
    node.set_string("compatible", "fixed-clock")
    node.set_u32("#clock-cells", 0)
    node.set_u32("clock-frequency", APB_CLOCK_HZ)
    node.set_string("clock-output-names", "clk24mhz")
    node.phandle()
    return node


def add_pl011_node(parent: Node, base: int, size: int, intid: int, clock: Node) -> Node:
    """A PL011 on SPI ``intid`` (33 on virt); /chosen's ``stdout-path`` names its path."""
    node = parent.add_node(f"pl011@{_unit(base)}")
    node.set_string("compatible", "arm,pl011", "arm,primecell")
    _reg(node, (base, size))
    node.set_u32("interrupts", *spi_cells(intid))
    node.set_u32("clocks", clock.phandle(), clock.phandle())
    node.set_string("clock-names", "uartclk", "apb_pclk")
    return node


def add_pl031_node(parent: Node, base: int, size: int, intid: int, clock: Node) -> Node:
    node = parent.add_node(f"pl031@{_unit(base)}")
    node.set_string("compatible", "arm,pl031", "arm,primecell")
    _reg(node, (base, size))
    node.set_u32("interrupts", *spi_cells(intid))
    node.set_u32("clocks", clock.phandle())
    node.set_string("clock-names", "apb_pclk")
    return node
