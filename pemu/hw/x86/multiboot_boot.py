"""Boot a bare-metal kernel through the Multiboot (version 1) protocol.

The header (magic 0x1BADB002, flags, checksum) sits 4-aligned in the first 8 KiB.  With
flag bit 16 ("a.out kludge") it gives the load addresses itself, which is how a flat
binary carries them; otherwise the file must be an ELF.  The kernel starts in 32-bit
flat protected mode with EAX = 0x2BADB002 and EBX = the multiboot information.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pemu.hw.image_file import write_zeros
from pemu.hw.x86.boot_layout import (
    BOOT_INFO_ADDR,
    CMDLINE_ADDR,
    MODULES_ADDR,
    BootEntry,
    BootError,
    WriteFn,
    check_fits,
    write_cmdline,
)
from pemu.hw.x86.e820 import E820Entry
from pemu.hw.x86.elf import is_elf, parse_elf
from pemu.hw.x86.linux_boot import place_initrd
from pemu.hw.x86.pvh_boot import load_segments

MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_BOOTLOADER_MAGIC = 0x2BADB002
FLAG_AOUT_KLUDGE = 1 << 16
SEARCH_LIMIT = 8192
INFO_MEM, INFO_CMDLINE, INFO_MODS, INFO_MMAP = 1 << 0, 1 << 2, 1 << 3, 1 << 6


@dataclass(frozen=True)
class MultibootHeader:
    offset: int
    flags: int
    header_addr: int = 0
    load_addr: int = 0
    load_end_addr: int = 0
    bss_end_addr: int = 0
    entry_addr: int = 0


def find_header(image: bytes) -> MultibootHeader | None:
    for off in range(0, min(len(image), SEARCH_LIMIT) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", image, off)
        if magic == MULTIBOOT_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            if flags & FLAG_AOUT_KLUDGE:
                if off + 32 > len(image):
                    raise BootError("kernel: truncated multiboot header")
                return MultibootHeader(off, flags, *struct.unpack_from("<IIIII", image, off + 12))
            return MultibootHeader(off, flags)
    return None


def build_info(mem_upper_kib: int, cmdline_addr: int, mods: tuple[int, int] | None,
               mmap_addr: int, mmap_len: int) -> bytes:
    flags = INFO_MEM | INFO_CMDLINE | INFO_MMAP | (INFO_MODS if mods else 0)
    info = bytearray(88)
    struct.pack_into("<IIII", info, 0, flags, 640, mem_upper_kib, 0)
    struct.pack_into("<III", info, 16, cmdline_addr, 1 if mods else 0, mods[0] if mods else 0)
    struct.pack_into("<II", info, 44, mmap_len, mmap_addr)
    return bytes(info)


def load_multiboot(image: bytes, hdr: MultibootHeader, initrd: bytes | None, cmdline: str,
                   write: WriteFn, low_ram_end: int, e820: list[E820Entry]) -> BootEntry:
    if hdr.flags & FLAG_AOUT_KLUDGE:
        file_start = hdr.offset - (hdr.header_addr - hdr.load_addr)
        if file_start < 0 or hdr.header_addr < hdr.load_addr:
            raise BootError("kernel: multiboot header_addr is below load_addr")
        load_end = hdr.load_end_addr or hdr.load_addr + len(image) - file_start
        size = load_end - hdr.load_addr
        if size <= 0 or file_start + size > len(image):
            raise BootError("kernel: multiboot load range lies outside the file")
        bss_end = max(hdr.bss_end_addr, load_end)
        check_fits("kernel", hdr.load_addr, bss_end - hdr.load_addr, low_ram_end)
        write(hdr.load_addr, image[file_start:file_start + size])
        write_zeros(write, load_end, bss_end - load_end)
        entry, kernel_end = hdr.entry_addr, bss_end
    elif is_elf(image):
        elf = parse_elf(image)
        kernel_end = load_segments(elf, write, low_ram_end)
        entry = elf.entry
    else:
        raise BootError("kernel: multiboot header without load addresses in a non-ELF file")
    write_cmdline(write, cmdline, 1 << 16)
    mods = None
    if initrd:
        addr = place_initrd(len(initrd), low_ram_end, kernel_end, 0xFFFFFFFF)
        write(addr, initrd)
        write(MODULES_ADDR, struct.pack("<IIII", addr, addr + len(initrd), 0, 0))
        mods = (MODULES_ADDR, 1)
    # mmap entries carry a leading size field (20) before each e820 record
    mmap = b"".join(struct.pack("<I", 20) + e.pack() for e in e820)
    mmap_addr = BOOT_INFO_ADDR + 0x100
    write(mmap_addr, mmap)
    upper = sum(e.size for e in e820 if e.type == 1 and e.addr >= 0x100000 and
                e.addr < 1 << 32) >> 10
    write(BOOT_INFO_ADDR, build_info(upper, CMDLINE_ADDR, mods, mmap_addr, len(mmap)))
    return BootEntry("protected32", entry,
                     {"rax": MULTIBOOT_BOOTLOADER_MAGIC, "rbx": BOOT_INFO_ADDR},
                     f"multiboot, entry 0x{entry:x}")
