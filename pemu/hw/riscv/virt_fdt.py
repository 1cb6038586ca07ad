"""The device tree of pemu's RISC-V ``virt`` board: exactly the devices it creates.

The layout of nodes and properties follows what Linux and OpenSBI read on QEMU's virt
(see riscv64/qemu-virt.dts in the shared guests folder): cpus with their local interrupt
controllers, memory, the PLIC (or, with ``aia=``, the APLIC domains and IMSICs, as QEMU's
``-M virt,aia=...`` writes them) and CLINT with ``interrupts-extended``, the UART, RTC,
test finisher (with syscon poweroff/reboot), the virtio-mmio slots, and ``/chosen``.
the ECAM PCIe host bridge (``pci-host-ecam-generic``; its interrupt-map targets the
wired controller, and with an IMSIC it gets ``msi-parent``).  Flash and fw-cfg do not exist
on this board and are not described.

Every device with a wired interrupt names it through ``InterruptParents`` (the
controller's phandle and its interrupt cells), and an MSI-capable bus takes its
``msi-parent`` from there too: that is the one place that knows which controller the
machine has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pemu.fdt.writer import FDT, Node
from pemu.hw.intc.aplic import NUM_SOURCES as APLIC_SOURCES
from pemu.hw.intc.aplic import aplic_source_spec
from pemu.hw.intc.imsic import NUM_IDS as IMSIC_IDS
from pemu.hw.intc.imsic import guest_index_bits
from pemu.hw.pci.fdt_node import add_pcie_host_node
from pemu.hw.riscv.memmap import MemMapEntry, MemoryMap
from pemu.target.riscv.isa import DEFAULT_ISA

CPU_ISA = DEFAULT_ISA.isa_string  # the default -cpu rv64
AIA_ISA = "_smaia_ssaia"  # before _sstc, where QEMU puts them (aia=aplic-imsic only)
IMSIC_IPI_ID = 1  # QEMU's "riscv,ipi-id"
TIMEBASE_HZ = 10_000_000
UART_CLOCK_HZ = 3_686_400
IRQ_S_EXT, IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER = 9, 11, 3, 7


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
    isa: str = CPU_ISA  # riscv,isa: the extensions -cpu enabled (target/riscv/isa.py)
    aia: str = "none"  # none (PLIC), aplic, aplic-imsic
    aia_guests: int = 0  # IMSIC guest files per hart (S level: riscv,guest-index-bits)
    # riscv,isa-extensions: the same extensions one string each (Linux 6.5+ reads it)
    isa_extensions: tuple[str, ...] = DEFAULT_ISA.isa_extensions
    cbom_block_size: int = 0  # riscv,cbom-block-size (Zicbom); 0: no property
    cboz_block_size: int = 0  # riscv,cboz-block-size (Zicboz)


def _isa_extensions(layout: VirtLayout) -> list[str]:
    """riscv,isa-extensions: upper-case letters are not allowed, so "i", "m", ..."""
    exts = list(layout.isa_extensions)
    if layout.aia == "aplic-imsic":  # as in riscv,isa: before sstc
        at = exts.index("sstc") if "sstc" in exts else len(exts)
        exts[at:at] = AIA_ISA.strip("_").split("_")
    return exts


@dataclass(frozen=True)
class InterruptParents:
    """Where the board's interrupts go, for nodes that need them.

    wired        phandle of the controller of wired sources (PLIC, or the S-level APLIC
                 domain): a node's ``interrupt-parent``, the parent in an
                 ``interrupt-map``
    wired_cells  the interrupt specifier of wired source n under ``wired``: (n,) on
                 the PLIC, (n, IRQ_TYPE_LEVEL_HIGH) on the APLIC
    msi          phandle of the S-level IMSIC, a bus's ``msi-parent``; None when the
                 machine has no MSI controller (aia=none or aplic)
    """

    wired: int
    cells_per_irq: int
    msi: int | None = None

    def wired_cells(self, source: int) -> tuple[int, ...]:
        return (source,) if self.cells_per_irq == 1 else aplic_source_spec(source)


def _device(parent: Node, name: str, entry: MemMapEntry) -> Node:
    """A node ``name@base`` with its ``reg``, from its memory-map entry."""
    node = parent.add_node(f"{name}@{entry.base:x}")
    node.set_u64("reg", entry.base, entry.size)
    return node


def _wire(node: Node, parents: InterruptParents, entry: MemMapEntry) -> None:
    assert entry.irq is not None
    node.set_u32("interrupt-parent", parents.wired)
    node.set_u32("interrupts", *parents.wired_cells(entry.irq))


def _harts_ext(intcs: list[int], irq: int) -> list[int]:
    """``interrupts-extended`` cells naming local interrupt ``irq`` of every hart."""
    return [cell for ph in intcs for cell in (ph, irq)]


def _add_plic(soc: Node, layout: VirtLayout, intcs: list[int]) -> InterruptParents:
    plic = _device(soc, "plic", layout.memmap["plic"])
    plic.set_u32("#interrupt-cells", 1).set_u32("#address-cells", 0)
    plic.set_string("compatible", "sifive,plic-1.0.0", "riscv,plic0")
    plic.set_empty("interrupt-controller")
    ext = []
    for ph in intcs:
        ext += [ph, IRQ_M_EXT, ph, IRQ_S_EXT]
    plic.set_u32("interrupts-extended", *ext)
    plic.set_u32("riscv,ndev", layout.plic_sources - 1)
    return InterruptParents(wired=plic.phandle(), cells_per_irq=1)


def _add_imsic(soc: Node, entry: MemMapEntry, intcs: list[int], irq: int,
               guest_bits: int = 0) -> int:
    imsic = _device(soc, "imsics", entry)
    imsic.set_string("compatible", "riscv,imsics")
    imsic.set_u32("#interrupt-cells", 0)
    imsic.set_empty("interrupt-controller")
    imsic.set_empty("msi-controller")
    imsic.set_u32("interrupts-extended", *_harts_ext(intcs, irq))
    imsic.set_u32("riscv,num-ids", IMSIC_IDS)
    imsic.set_u32("riscv,ipi-id", IMSIC_IPI_ID)
    if guest_bits:  # a hart's S file and its guest files share its pages
        imsic.set_u32("riscv,guest-index-bits", guest_bits)
    return imsic.phandle()


def _add_aplic(soc: Node, entry: MemMapEntry) -> Node:
    aplic = _device(soc, "aplic", entry)
    aplic.set_string("compatible", "riscv,aplic")
    aplic.set_u32("#interrupt-cells", 2)
    aplic.set_empty("interrupt-controller")
    aplic.set_u32("riscv,num-sources", APLIC_SOURCES)
    return aplic


def _add_aia(soc: Node, layout: VirtLayout, intcs: list[int]) -> InterruptParents:
    """The APLIC's M root and S child (QEMU's virt: the M domain delegates every source
    to the S domain, which Linux drives), with IMSICs when ``aia=aplic-imsic``."""
    mm = layout.memmap
    msi = layout.aia == "aplic-imsic"
    imsic_m = imsic_s = None
    if msi:
        imsic_m = _add_imsic(soc, mm["imsic_m"], intcs, IRQ_M_EXT)
        imsic_s = _add_imsic(soc, mm["imsic_s"], intcs, IRQ_S_EXT,
                             guest_index_bits(layout.aia_guests))
    aplic_m = _add_aplic(soc, mm["aplic_m"])
    aplic_s = _add_aplic(soc, mm["aplic_s"])
    for node, irq, imsic in ((aplic_m, IRQ_M_EXT, imsic_m), (aplic_s, IRQ_S_EXT, imsic_s)):
        if imsic is not None:
            node.set_u32("msi-parent", imsic)
        else:
            node.set_u32("interrupts-extended", *_harts_ext(intcs, irq))
    child = aplic_s.phandle()
    aplic_m.set_u32("riscv,children", child)
    # QEMU 7.2 and OpenSBI 1.1 spell it "riscv,delegate"; the binding (and Linux, newer
    # QEMU) "riscv,delegation": QEMU 9.1+ writes both, and so does pemu.
    aplic_m.set_u32("riscv,delegate", child, 1, APLIC_SOURCES)
    aplic_m.set_u32("riscv,delegation", child, 1, APLIC_SOURCES)
    aplic_m.phandle()
    return InterruptParents(wired=child, cells_per_irq=2, msi=imsic_s)


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
        isa = layout.isa
        if layout.aia == "aplic-imsic":
            isa = isa.replace("_sstc", AIA_ISA + "_sstc") if "_sstc" in isa else isa + AIA_ISA
        cpu.set_string("riscv,isa", isa)
        cpu.set_string("riscv,isa-base", "rv64i")
        cpu.set_string("riscv,isa-extensions", *_isa_extensions(layout))
        if layout.cbom_block_size:
            cpu.set_u32("riscv,cbom-block-size", layout.cbom_block_size)
        if layout.cboz_block_size:
            cpu.set_u32("riscv,cboz-block-size", layout.cboz_block_size)
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

    if layout.aia == "none":
        parents = _add_plic(soc, layout, intcs)
    else:
        parents = _add_aia(soc, layout, intcs)

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
        _wire(node, parents, slot)

    test = _device(soc, "test", mm["test"])
    test.set_string("compatible", "sifive,test1", "sifive,test0", "syscon")
    test_ph = test.phandle()

    uart = _device(soc, "serial", mm["uart0"])
    uart.set_string("compatible", "ns16550a")
    uart.set_u32("clock-frequency", UART_CLOCK_HZ)
    _wire(uart, parents, mm["uart0"])

    rtc = _device(soc, "rtc", mm["rtc"])
    rtc.set_string("compatible", "google,goldfish-rtc")
    _wire(rtc, parents, mm["rtc"])

    _pcie_host(soc, mm, parents)
    _add_pmu(root)

    for name, value in (("poweroff", 0x5555), ("reboot", 0x7777)):
        node = root.add_node(name)
        node.set_string("compatible", f"syscon-{name}")
        node.set_u32("regmap", test_ph).set_u32("offset", 0).set_u32("value", value)
    return fdt.to_bytes()


# OpenSBI's SBI PMU events -> the counters that can count them, as QEMU 7.2 writes it
# for pmu-num=16: cycles on mcycle or mhpmcounter3..18, instructions on minstret or
# those, the TLB-miss events on mhpmcounter3..18 (they never advance: target/riscv/pmu.py)
_HPM_COUNTERS = 0x7FFF8  # bits 3..18
PMU_EVENT_COUNTERS = (1, 1, _HPM_COUNTERS | 1 << 0, 2, 2, _HPM_COUNTERS | 1 << 2,
                      0x10019, 0x10019, _HPM_COUNTERS, 0x1001B, 0x1001B, _HPM_COUNTERS,
                      0x10021, 0x10021, _HPM_COUNTERS, 0, 0, 0, 0, 0)


def _add_pmu(root: Node) -> None:
    pmu = root.add_node("pmu")  # /pmu, where QEMU 7.2 puts it (OpenSBI finds it by compatible)
    pmu.set_u32("riscv,event-to-mhpmcounters", *PMU_EVENT_COUNTERS)
    pmu.set_string("compatible", "riscv,pmu")


def _pcie_host(soc: Node, mm: MemoryMap, parents: InterruptParents) -> Node:
    """The generic ECAM host bridge (hw/pci/fdt_node.py), as QEMU's virt describes it:
    INTx through the wired controller (PLIC or APLIC), MSIs to the IMSIC when the
    machine has one."""
    def msi_parent(node: Node) -> None:
        if parents.msi is not None:
            node.set_u32("msi-parent", parents.msi)

    return add_pcie_host_node(soc, f"pci@{mm['pcie_ecam'].base:x}", mm, parents.wired,
                              parents.wired_cells, msi_parent)
