"""ELF64 header parsing for the user-mode loader (layouts from the ELF gABI).

Only what loading needs: the file header, the program headers, and the PT_INTERP
string.  Every offset and size is checked against the file so that a malformed or
truncated file becomes one ``ElfError`` with a short human-readable reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EM_RISCV = 243
ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PT_INTERP = 3
PT_PHDR = 6
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_MACHINE_NAMES = {3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 40: "ARM",
                  62: "x86-64", 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}


class ElfError(Exception):
    """The file cannot be loaded as a riscv64 Linux program; str() says why."""


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class ElfFile:
    data: bytes  # or a read-only mmap of the file (loader._program_file)
    type: int
    entry: int
    phoff: int
    phentsize: int
    phdrs: tuple[ProgramHeader, ...]
    interp: str | None

    @property
    def loads(self) -> list[ProgramHeader]:
        return [p for p in self.phdrs if p.type == PT_LOAD]


def parse_elf(data: bytes, machine_wanted: int = EM_RISCV, machine_name: str = "RISC-V"
              ) -> ElfFile:
    """Parse and validate a 64-bit little-endian ELF executable or shared object for
    the machine ``machine_wanted`` (e_machine)."""
    if len(data) < 4 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if len(data) < _EHDR.size:
        raise ElfError("truncated ELF header")
    (ident, e_type, machine, _version, entry, phoff, _shoff, _flags, _ehsize, phentsize,
     phnum, _shentsize, _shnum, _shstrndx) = _EHDR.unpack_from(data)
    if ident[4] != 2:
        raise ElfError("not a 64-bit ELF file (pemu's guests need ELFCLASS64)")
    if ident[5] != 1:
        raise ElfError("not a little-endian ELF file")
    if machine != machine_wanted:
        name = _MACHINE_NAMES.get(machine, f"machine {machine}")
        raise ElfError(f"ELF file is for {name}, not {machine_name}")
    if e_type not in (ET_EXEC, ET_DYN):
        raise ElfError(f"ELF type {e_type} is neither an executable nor a shared object")
    if phnum == 0:
        raise ElfError("ELF file has no program headers")
    if phentsize != _PHDR.size:
        raise ElfError(f"bad program header size {phentsize}")
    if phoff + phnum * phentsize > len(data):
        raise ElfError("truncated ELF file (program headers past the end)")
    phdrs = tuple(ProgramHeader(*_reorder(_PHDR.unpack_from(data, phoff + i * phentsize)))
                  for i in range(phnum))
    interp = None
    for ph in phdrs:
        if ph.type in (PT_LOAD, PT_INTERP) and ph.offset + ph.filesz > len(data):
            raise ElfError("truncated ELF file (segment data past the end)")
        if ph.type == PT_LOAD and ph.filesz > ph.memsz:
            raise ElfError("bad segment (file size larger than memory size)")
        if ph.type == PT_INTERP:
            raw = data[ph.offset : ph.offset + ph.filesz]
            interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if not interp:
                raise ElfError("empty PT_INTERP")
    if not any(ph.type == PT_LOAD for ph in phdrs):
        raise ElfError("ELF file has no loadable segments")
    return ElfFile(data, e_type, entry, phoff, phentsize, phdrs, interp)


def _reorder(fields: tuple[int, ...]) -> tuple[int, ...]:
    # Elf64_Phdr order is type, flags, offset, vaddr, paddr, filesz, memsz, align
    p_type, p_flags, offset, vaddr, _paddr, filesz, memsz, align = fields
    return p_type, p_flags, offset, vaddr, filesz, memsz, align
