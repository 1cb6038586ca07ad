"""Guest virtual memory for Linux user mode: direct host addressing.

The whole guest address space [0, GUEST_VA_SIZE) is one host reservation
(PROT_NONE, MAP_NORESERVE); guest address A lives at host address ``base + A``.
Guest mmap/mprotect become host mmap(MAP_FIXED)/mprotect inside the reservation, so
the native backend can access guest memory with a single add, and files mapped by
the guest are real host mappings.

Translated code never touches a page without asking first: ``readable`` and
``writable_fast`` are per-page byte tables that the python backend checks inline
(the native backend will use host faults instead).  ``writable_fast`` is cleared on
pages that hold translated code, so stores there take the slow path, which
invalidates the stale translations (self-modifying and freshly loaded code).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pemu.accel.tcg.backend import x86_64
from pemu.accel.tcg.backend.x86_64.host_atomics import host_atomics

PAGE_SIZE = 4096
PAGE_SHIFT = 12
PAGE_MASK = PAGE_SIZE - 1
GUEST_VA_BITS = 36
GUEST_VA_SIZE = 1 << GUEST_VA_BITS
N_PAGES = GUEST_VA_SIZE >> PAGE_SHIFT

PROT_READ = mmap.PROT_READ
PROT_WRITE = mmap.PROT_WRITE
PROT_EXEC = mmap.PROT_EXEC
PROT_NONE = 0
_MASK64 = (1 << 64) - 1
_HOST_ATOMICS = x86_64.host_supported()  # cmpxchg is a host ``lock cmpxchg``

_libc = ctypes.CDLL(None, use_errno=True)  # the C library already in this process
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = ctypes.c_void_p(-1).value
MAP_FIXED = 0x10
MAP_NORESERVE = 0x4000
MADV_DONTNEED = 4


class GuestFault(Exception):
    """A guest access to a page that does not allow it (becomes SIGSEGV/SIGBUS)."""

    def __init__(self, addr: int, access: str, mapped: bool) -> None:
        super().__init__(f"guest {access} fault at 0x{addr:x} ({'accerr' if mapped else 'maperr'})")
        self.addr = addr
        self.access = access  # "r", "w" or "x"
        self.mapped = mapped  # SEGV_ACCERR if True, SEGV_MAPERR otherwise


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass(frozen=True)
class FileRegion:
    """Guest pages that hold a file's bytes copied by the ELF loader (not a host file
    mapping): what /proc/self/maps names them by, as the kernel's mapping would."""

    start: int
    end: int
    offset: int
    dev: str  # "major:minor" in hex, as /proc/PID/maps shows it
    inode: int
    path: str


