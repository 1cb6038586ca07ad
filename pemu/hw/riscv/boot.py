"""Loading firmware, kernels and initrds into a RISC-V board's RAM, and the boot ROM.

Images:
  * ELF (RV64, ``EM_RISCV``): every PT_LOAD segment at its physical address;
  * a Linux ``Image`` (header magic ``RISCV\\0\\0\\0`` at 48 or ``RSC\\x05`` at 56):
    copied as is at the load address;
  * firmware given with ``-bios`` may also be a raw binary (OpenSBI's fw_dynamic.bin).
Anything else given as ``-kernel`` is refused with a message.

The boot ROM at 0x1000 holds a six-instruction reset vector, then the address to
jump to, the DTB address and OpenSBI's ``struct fw_dynamic_info`` (version 2): the
same contract as QEMU's virt MROM, written from the OpenSBI header's field list.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from pemu.hw.image_file import write_zeros

ELF_MAGIC = b"\x7fELF"
EM_RISCV = 243
PT_LOAD = 1
IMAGE_MAGIC = b"RISCV\0\0\0"  # offset 48 (deprecated but still written)
IMAGE_MAGIC2 = b"RSC\x05"  # offset 56

FW_DYNAMIC_MAGIC = 0x4942534F  # "OSBI"
FW_DYNAMIC_VERSION = 2
NEXT_MODE_S = 1
NEXT_MODE_M = 3

Write = Callable[[int, bytes], None]


class BootError(Exception):
    """An image that cannot be loaded; the message is for the user."""


@dataclass
class LoadedImage:
    entry: int
    low: int
    high: int  # one past the last byte loaded
    symbols: dict[str, int]


def _check_range(what: str, addr: int, size: int, ram_base: int, ram_size: int) -> None:
    if addr < ram_base or addr + size > ram_base + ram_size:
        raise BootError(f"{what} does not fit in RAM: 0x{addr:x}+0x{size:x} is outside "
                        f"0x{ram_base:x}-0x{ram_base + ram_size - 1:x} (use a larger -m)")


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def is_linux_image(data: bytes) -> bool:
    return len(data) >= 64 and (data[48:56] == IMAGE_MAGIC or data[56:60] == IMAGE_MAGIC2)


def load_elf(data: bytes, what: str, write: Write, ram_base: int, ram_size: int,
             machine: tuple[int, str] = (EM_RISCV, "RISC-V")) -> LoadedImage:
    """The PT_LOAD segments at their physical addresses; ``machine``: the e_machine
    wanted, and its name for the message (other boards share this loader)."""
    if len(data) < 64 or data[4] != 2 or data[5] != 1:
        raise BootError(f"{what}: not a 64-bit little-endian ELF file")
    (e_type, e_machine, _, e_entry, e_phoff, e_shoff, _, _, e_phentsize, e_phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_machine != machine[0]:
        raise BootError(f"{what}: ELF file is not for {machine[1]} (e_machine {e_machine})")
    low, high = 1 << 64, 0
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + 56 > len(data):
            raise BootError(f"{what}: truncated ELF program header table")
        p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", data, off)
        if p_type != PT_LOAD or not p_memsz:
            continue
        if p_offset + p_filesz > len(data) or p_filesz > p_memsz:
            raise BootError(f"{what}: truncated ELF segment {i}")
        _check_range(f"{what} segment {i}", p_paddr, p_memsz, ram_base, ram_size)
        write(p_paddr, data[p_offset:p_offset + p_filesz])
        if p_memsz > p_filesz:
            write_zeros(write, p_paddr + p_filesz, p_memsz - p_filesz)
        low, high = min(low, p_paddr), max(high, p_paddr + p_memsz)
    if high == 0:
        raise BootError(f"{what}: ELF file has nothing to load")
    return LoadedImage(e_entry, low, high, _elf_symbols(data, e_shoff, e_shentsize, e_shnum))


def _elf_symbols(data: bytes, shoff: int, shentsize: int, shnum: int) -> dict[str, int]:
    """Global symbol values from .symtab (HTIF needs tohost/fromhost); {} if absent."""
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + 64 > len(data):
            return {}
        sections.append(struct.unpack_from("<IIQQQQIIQQ", data, off))
    symbols: dict[str, int] = {}
    for sh in sections:
        if sh[1] != 2 or sh[6] >= len(sections):  # SHT_SYMTAB, sh_link -> strtab
            continue
        strtab = sections[sh[6]]
        str_off, str_size = strtab[4], strtab[5]
        for pos in range(sh[4], sh[4] + sh[5] - 23, 24):
            name_off, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, pos)
            if not name_off or name_off >= str_size:
                continue
            start = str_off + name_off
            end = data.find(b"\0", start)
            if end > 0:
                symbols[data[start:end].decode(errors="replace")] = value
    return symbols


def load_kernel(data: bytes, addr: int, write: Write, ram_base: int, ram_size: int
                ) -> LoadedImage:
    """A ``-kernel``: ELF at its own addresses, a Linux Image at ``addr``."""
    if is_elf(data):
        return load_elf(data, "kernel", write, ram_base, ram_size)
    if is_linux_image(data):
        image_size = struct.unpack_from("<Q", data, 16)[0] or len(data)
        _check_range("kernel", addr, max(image_size, len(data)), ram_base, ram_size)
        write(addr, data)
        return LoadedImage(addr, addr, addr + max(image_size, len(data)), {})
    raise BootError("kernel: not a RISC-V Linux Image or an ELF file")


def load_firmware(data: bytes, addr: int, write: Write, ram_base: int, ram_size: int
                  ) -> LoadedImage:
    """A ``-bios``: ELF at its own addresses, anything else raw at ``addr``."""
    if is_elf(data):
        return load_elf(data, "bios", write, ram_base, ram_size)
    _check_range("bios", addr, len(data), ram_base, ram_size)
    write(addr, data)
    return LoadedImage(addr, addr, addr + len(data), {})


# -- the reset vector --------------------------------------------------------------------

def _itype(opcode: int, funct3: int, rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode


T0, A0, A1, A2 = 5, 10, 11, 12
CSR_MHARTID = 0xF14
RESET_VECTOR_WORDS = 6  # instructions before the data words
START_ADDR_OFFSET = 24
FDT_ADDR_OFFSET = 32
FW_DYNAMIC_INFO_OFFSET = 40


def reset_vector(start: int, fdt_addr: int, next_addr: int, next_mode: int,
                 boot_hart: int = 0) -> bytes:
    """MROM contents: jump to ``start`` with a0 = hartid, a1 = DTB, a2 = fw_dynamic_info."""
    code = [
        0x17 | (T0 << 7),  # auipc t0, 0
        _itype(0x13, 0, A2, T0, FW_DYNAMIC_INFO_OFFSET),  # addi a2, t0, info
        0x73 | (2 << 12) | (A0 << 7) | (CSR_MHARTID << 20),  # csrr a0, mhartid
        _itype(0x03, 3, A1, T0, FDT_ADDR_OFFSET),  # ld a1, fdt(t0)
        _itype(0x03, 3, T0, T0, START_ADDR_OFFSET),  # ld t0, start(t0)
        _itype(0x67, 0, 0, T0, 0),  # jr t0
    ]
    rom = struct.pack(f"<{len(code)}I", *code)
    rom += struct.pack("<QQ", start, fdt_addr)
    rom += struct.pack("<6Q", FW_DYNAMIC_MAGIC, FW_DYNAMIC_VERSION, next_addr, next_mode,
                       0, boot_hart)
    return rom
