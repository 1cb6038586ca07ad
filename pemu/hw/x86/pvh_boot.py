"""Boot an ELF kernel (vmlinux) through its PVH entry point (Xen's hvm_start_info ABI).

A vmlinux built with CONFIG_PVH carries a Xen ELF note of type 18
(XEN_ELFNOTE_PHYS32_ENTRY) holding a 32-bit physical entry point.  The loader copies
the PT_LOAD segments to their physical addresses and enters that point in 32-bit flat
protected mode, paging off, with EBX = the physical address of ``hvm_start_info``.
"""

from __future__ import annotations

import struct

from pemu.hw.image_file import write_zeros
from pemu.hw.x86.boot_layout import (
    BOOT_INFO_ADDR,
    MODULES_ADDR,
    BootEntry,
    BootError,
    WriteFn,
    check_fits,
    write_cmdline,
)
from pemu.hw.x86.e820 import E820Entry
from pemu.hw.x86.elf import ELFImage
from pemu.hw.x86.linux_boot import place_initrd

XEN_ELFNOTE_PHYS32_ENTRY = 18
HVM_START_MAGIC = 0x336EC578
HVM_START_INFO_VERSION = 1  # version 1 adds the memory map
START_INFO_FMT = "<IIIIQQQQII"  # 56 bytes
MODLIST_ENTRY_FMT = "<QQQQ"  # paddr, size, cmdline_paddr, reserved
MEMMAP_ENTRY_FMT = "<QQII"  # addr, size, type, reserved
MEMMAP_ADDR = BOOT_INFO_ADDR + 0x100


def pvh_entry(elf: ELFImage) -> int | None:
    for name, ntype, desc in elf.notes:
        if name == "Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY and len(desc) >= 4:
            return struct.unpack_from("<I", desc)[0]
    return None


def build_start_info(cmdline_addr: int, modlist_addr: int, nr_modules: int,
                     memmap_addr: int, memmap_entries: int) -> bytes:
    return struct.pack(START_INFO_FMT, HVM_START_MAGIC, HVM_START_INFO_VERSION, 0, nr_modules,
                       modlist_addr if nr_modules else 0, cmdline_addr, 0, memmap_addr,
                       memmap_entries, 0)


def build_memmap(e820: list[E820Entry]) -> bytes:
    return b"".join(struct.pack(MEMMAP_ENTRY_FMT, e.addr, e.size, e.type, 0) for e in e820)


def load_segments(elf: ELFImage, write: WriteFn, ram_end: int) -> int:
    """Copy PT_LOAD segments to their physical addresses; returns the end of the image."""
    end = 0
    for seg in elf.segments:
        check_fits("kernel segment", seg.paddr, seg.memsz, ram_end)
        write(seg.paddr, seg.data)
        write_zeros(write, seg.paddr + len(seg.data), seg.memsz - len(seg.data))
        end = max(end, seg.paddr + seg.memsz)
    return end


def load_pvh(elf: ELFImage, initrd: bytes | None, cmdline: str, write: WriteFn,
             low_ram_end: int, e820: list[E820Entry]) -> BootEntry:
    entry = pvh_entry(elf)
    if entry is None:
        raise BootError("kernel: ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")
    kernel_end = load_segments(elf, write, low_ram_end)
    cmd_addr, _ = write_cmdline(write, cmdline, 1 << 16)
    nr_modules = 0
    if initrd:
        addr = place_initrd(len(initrd), low_ram_end, kernel_end, 0xFFFFFFFF)
        write(addr, initrd)
        write(MODULES_ADDR, struct.pack(MODLIST_ENTRY_FMT, addr, len(initrd), 0, 0))
        nr_modules = 1
    write(MEMMAP_ADDR, build_memmap(e820))
    write(BOOT_INFO_ADDR, build_start_info(cmd_addr, MODULES_ADDR, nr_modules, MEMMAP_ADDR,
                                           len(e820)))
    return BootEntry("protected32", entry, {"rbx": BOOT_INFO_ADDR},
                     f"ELF, PVH entry 0x{entry:x}")
