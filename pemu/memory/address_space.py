"""Guest physical address space: RAM blocks and MMIO regions.

A board builds one ``AddressSpace`` for memory (and, on x86, a second one for I/O
ports).  RAM is a host mmap so that accelerators can hand it to native code or to KVM
as is, and devices can move data into it with ``os.preadv`` through ``view()``
without copies.  MMIO regions dispatch to a device's ``mmio_read``/``mmio_write``.

Every access from a device or an accelerator goes through bounds checks here: a guest
that points DMA outside RAM gets ``GuestMemoryError``, which the caller turns into a
device error or a guest fault, never a host exception that kills the VM.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import threading
from dataclasses import dataclass, field
from typing import Protocol

from pemu.memory.code_writes import CodeWriteMarks
from pemu.memory.host_mapping import map_anonymous, map_file_private, map_shared
from pemu.memory.shared_ram import RamBacking


class GuestMemoryError(Exception):
    """An access to guest physical memory that no RAM or MMIO region backs."""

    def __init__(self, addr: int, size: int, why: str = "unbacked address") -> None:
        super().__init__(f"{why}: guest physical 0x{addr:x} (+{size})")
        self.addr = addr
        self.size = size


class MMIOHandler(Protocol):
    """What a device region answers. ``offset`` is relative to the region base."""

    def mmio_read(self, offset: int, size: int) -> int: ...

    def mmio_write(self, offset: int, size: int, value: int) -> None: ...


@dataclass
class RAMBlock:
    """Host-backed guest RAM: one anonymous (or file) mmap."""

    name: str
    base: int
    size: int
    read_only: bool = False
    mem: mmap.mmap = field(init=False, repr=False)
    host_addr: int = field(init=False)

    def __post_init__(self) -> None:
        self.mem = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.host_addr = ctypes.addressof(ctypes.c_char.from_buffer(self.mem))
        self.view = memoryview(self.mem)
        # Dirty logging (live migration): page numbers written since the last harvest,
        # or None when nobody logs.  The softmmu marks a page when it installs a write
        # TLB entry for it, devices when they take a view of it (see migration/dirty.py).
        self.dirty: set[int] | None = None
        # Which pages were written since system mode last compared code on them
        # (code_writes.py), or None when no translator keeps code snapshots of it.
        self.code_writes: CodeWriteMarks | None = None
        # A mapped-ram restore backs ranges of the block with a snapshot file
        # (host_mapping.py); giving pages back must then map anonymous zeros over them.
        self.file_backed = False
        # A memory backend in shared memory (memfd, file share=on: shared_ram.py), and
        # whether the block maps it now.  A pemu waiting for an incoming migration
        # attaches it only when the load starts: its own reset must not write the
        # kernel into RAM that a cpr-reboot file still holds.
        self.backing: RamBacking | None = None
        self.backing_attached = False

    def attach_backing(self, backing: RamBacking | None = None) -> None:
        """Map the backing (``backing`` replaces the configured one: a memfd received
        from the previous pemu) over the whole block, contents as they are."""
        if backing is not None and backing is not self.backing:
            if self.backing is not None:
                self.backing.close()
            self.backing = backing
        b = self.backing
        assert b is not None and b.size >= self.size
        if b.shared:
            map_shared(self.host_addr, self.size, b.fd, 0)
        else:
            map_file_private(self.host_addr, self.size, b.fd, 0)
        self.file_backed = not b.shared  # DONTNEED would bring the file's contents back
        self.backing_attached = True
        self.note_unknown_writes()

    @property
    def ram_in_place(self) -> bool:
        """Whether another process mapping the backing sees exactly this block's RAM
        (no private or snapshot-file pages over it): what CPR needs."""
        return (self.backing is not None and self.backing.shared
                and self.backing_attached and not self.file_backed)

    def _own_pages(self, start: int, length: int) -> None:
        """[start, start+length) reads as zero and costs no memory, in the block's own
        kind of memory (anonymous, or the shared backing with a hole punched)."""
        if self.code_writes is not None:
            self.code_writes.note_write(start, length)
        b = self.backing
        if b is not None and b.shared:
            if not self.backing_attached:
                self.attach_backing()
            elif self.file_backed:  # snapshot-file pages mapped over part of the memfd
                map_shared(self.host_addr + start, length, b.fd, start)
            self.mem.madvise(mmap.MADV_REMOVE, start, length)  # frees the memfd pages
        elif self.file_backed:
            map_anonymous(self.host_addr + start, length)
        else:
            self.mem.madvise(mmap.MADV_DONTNEED, start, length)  # private anonymous

    def map_file(self, offset: int, length: int, fd: int, file_offset: int) -> None:
        """Back [offset, offset+length) by a private, lazily read view of the file."""
        map_file_private(self.host_addr + offset, length, fd, file_offset)
        self.file_backed = True
        self.note_write(offset, length)

    def zero_all(self) -> None:
        """Every page reads as zero and costs no memory (the start of a load)."""
        self._own_pages(0, self.size)
        self.file_backed = False

    def mark_dirty(self, offset: int, size: int) -> None:
        dirty = self.dirty
        if dirty is not None and size > 0:
            dirty.update(range(offset >> 12, ((offset + size - 1) >> 12) + 1))

    def track_code_writes(self) -> CodeWriteMarks:
        """The block's code-write marks (code_writes.py), made on first use."""
        if self.code_writes is None:
            self.code_writes = CodeWriteMarks(self.size)
        return self.code_writes

    def note_write(self, offset: int, size: int) -> None:
        """[offset, offset+size) was written: dirty logging and code-write marks."""
        if self.dirty is not None:
            self.mark_dirty(offset, size)
        if self.code_writes is not None:
            self.code_writes.note_write(offset, size)

    def note_unknown_writes(self) -> None:
        """Any page may have been written (a restore, a loader writing the view)."""
        if self.code_writes is not None:
            self.code_writes.note_unknown()

    def contains(self, addr: int, size: int) -> bool:
        return self.base <= addr and addr + size <= self.base + self.size

    def discard(self, offset: int, size: int) -> int:
        """Give the host pages of [offset, offset+size) back to the host kernel (balloon,
        free page reporting): they read as zero afterwards and cost no memory until
        written again.  Only the whole host pages inside the range go; returns how
        many bytes went."""
        page = mmap.PAGESIZE
        start = max(0, (offset + page - 1) & ~(page - 1))
        end = min(self.size, (offset + size) & ~(page - 1))
        if self.read_only or end <= start:
            return 0  # a ROM's contents are not the guest's to throw away
        self._own_pages(start, end - start)
        self.mark_dirty(start, end - start)  # migration must send the zeros
        return end - start

    def offset_of(self, view: memoryview) -> int | None:
        """Where a (writable) view of this block begins, or None if it is not one."""
        if view.readonly or not len(view):
            return None
        host = ctypes.addressof(ctypes.c_char.from_buffer(view))
        offset = host - self.host_addr
        return offset if 0 <= offset and offset + len(view) <= self.size else None


