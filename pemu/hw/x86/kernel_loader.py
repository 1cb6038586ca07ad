"""-kernel on x86: recognise the format and hand it to the right boot protocol."""

from __future__ import annotations

from pemu.hw.x86.boot_layout import BootEntry, BootError, WriteFn
from pemu.hw.x86.e820 import E820Entry
from pemu.hw.x86.elf import ELFError, is_elf, parse_elf
from pemu.hw.x86.linux_boot import is_bzimage, load_bzimage
from pemu.hw.x86.multiboot_boot import find_header, load_multiboot
from pemu.hw.x86.pvh_boot import load_pvh, pvh_entry


def load_kernel(image: bytes, initrd: bytes | None, cmdline: str, write: WriteFn,
                low_ram_end: int, e820: list[E820Entry]) -> BootEntry:
    """Load by format: bzImage, ELF with a PVH note, or multiboot (ELF or flat binary)."""
    if is_bzimage(image):
        return load_bzimage(image, initrd, cmdline, write, low_ram_end, e820)
    if is_elf(image):
        try:
            elf = parse_elf(image)
        except ELFError as e:
            raise BootError(str(e)) from None
        if pvh_entry(elf) is not None:
            return load_pvh(elf, initrd, cmdline, write, low_ram_end, e820)
    mb = find_header(image)
    if mb is not None:
        return load_multiboot(image, mb, initrd, cmdline, write, low_ram_end, e820)
    if is_elf(image):
        raise BootError("kernel: ELF file with neither a PVH note nor a multiboot header")
    raise BootError("kernel: not a bzImage, an ELF vmlinux with a PVH note, or a multiboot "
                    "image")
