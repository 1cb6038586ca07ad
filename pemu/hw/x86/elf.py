"""Just enough ELF to load a kernel: PT_LOAD segments (by physical address) and notes."""

from __future__ import annotations

import struct
from dataclasses import dataclass


class ELFError(ValueError):
    pass


PT_LOAD = 1
PT_NOTE = 4


@dataclass(frozen=True)
class Segment:
    paddr: int
    data: bytes  # file bytes; memsz - len(data) bytes of zeros follow
    memsz: int


@dataclass(frozen=True)
class ELFImage:
    bits: int
    entry: int
    segments: list[Segment]
    notes: list[tuple[str, int, bytes]]  # (name, type, desc)


def is_elf(image: bytes) -> bool:
    return image[:4] == b"\x7fELF"


def parse_elf(image: bytes, what: str = "kernel") -> ELFImage:
    if len(image) < 52 or not is_elf(image):
        raise ELFError(f"{what}: not an ELF file")
    cls, data = image[4], image[5]
    if data != 1 or cls not in (1, 2):
        raise ELFError(f"{what}: only little-endian ELF32/ELF64 is supported")
    bits = 64 if cls == 2 else 32
    try:
        if bits == 64:
            (entry, phoff) = struct.unpack_from("<QQ", image, 24)
            phentsize, phnum = struct.unpack_from("<HH", image, 54)
            ph_fmt = "<IIQQQQQQ"
        else:
            (entry, phoff) = struct.unpack_from("<II", image, 24)
            phentsize, phnum = struct.unpack_from("<HH", image, 42)
            ph_fmt = "<IIIIIIII"
        if phentsize < struct.calcsize(ph_fmt) or phoff + phnum * phentsize > len(image):
            raise ELFError(f"{what}: program headers run past the end of the file")
        segments: list[Segment] = []
        notes: list[tuple[str, int, bytes]] = []
        for i in range(phnum):
            f = struct.unpack_from(ph_fmt, image, phoff + i * phentsize)
            if bits == 64:
                p_type, _flags, off, _vaddr, paddr, filesz, memsz, _align = f
            else:
                p_type, off, _vaddr, paddr, filesz, memsz, _flags, _align = f
            if off + filesz > len(image) or filesz > memsz and p_type == PT_LOAD:
                raise ELFError(f"{what}: segment {i} lies outside the file")
            if p_type == PT_LOAD and memsz:
                segments.append(Segment(paddr, image[off:off + filesz], memsz))
            elif p_type == PT_NOTE:
                notes += _parse_notes(image[off:off + filesz])
    except struct.error:
        raise ELFError(f"{what}: truncated ELF headers") from None
    if not segments:
        raise ELFError(f"{what}: ELF has no loadable segment")
    return ELFImage(bits, entry, segments, notes)


def _parse_notes(blob: bytes) -> list[tuple[str, int, bytes]]:
    out = []
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from("<III", blob, pos)
        pos += 12
        name = blob[pos:pos + namesz].rstrip(b"\0").decode("latin-1")
        pos += (namesz + 3) & ~3
        desc = blob[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        out.append((name, ntype, desc))
    return out
