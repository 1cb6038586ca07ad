"""Loading what ``-kernel``/``-initrd`` name onto an AArch64 board, as QEMU's
hw/arm/boot.c places them.

* an arm64 ``Image`` (magic "ARM\\x64" at 56): at RAM + 2 MiB + text_offset (the kernel
  wants a 2 MiB-aligned base), entered with x0 = the DTB's address;
* an ELF file: its segments at their physical addresses, entered at e_entry (bare-metal
  programs; x0 = the DTB too);
* anything else: raw, at RAM + 0x80000 (QEMU's KERNEL64_LOAD_ADDR).

The initrd goes at RAM + min(RAM/2, 128 MiB) (above the kernel if that is larger), the
DTB at the start of RAM: Linux finds both through x0 and /chosen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pemu.hw.riscv.boot import BootError, Write, is_elf, load_elf

ARM64_MAGIC = b"ARM\x64"
EM_AARCH64 = 183
IMAGE_BASE = 0x20_0000
RAW_OFFSET = 0x8_0000
INITRD_MAX_OFFSET = 128 << 20
ALIGN_2M = 0x20_0000


@dataclass
class KernelPlacement:
    entry: int
    low: int
    high: int  # one past the kernel's memory (its image_size)


def is_arm64_image(data: bytes) -> bool:
    return len(data) >= 64 and data[56:60] == ARM64_MAGIC


def load_kernel(data: bytes, write: Write, ram_base: int, ram_size: int) -> KernelPlacement:
    if is_elf(data):
        img = load_elf(data, "kernel", write, ram_base, ram_size, (EM_AARCH64, "AArch64"))
        return KernelPlacement(img.entry, img.low, img.high)
    if is_arm64_image(data):
        text_offset, image_size = struct.unpack_from("<QQ", data, 8)
        if image_size == 0:  # kernels before 3.17: text_offset 0x80000, size unknown
            text_offset, image_size = 0x8_0000, len(data)
        addr = ram_base + IMAGE_BASE + text_offset
        size = max(image_size, len(data))
    else:
        addr, size = ram_base + RAW_OFFSET, len(data)
    if addr + size > ram_base + ram_size:
        raise BootError(f"kernel does not fit in RAM: 0x{addr:x}+0x{size:x} (use a larger -m)")
    write(addr, data)
    return KernelPlacement(addr, addr, addr + size)


def initrd_address(kernel: KernelPlacement, ram_base: int, ram_size: int, size: int) -> int:
    addr = ram_base + min(ram_size // 2, INITRD_MAX_OFFSET)
    if addr < kernel.high:
        addr = (kernel.high + ALIGN_2M - 1) & ~(ALIGN_2M - 1)
    if addr + size > ram_base + ram_size:
        raise BootError(f"initrd does not fit in RAM: 0x{addr:x}+0x{size:x} (use a larger -m)")
    return addr


__all__ = ["BootError", "KernelPlacement", "initrd_address", "is_arm64_image", "load_kernel"]
