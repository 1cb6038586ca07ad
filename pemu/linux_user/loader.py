"""Load a riscv64 ELF program (and its PT_INTERP) into the guest address space.

Guest address-space layout (the space is 64 GiB, see vmem.GUEST_VA_SIZE):
  as linked     ET_EXEC programs (static busybox links at 0x10000)
  PIE_BASE      ET_DYN main programs
  MMAP_BASE..   the dynamic loader, then mmap() without a hint, growing upwards
  SIGTRAMP      one read+execute page holding the signal-return trampoline
  STACK_TOP     the main thread's stack grows down from here
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pemu.hw.image_file import ImageFileError, open_image

from .elf import (
    EM_RISCV,
    ET_DYN,
    PF_R,
    PF_W,
    PF_X,
    PT_PHDR,
    ElfError,
    ElfFile,
    ProgramHeader,
    parse_elf,
)
from .vmem import PAGE_MASK, PROT_EXEC, PROT_READ, PROT_WRITE, FileRegion, GuestVirtualMemory

PIE_BASE = 0x2_0000_0000
MMAP_BASE = 0x4_0000_0000
SIGTRAMP_ADDR = 0xF_0000_0000
STACK_TOP = 0xF_FFFF_0000
STACK_SIZE = 8 << 20
MAX_PROGRAM_SIZE = 1 << 31  # the largest executable or interpreter file loaded
PAGE = PAGE_MASK + 1


@dataclass
class LoadedProgram:
    path: str
    entry: int  # the program's own entry point (AT_ENTRY)
    start_pc: int  # where the first thread starts: the interpreter's entry if any
    phdr: int
    phnum: int
    phent: int
    interp_base: int  # AT_BASE: 0 for static programs
    start_brk: int


def resolve_path(path: str, prefix: str | None) -> str:
    """qemu's -L rule: an absolute path that exists under the prefix is taken from it."""
    if prefix and path.startswith("/") and path != "/":
        candidate = prefix.rstrip("/") + path
        if os.path.lexists(candidate):
            return candidate
    return path


@contextlib.contextmanager
def _program_file(path: str | int) -> Iterator[tuple[int | None, mmap.mmap | bytes]]:
    """A descriptor open on the program (``path``, or a duplicate of the descriptor
    given) and a read-only view of its bytes, both closed on leaving.  The view is a
    mapping: the loader reads only the pages it looks at (headers, the partial pages
    of segments), and maps the others into the guest (``map_elf``) where reading the
    whole file and copying it cost every program start two page faults per page of
    the file (gcc's cc1 is 56 MB, of which a compile runs a small part)."""
    try:
        fd, size = open_image(path, MAX_PROGRAM_SIZE)
    except ImageFileError as e:
        raise ElfError(str(e)) from None
    try:
        view, mappable = _file_view(fd, size)
    except ElfError:
        os.close(fd)
        raise
    except OSError as e:
        os.close(fd)
        raise ElfError(e.strerror or str(e)) from None
    try:
        yield (fd if mappable else None), view
    finally:
        if not isinstance(view, bytes):  # the mapping
            view.close()
        os.close(fd)


def _file_view(fd: int, size: int) -> tuple[mmap.mmap | bytes, bool]:
    """The file's bytes, and whether its pages can be mapped into the guest: a mapping
    (read where looked at), or, on a file system that cannot map files, the whole file
    read (its segments are then copied)."""
    if not size:
        return b"", False
    try:
        return mmap.mmap(fd, size, mmap.MAP_PRIVATE, mmap.PROT_READ), True
    except OSError:
        data = os.pread(fd, size + 1, 0)
        if len(data) != size:
            raise ElfError("file changed while it was read") from None
        return data, False


def _flags_to_prot(flags: int) -> int:
    return ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
            | (PROT_EXEC if flags & PF_X else 0))


def _span(elf: ElfFile) -> tuple[int, int]:
    loads = elf.loads
    lo = min(p.vaddr for p in loads) & ~PAGE_MASK
    hi = max(p.vaddr + p.memsz for p in loads)
    return lo, (hi + PAGE_MASK) & ~PAGE_MASK