@dataclass
class MMIORegion:
    name: str
    base: int
    size: int
    handler: MMIOHandler

    def contains(self, addr: int, size: int) -> bool:
        return self.base <= addr and addr + size <= self.base + self.size


class AddressSpace:
    """A sorted, non-overlapping map of RAM and MMIO regions."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._bases: list[int] = []
        self._regions: list[RAMBlock | MMIORegion] = []
        self.ram_blocks: list[RAMBlock] = []
        self.lock = threading.RLock()

    # -- building -----------------------------------------------------------
    def _insert(self, region: RAMBlock | MMIORegion) -> None:
        if region.size <= 0:
            raise ValueError(f"region {region.name}: size must be positive")
        for other in self._regions:
            if region.base < other.base + other.size and other.base < region.base + region.size:
                raise ValueError(
                    f"region {region.name} at 0x{region.base:x} overlaps {other.name} "
                    f"at 0x{other.base:x}"
                )
        i = bisect.bisect(self._bases, region.base)
        self._bases.insert(i, region.base)
        self._regions.insert(i, region)

    def add_ram(self, name: str, base: int, size: int, read_only: bool = False) -> RAMBlock:
        block = RAMBlock(name, base, size, read_only)
        self._insert(block)
        self.ram_blocks.append(block)
        return block

    def add_mmio(self, name: str, base: int, size: int, handler: MMIOHandler) -> MMIORegion:
        region = MMIORegion(name, base, size, handler)
        self._insert(region)
        return region

    def regions(self) -> list[RAMBlock | MMIORegion]:
        return list(self._regions)

    # -- lookup -------------------------------------------------------------
    def find(self, addr: int, size: int = 1) -> RAMBlock | MMIORegion | None:
        i = bisect.bisect(self._bases, addr) - 1
        if i < 0:
            return None
        region = self._regions[i]
        return region if region.contains(addr, size) else None

    def find_ram(self, addr: int, size: int) -> RAMBlock:
        region = self.find(addr, size)
        if not isinstance(region, RAMBlock):
            raise GuestMemoryError(addr, size, "not RAM")
        return region

    # -- access for devices (DMA) and slow paths ------------------------------
    def view(self, addr: int, size: int) -> memoryview:
        """A zero-copy window on guest RAM; raises GuestMemoryError outside RAM.  On ROM
        it is a copy: a device's DMA write there is dropped (as on real boards), so a
        guest cannot aim a disk read at the reset vector and change what the next
        reset runs."""
        block = self.find_ram(addr, size)
        off = addr - block.base
        if block.read_only:
            return memoryview(bytearray(block.view[off : off + size]))
        if block.dirty is not None:  # a device may write through the view
            block.mark_dirty(off, size)
        if block.code_writes is not None:  # ... even after the next fence
            block.code_writes.note_view(off, size)
        return block.view[off : off + size]

    def writable_view(self, addr: int, size: int) -> memoryview:
        """``view`` for a device that will write: ROM is refused (GuestMemoryError), as a
        DMA write there must never change what the next reset runs."""
        block = self.find_ram(addr, size)
        if block.read_only:
            raise GuestMemoryError(addr, size, "read-only memory")
        return self.view(addr, size)

    def discard(self, addr: int, size: int) -> int:
        """Drop the host pages behind guest RAM [addr, addr+size) (see
        ``RAMBlock.discard``); a range that is not all RAM is left alone (returns 0)."""
        region = self.find(addr, size)
        if not isinstance(region, RAMBlock) or size <= 0:
            return 0
        return region.discard(addr - region.base, size)

    def discard_view(self, view: memoryview) -> int:
        """``discard`` for a writable view that ``view()`` gave (a virtqueue buffer)."""
        for block in self.ram_blocks:
            offset = block.offset_of(view)
            if offset is not None:
                return block.discard(offset, len(view))
        return 0

    def read(self, addr: int, size: int) -> bytes:
        block = self.find_ram(addr, size)  # (not view(): a copy writes nothing)
        off = addr - block.base
        return bytes(block.view[off : off + size])

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        block = self.find_ram(addr, len(data))
        off = addr - block.base
        block.view[off : off + len(data)] = data
        block.note_write(off, len(data))

    def load(self, addr: int, size: int) -> int:
        """A CPU-style access of 1, 2, 4 or 8 bytes to RAM or MMIO."""
        region = self.find(addr, size)
        if region is None:
            raise GuestMemoryError(addr, size)
        off = addr - region.base
        if isinstance(region, RAMBlock):
            return int.from_bytes(region.view[off : off + size], "little")
        return region.handler.mmio_read(off, size) & ((1 << (size * 8)) - 1)

    def store(self, addr: int, size: int, value: int) -> None:
        region = self.find(addr, size)
        if region is None:
            raise GuestMemoryError(addr, size)
        off = addr - region.base
        value &= (1 << (size * 8)) - 1
        if isinstance(region, RAMBlock):
            if region.read_only:
                return  # ROM: writes are ignored, as on real boards
            region.view[off : off + size] = value.to_bytes(size, "little")
            region.note_write(off, size)
        else:
            region.handler.mmio_write(off, size, value)
