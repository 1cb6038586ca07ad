"""The virt board is a table: its address space and its device tree both follow
VIRT_MEMMAP, the one place its addresses and interrupt numbers are written."""

from __future__ import annotations

import pytest

from pemu.hw.riscv.memmap import VIRT_MEMMAP, MemMapEntry, pcie_high_above
from pemu.hw.riscv.virt import VirtBoard
from pemu.hw.riscv.virt_fdt import build_virt_fdt
from pemu.qemuopts.config import SystemConfig
from tests.fdt.dtb_reader import cells, read_dtb

# memory-map entry -> the node name the DT gives it (QEMU's names)
NODE_NAMES = {"dram": "/memory", "plic": "/soc/plic", "clint": "/soc/clint",
              "uart0": "/soc/serial", "rtc": "/soc/rtc", "test": "/soc/test"}


def make_board(tmp_path, smp: int, ram_size: int) -> VirtBoard:
    kernel = tmp_path / "kernel.elf"
    kernel.write_bytes(b"\x7fELF" + bytes(60))  # only looked at, never loaded here
    cfg = SystemConfig()
    cfg.smp, cfg.ram_size, cfg.bios, cfg.kernel = smp, ram_size, "none", str(kernel)
    return VirtBoard(cfg)


def reg(node: dict[str, bytes]) -> tuple[int, int]:
    hi_base, lo_base, hi_size, lo_size = cells(node["reg"])
    return hi_base << 32 | lo_base, hi_size << 32 | lo_size


@pytest.mark.parametrize("smp,ram_size", [(1, 128 << 20), (4, 5 << 30)])
def test_device_tree_describes_the_memory_map(tmp_path, smp, ram_size):
    board = make_board(tmp_path, smp, ram_size)
    mm = board.memmap
    nodes = read_dtb(build_virt_fdt(board.layout(None)))
    plic_phandle = cells(nodes[f"/soc/plic@{mm['plic'].base:x}"]["phandle"])[0]

    def check(path: str, entry: MemMapEntry) -> None:
        node = nodes[f"{path}@{entry.base:x}"]
        assert reg(node) == (entry.base, entry.size), path
        if entry.irq is not None:
            assert cells(node["interrupts"]) == [entry.irq], path
            assert cells(node["interrupt-parent"]) == [plic_phandle], path

    for name, path in NODE_NAMES.items():
        check(path, mm[name])
    virtio = mm["virtio"]
    for n in range(virtio.count):
        check("/soc/virtio_mmio", virtio.slot(n))
    check_pcie_host(nodes, mm, plic_phandle)
    described = {path.rsplit("@", 1)[0] for path in nodes if "@" in path
                 and not path.startswith("/cpus")}
    assert described == set(NODE_NAMES.values()) | {"/soc/virtio_mmio", "/soc/pci"}
    assert mm["dram"].size == ram_size


def check_pcie_host(nodes: dict, mm, plic_phandle: int) -> None:
    """ECAM at its entry; ranges are the PIO, MMIO and high MMIO windows; the
    interrupt map sends each (slot, pin) to the PLIC source the swizzle gives."""
    ecam = mm["pcie_ecam"]
    node = nodes[f"/soc/pci@{ecam.base:x}"]
    assert reg(node) == (ecam.base, ecam.size)
    r = cells(node["ranges"])
    windows = [(r[i] >> 24, r[i + 3] << 32 | r[i + 4], r[i + 5] << 32 | r[i + 6])
               for i in range(0, len(r), 7)]
    assert windows == [(1, mm["pcie_pio"].base, mm["pcie_pio"].size),
                       (2, mm["pcie_mmio"].base, mm["pcie_mmio"].size),
                       (3, mm["pcie_mmio_high"].base, mm["pcie_mmio_high"].size)]
    imap = cells(node["interrupt-map"])
    entries = [imap[i:i + 6] for i in range(0, len(imap), 6)]
    assert len(entries) == 16
    for phys_hi, _, _, pin, parent, irq in entries:
        assert parent == plic_phandle
        assert irq == ecam.irq + ((phys_hi >> 11) + pin - 1) % 4


@pytest.mark.parametrize("smp", [1, 3])
def test_address_space_follows_the_memory_map(tmp_path, smp):
    board = make_board(tmp_path, smp, 64 << 20)
    for name, entry in board.memmap.items():
        for slot in range(entry.count):
            where = entry.slot(slot)
            region = board.space.find(where.base, 1)
            assert region is not None, name
            assert (region.base, region.size) == (where.base, where.size), name


def test_table_keeps_qemus_addresses():
    # tests elsewhere compare guests with QEMU's virt: these are its numbers
    assert VIRT_MEMMAP["uart0"] == MemMapEntry(0x1000_0000, 0x100, irq=10)
    assert VIRT_MEMMAP["virtio"].slot(7) == MemMapEntry(0x1000_8000, 0x1000, irq=8)
    assert VIRT_MEMMAP["dram"].base == 0x8000_0000
    assert list(VIRT_MEMMAP) == sorted(VIRT_MEMMAP, key=lambda n: VIRT_MEMMAP[n].base)
    with pytest.raises(ValueError, match="fixed size"):
        VIRT_MEMMAP.sized(uart0=0x1000)


def test_high_pcie_window_moves_above_large_ram():
    # QEMU's rule: the 16 GiB window at 16 GiB, unless RAM reaches it
    small = pcie_high_above(VIRT_MEMMAP.sized(dram=1 << 30, plic=0x1000))
    assert small["pcie_mmio_high"] == MemMapEntry(0x4_0000_0000, 0x4_0000_0000)
    big = pcie_high_above(VIRT_MEMMAP.sized(dram=16 << 30, plic=0x1000))
    assert big["pcie_mmio_high"].base == 0x8_0000_0000
    assert big["pcie_mmio_high"].base >= big["dram"].end