def map_elf(mem: GuestVirtualMemory, elf: ElfFile, bias: int,
            origin: tuple[str, os.stat_result] | None = None, fd: int | None = None) -> None:
    """Place the PT_LOAD segments at ``bias + p_vaddr`` with their final protections:
    the whole pages of a segment's file bytes mapped from ``fd`` (the file ``elf`` was
    read from; private, as the kernel maps them), the rest copied; ``origin`` (path,
    stat) names the file-backed pages in /proc/self/maps."""
    lo, hi = _span(elf)
    if lo + bias < 0x1000 or hi + bias > mem.size:
        raise ElfError("segments lie outside the guest address space")
    # Map the whole span writable first: segments may share a page, and the loader
    # fills read-only ones.  The holes between segments stay reserved like the kernel's.
    mem.map_anonymous(lo + bias, hi - lo, PROT_READ | PROT_WRITE)
    page_prot: dict[int, int] = {}
    shared: set[int] = set()  # pages more than one segment lies on
    for ph in elf.loads:
        first = (ph.vaddr + bias) >> 12
        last = (ph.vaddr + bias + max(ph.memsz, 1) - 1) >> 12
        for page in range(first, last + 1):
            if page in page_prot:
                shared.add(page)
            page_prot[page] = page_prot.get(page, 0) | _flags_to_prot(ph.flags)
    for ph in elf.loads:
        if ph.filesz:
            _place_segment(mem, elf, ph, bias, fd, shared)
    # one call per run of pages with the same protections (cc1: 14,000 pages, a few runs)
    run_start, run_prot = (lo + bias) >> 12, None
    for page in range((lo + bias) >> 12, ((hi + bias) >> 12) + 1):
        prot = page_prot.get(page, 0) if page < (hi + bias) >> 12 else None
        if prot != run_prot:
            if run_prot is not None:
                mem.protect(run_start << 12, (page - run_start) << 12, run_prot)
            run_start, run_prot = page, prot
    if origin is not None:
        path, st = origin
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
        for ph in elf.loads:
            if ph.filesz:
                start = (ph.vaddr + bias) & ~PAGE_MASK
                end = (ph.vaddr + bias + ph.filesz + PAGE_MASK) & ~PAGE_MASK
                mem.file_regions.append(FileRegion(start, end, ph.offset & ~PAGE_MASK, dev,
                                                   st.st_ino, path))


def _place_segment(mem: GuestVirtualMemory, elf: ElfFile, ph: ProgramHeader, bias: int,
                   fd: int | None, shared: set[int]) -> None:
    """One segment's file bytes at ``bias + p_vaddr``: mapped where whole pages of the
    file land on pages of this segment alone, copied elsewhere (the partial pages at
    its ends, whose other bytes are zeros or another segment's)."""
    start = ph.vaddr + bias
    end = start + ph.filesz
    first = (start + PAGE_MASK) & ~PAGE_MASK  # the whole pages of [start, end)
    last = end & ~PAGE_MASK
    while first < last and first >> 12 in shared:
        first += PAGE
    while last > first and (last - PAGE) >> 12 in shared:
        last -= PAGE
    if (fd is None or first >= last or (ph.vaddr - ph.offset) & PAGE_MASK
            or any(first >> 12 <= p < last >> 12 for p in shared)):
        mem.write_initial(start, elf.data[ph.offset : ph.offset + ph.filesz])
        return
    offset = ph.offset + (first - start)
    try:
        mem.map_file(first, last - first, PROT_READ | PROT_WRITE, fd, offset, shared=False)
    except OSError:  # not mappable after all: copied
        mem.write_initial(start, elf.data[ph.offset : ph.offset + ph.filesz])
        return
    if first > start:
        mem.write_initial(start, elf.data[ph.offset : offset])
    if end > last:
        tail = offset + (last - first)
        mem.write_initial(last, elf.data[tail : ph.offset + ph.filesz])


def _phdr_address(elf: ElfFile, bias: int) -> int:
    for ph in elf.phdrs:
        if ph.type == PT_PHDR:
            return ph.vaddr + bias
    for ph in elf.loads:
        if ph.offset <= elf.phoff < ph.offset + ph.filesz:
            return ph.vaddr + (elf.phoff - ph.offset) + bias
    return 0


def _origin(path: str | int, name: str) -> tuple[str, os.stat_result] | None:
    try:
        return name, (os.fstat(path) if isinstance(path, int) else os.stat(path))
    except OSError:
        return None


def load_program(mem: GuestVirtualMemory, path: str | int, prefix: str | None,
                 name: str | None = None, machine: int = EM_RISCV,
                 machine_name: str = "RISC-V") -> LoadedProgram:
    """Load the program (a path, or a descriptor open on it) and its interpreter; raises
    ElfError with a short reason.  ``name``: the program's path as the guest knows it."""
    with _program_file(path) as (fd, data):
        elf = parse_elf(data, machine, machine_name)
        lo, hi = _span(elf)
        bias = PIE_BASE - lo if elf.type == ET_DYN else 0
        map_elf(mem, elf, bias, _origin(path, name or str(path)), fd)
    entry = elf.entry + bias
    start_pc = entry
    interp_base = 0
    if elf.interp is not None:
        interp_path = resolve_path(elf.interp, prefix)
        try:
            with _program_file(interp_path) as (ifd, idata):
                interp = parse_elf(idata, machine, machine_name)
                ilo, ihi = _span(interp)
                if interp.type == ET_DYN:
                    base = mem.find_free(ihi - ilo, MMAP_BASE, MMAP_BASE)
                    if base is None:
                        raise ElfError("no room for the interpreter")
                    ibias = base - ilo
                else:
                    ibias = 0
                map_elf(mem, interp, ibias, _origin(interp_path, elf.interp), ifd)
        except ElfError as e:
            raise ElfError(f"interpreter {elf.interp}: {e}") from None
        interp_base = ilo + ibias
        start_pc = interp.entry + ibias
    return LoadedProgram(path=path, entry=entry, start_pc=start_pc,
                         phdr=_phdr_address(elf, bias), phnum=len(elf.phdrs),
                         phent=elf.phentsize, interp_base=interp_base, start_brk=hi + bias)