class GuestVirtualMemory:
    """The guest's address space and its page permissions."""

    def __init__(self, size: int = GUEST_VA_SIZE) -> None:
        self.size = size
        # mmap.mmap(prot=PROT_NONE) would give a read-only buffer, so reserve with libc and
        # view the reservation through a ctypes array (writable once pages are mapped).
        base = _libc.mmap(None, size, PROT_NONE,
                          mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if base == MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"reserving the guest address space: {os.strerror(err)}")
        self.base: int = base
        self._region = (ctypes.c_char * size).from_address(base)
        self.mem = memoryview(self._region).cast("B")
        n_pages = size >> PAGE_SHIFT
        # One byte per guest page each; anonymous mmaps are zeroed lazily by the kernel,
        # where 16 MiB bytearrays would be zero-filled at every process start.
        self.prot = _page_table(n_pages)  # guest-visible PROT_* bits; 0 also for unmapped
        self.mapped = _page_table(n_pages)  # 1 where the guest has a mapping
        self.readable = _page_table(n_pages)  # fast-path tables for translated code
        self.writable_fast = _page_table(n_pages)
        self.code_pages: set[int] = set()  # pages with translations
        self.file_regions: list[FileRegion] = []
        self.lock = threading.RLock()
        # Called with a page number when a store hits a page holding translated code.
        self.on_code_write: Callable[[int], None] | None = None
        # the tagged address ABI's PMLEN (linux_user/tagged_addr.py): system calls
        # ignore this many top bits of the pointers they are given (``untagged``)
        self.tag_bits = 0

    # -- mapping primitives (the syscall layer builds mmap/munmap/brk on these) ------
    def _check_range(self, addr: int, length: int) -> None:
        if addr & PAGE_MASK or length <= 0 or addr < 0 or addr + length > self.size:
            raise ValueError(f"guest range 0x{addr:x}+0x{length:x} outside the address space")

    def map_anonymous(self, addr: int, length: int, prot: int, shared: bool = False) -> None:
        """Fresh zero pages at [addr, addr+length), replacing what was there."""
        length = _page_align(length)
        self._check_range(addr, length)
        kind = mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE
        with self.lock:
            ret = _libc.mmap(self.base + addr, length, prot | PROT_READ | PROT_WRITE,
                             kind | mmap.MAP_ANONYMOUS | MAP_FIXED, -1, 0)
            if ret == MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._set_pages(addr, length, prot, mapped=True)
            self._forget_file_regions(addr, length)

    def map_file(self, addr: int, length: int, prot: int, fd: int, offset: int,
                 shared: bool) -> None:
        """Map a host file at a fixed guest address (offset page aligned)."""
        length = _page_align(length)
        self._check_range(addr, length)
        flags = (mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE) | MAP_FIXED
        host_prot = prot | PROT_READ | (0 if shared and not prot & PROT_WRITE else PROT_WRITE)
        with self.lock:
            ret = _libc.mmap(self.base + addr, length, host_prot, flags, fd, offset)
            if ret == MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._set_pages(addr, length, prot, mapped=True)
            self._forget_file_regions(addr, length)

    def unmap(self, addr: int, length: int) -> None:
        length = _page_align(length)
        self._check_range(addr, length)
        with self.lock:
            ret = _libc.mmap(self.base + addr, length, PROT_NONE,
                             mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                             -1, 0)
            if ret == MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            self._set_pages(addr, length, 0, mapped=False)
            self._forget_file_regions(addr, length)

    def protect(self, addr: int, length: int, prot: int) -> None:
        length = _page_align(length)
        self._check_range(addr, length)
        with self.lock:
            self._set_pages(addr, length, prot, mapped=None)

    def _forget_file_regions(self, addr: int, length: int) -> None:
        if self.file_regions:
            self.file_regions = [r for r in self.file_regions
                                 if r.end <= addr or r.start >= addr + length]

    def _set_pages(self, addr: int, length: int, prot: int, mapped: bool | None) -> None:
        first, n = addr >> PAGE_SHIFT, length >> PAGE_SHIFT
        end = first + n
        # Slice assignments keep large mappings (thread stacks, malloc arenas) cheap.
        if mapped is not None:
            self.mapped[first:end] = (b"\1" if mapped else b"\0") * n
        flags = self.mapped[first:end]
        if 0 not in flags:
            self.prot[first:end] = bytes([prot]) * n
            self.readable[first:end] = (b"\1" if prot & PROT_READ else b"\0") * n
            self.writable_fast[first:end] = (b"\1" if prot & PROT_WRITE else b"\0") * n
        else:
            for page in range(first, end):
                prot_page = prot if self.mapped[page] else 0
                self.prot[page] = prot_page
                self.readable[page] = 1 if prot_page & PROT_READ else 0
                self.writable_fast[page] = 1 if prot_page & PROT_WRITE else 0
        if self.code_pages:
            hits = ([p for p in self.code_pages if first <= p < end]
                    if len(self.code_pages) < n else
                    [p for p in range(first, end) if p in self.code_pages])
            for page in hits:
                self.writable_fast[page] = 0
                if mapped is False and self.on_code_write:
                    self.on_code_write(page)

    def is_mapped(self, addr: int, length: int) -> bool:
        first = addr >> PAGE_SHIFT
        last = (addr + max(length, 1) - 1) >> PAGE_SHIFT
        if addr < 0 or last >= len(self.mapped):
            return False
        return self.mapped.find(b"\0", first, last + 1) < 0  # C-speed (ranges of MiBs)

    def any_mapped(self, addr: int, length: int) -> bool:
        """Some page of [addr, addr + length) is mapped (a range in the space)."""
        return self.mapped.find(b"\1", addr >> PAGE_SHIFT,
                                (addr + length + PAGE_SIZE - 1) >> PAGE_SHIFT) >= 0

    def find_free(self, length: int, hint: int, floor: int) -> int | None:
        """Lowest free page-aligned range of ``length`` at or above max(hint, floor)."""
        n = _page_align(length) >> PAGE_SHIFT
        page = self.mapped.find(bytes(n), max(hint, floor) >> PAGE_SHIFT)  # C-speed scan
        return None if page < 0 else page << PAGE_SHIFT

    # -- translated-code bookkeeping ---------------------------------------------------
    def mark_code_page(self, page: int) -> None:
        with self.lock:
            self.code_pages.add(page)
            self.writable_fast[page] = 0

    def clear_code_page(self, page: int) -> None:
        with self.lock:
            self.code_pages.discard(page)
            if page < len(self.prot) and self.prot[page] & PROT_WRITE:
                self.writable_fast[page] = 1

    # -- checked access (slow paths, syscalls, the ELF loader) ---------------------------
    def _check_access(self, addr: int, size: int, bit: int, access: str) -> None:
        if addr < 0 or addr + size > self.size:
            raise GuestFault(addr, access, False)
        first, last = addr >> PAGE_SHIFT, (addr + size - 1) >> PAGE_SHIFT
        bad = self.prot[first : last + 1].translate(_DENIED[bit]).find(1)
        if bad >= 0:
            page = first + bad
            fault_addr = max(addr, page << PAGE_SHIFT)
            raise GuestFault(fault_addr, access, bool(self.mapped[page]))

    def check(self, addr: int, size: int, write: bool) -> None:
        """Raise GuestFault unless the guest may read (or write) all of [addr, addr+size)."""
        if size > 0:
            if write:
                self._check_access(addr, size, PROT_WRITE, "w")
            else:
                self._check_access(addr, size, PROT_READ, "r")

    def note_host_write(self, addr: int, size: int) -> None:
        """The host kernel wrote guest memory directly: drop stale translations there."""
        if size > 0:
            self._note_code_write(addr, size)

    def load_slow(self, addr: int, size: int) -> int:
        self._check_access(addr, size, PROT_READ, "r")
        return int.from_bytes(self.mem[addr : addr + size], "little")

    def store_slow(self, addr: int, size: int, value: int) -> None:
        self._check_access(addr, size, PROT_WRITE, "w")
        self._note_code_write(addr, size)
        self.mem[addr : addr + size] = (value & ((1 << (size * 8)) - 1)).to_bytes(size, "little")

    def load_for_store(self, addr: int, size: int) -> int:
        """The read half of an atomic read-modify-write: it faults as a store."""
        self._check_access(addr, size, PROT_WRITE, "w")
        return int.from_bytes(self.mem[addr : addr + size], "little")

    def cmpxchg(self, addr: int, size: int, expected: int, new: int) -> int:
        """Store ``new`` if the aligned ``size`` bytes at ``addr`` hold ``expected``, as
        one host ``lock cmpxchg``; returns what they held (the store half of
        accel/tcg/guest_atomics.py's updates).  ``lock`` alone is not enough: it orders
        this process's threads, but a MAP_SHARED page is also written by other
        processes (a process-shared mutex or semaphore across fork).  A host without
        the instruction gets the compare and store under ``lock`` (atomic among this
        process's threads only)."""
        self._check_access(addr, size, PROT_WRITE, "w")
        self._note_code_write(addr, size)
        if _HOST_ATOMICS and host_atomics().supports(size):
            return host_atomics().cmpxchg(self.base + addr, size, expected, new)
        with self.lock:
            old = int.from_bytes(self.mem[addr : addr + size], "little")
            if old == expected:
                self.mem[addr : addr + size] = \
                    (new & ((1 << (size * 8)) - 1)).to_bytes(size, "little")
            return old

    def load_bytes(self, addr: int, size: int) -> bytes:
        """``size`` bytes in one copy (a vector load); faults as ``load_slow``."""
        self._check_access(addr, size, PROT_READ, "r")
        return bytes(self.mem[addr : addr + size])

    def store_bytes(self, addr: int, data: bytes) -> bool:
        """``data`` in one copy (a vector store), after checking all of it: a fault
        writes nothing.  Always True (user memory has no devices to fall back for)."""
        self._check_access(addr, len(data), PROT_WRITE, "w")
        self._note_code_write(addr, len(data))
        self.mem[addr : addr + len(data)] = data
        return True

    def _note_code_write(self, addr: int, size: int) -> None:
        if not self.code_pages:
            return
        for page in range(addr >> PAGE_SHIFT, ((addr + size - 1) >> PAGE_SHIFT) + 1):
            if page in self.code_pages and self.on_code_write is not None:
                self.on_code_write(page)

    def fetch(self, addr: int, size: int) -> int:
        """Instruction fetch: needs PROT_EXEC."""
        self._check_access(addr, size, PROT_EXEC, "x")
        return int.from_bytes(self.mem[addr : addr + size], "little")

    def untagged(self, addr: int) -> int:
        """A pointer a system call was given, as the kernel's untagged_addr() makes it
        under the tagged address ABI (linux_user/tagged_addr.py): the top
        ``tag_bits`` bits replaced by copies of the bit below them."""
        n = self.tag_bits
        if not n:
            return addr
        addr = addr << n & _MASK64
        return (addr - (addr >> 63 << 64)) >> n & _MASK64

    def read(self, addr: int, size: int) -> bytes:
        """Checked copy out of guest memory (syscall arguments)."""
        if size == 0:
            return b""
        addr = self.untagged(addr)
        self._check_access(addr, size, PROT_READ, "r")
        return bytes(self.mem[addr : addr + size])

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Checked copy into guest memory (syscall results)."""
        if len(data) == 0:
            return
        addr = self.untagged(addr)
        self._check_access(addr, len(data), PROT_WRITE, "w")
        self._note_code_write(addr, len(data))
        self.mem[addr : addr + len(data)] = data

    def write_initial(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Write ignoring guest protections (the loader filling read-only segments)."""
        self._check_range(addr & ~PAGE_MASK, _page_align((addr & PAGE_MASK) + len(data)))
        if not self.is_mapped(addr, len(data)):
            raise GuestFault(addr, "w", False)
        self._note_code_write(addr, len(data))
        self.mem[addr : addr + len(data)] = data

    def read_cstring(self, addr: int, limit: int = 1 << 20) -> bytes:
        addr = self.untagged(addr)
        out = bytearray()
        while len(out) < limit:
            chunk_end = min(((addr >> PAGE_SHIFT) + 1) << PAGE_SHIFT, addr + limit - len(out))
            chunk = self.read(addr, chunk_end - addr)
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
            addr = chunk_end
        raise GuestFault(addr, "r", True)

    def host_address(self, addr: int) -> int:
        return self.base + addr


# translate() tables: protection byte -> 1 where the access bit is missing
_DENIED = {bit: bytes(0 if v & bit else 1 for v in range(256))
           for bit in (PROT_READ, PROT_WRITE, PROT_EXEC)}


def _page_table(n_pages: int) -> mmap.mmap:
    return mmap.mmap(-1, n_pages, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _page_align(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK
