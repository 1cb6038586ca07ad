"""The code buffer: one memfd mapped twice, never writable and executable at once.

Generated code is written through a read-write view and executed from a separate
read-execute view of the same pages (W^X).  The buffer is bounded: a fixed head
holds the dispatcher, which lives as long as the buffer; blocks are bump-allocated
after it, and when the space runs out the owner flushes every block and ``reset``
starts allocating again from the head.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref

from pemu.accel.tcg.host_fds import moved_up

# The symbols already loaded into this process (libc among them).  Not
# ctypes.util.find_library: on Linux it runs ldconfig in a child process, which cost
# more start-up time than everything else this module does.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_FIXED = 0x10


PAGE = 4096


def _copy_range(src: int, dst: int, start: int, end: int, mapped_at: int) -> None:
    """Bytes [start, end) of memfd ``src`` into memfd ``dst`` at the same offsets: in
    the kernel where it can (the pages need not be mapped here: a forked process that
    read them through its own mapping would fault each one in), else from the mapping
    of ``src`` at ``mapped_at`` (where offset 0 is)."""
    done = start
    try:
        while done < end:
            n = os.copy_file_range(src, dst, end - done, done, done)
            if n == 0:
                break
            done += n
    except OSError:
        pass
    if done < end:
        view = memoryview((ctypes.c_char * end).from_address(mapped_at)).cast("B")
        while done < end:
            done += os.pwrite(dst, view[done:end], done)


def _memfd() -> int:
    # at host_fds.FD_FLOOR and up: the guest's descriptors are the host process's
    return moved_up(os.memfd_create("pemu-tcg-code", os.MFD_CLOEXEC))


class CodeBufferFull(Exception):
    """No room for another block: flush the cache and translate again."""


def _release(owned: dict) -> None:
    """Unmap both views and close the memfds (``close`` or garbage collection)."""
    for view in ("rw", "rx"):
        _libc.munmap(owned[view], owned["size"])
    for _start, fd in owned["segments"]:
        os.close(fd)


class CodeBuffer:
    def __init__(self, size: int, head_size: int = 4096) -> None:
        self.size = size
        self.fd = _memfd()
        os.ftruncate(self.fd, size)
        self.rw = self._map(mmap.PROT_READ | mmap.PROT_WRITE)
        self.rx = self._map(mmap.PROT_READ | mmap.PROT_EXEC)
        self.head_size = head_size
        self.used = head_size
        # A buffer nobody references any more (an engine a test dropped) gives its
        # memfd and address space back; nothing can be running its code by then.
        # the memfds behind the views, by the offset each starts at (one, unless a
        # fork froze the buffer: see freeze)
        self._segments: list[tuple[int, int]] = [(0, self.fd)]
        self._owned = {"rw": self.rw, "rx": self.rx, "size": size,
                       "segments": self._segments}
        self._finalizer = weakref.finalize(self, _release, self._owned)
        self._frozen_below = 0  # pages below this are shared with a forked process
        self._private_from = 0  # pages from here on are this process's alone
        self.copies = 0  # whole copies made (thaw), for tests and measurements

    def _map(self, prot: int) -> int:
        addr = _libc.mmap(None, self.size, prot, mmap.MAP_SHARED, self.fd, 0)
        if addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"mapping the code buffer: {os.strerror(err)}")
        return addr

    # -- fork ---------------------------------------------------------------------------
    # Both mappings are MAP_SHARED, so a forked child and its parent see the same pages.
    # Neither may write them after the fork: the parent goes on installing blocks and
    # patching chained jumps, and a child that saw that ran old blocks whose exits
    # jumped to code that did not exist in its own buffer (Debian's dpkg-deb failing in
    # a quarter of its runs with a warm translation cache, docs/LINUX_USER.md).  So a
    # fork freezes the pages for both sides (``freeze``), and each side copies only
    # when it writes: a new block (above the blocks of the fork) goes to a private
    # tail, a few pages, and only a write into the old blocks (a chain patched into
    # one, an invalidation) copies the whole buffer (``thaw``).  A side that never
    # does that never copies: the binfmt server between refreshes, a program whose code
    # is preinstalled (the backend defers its chains: runtime.link_group), a shell's
    # child that only execs.  The freeze comes before the fork, under the backend's
    # lock, so that no write slips in between.

    def freeze(self) -> None:
        """The pages are shared with a forked process: writes copy first.  Called in
        the parent just before the fork (no thread may write the buffer until the fork
        is done) and in the child after it."""
        self._frozen_below = max(self._frozen_below, self.used & ~(PAGE - 1))
        self._private_from = self.size

    def frozen_at(self, offset: int) -> bool:
        """A write at ``offset`` would copy the whole buffer first (``thaw``)."""
        return offset < self._frozen_below and offset < self._private_from

    def thaw(self) -> None:
        """Move to a private copy of the whole buffer, at the same addresses (the code
        and the dispatcher hold absolute addresses of both views)."""
        if self._private_from == 0:
            return
        self._take_private(0)
        self._frozen_below = 0
        self.copies += 1

    def _writable(self, offset: int) -> None:
        if offset >= self._private_from:
            return
        if offset < self._frozen_below:
            self.thaw()
        else:  # above the blocks of the fork: a private tail from there on
            self._take_private(self._frozen_below)

    def _take_private(self, start: int) -> None:
        """Map a private copy of the buffer from page offset ``start`` to its end."""
        fd = _memfd()
        try:
            os.ftruncate(fd, self.size)
            bounds = [*self._segments[1:], (self.size, -1)]
            for (begin, src), (end, _next) in zip(self._segments, bounds, strict=True):
                begin, end = max(begin, start), min(end, self.used)
                if begin < end:
                    _copy_range(src, fd, begin, end, self.rx)
            for addr, prot in ((self.rw, mmap.PROT_READ | mmap.PROT_WRITE),
                               (self.rx, mmap.PROT_READ | mmap.PROT_EXEC)):
                got = _libc.mmap(addr + start, self.size - start, prot,
                                 mmap.MAP_SHARED | _MAP_FIXED, fd, start)
                if got != addr + start:
                    raise OSError(ctypes.get_errno(), "remapping the code buffer")
        except OSError:
            os.close(fd)
            raise
        while self._segments and self._segments[-1][0] >= start:
            os.close(self._segments.pop()[1])
        self._segments.append((start, fd))
        self.fd = self._segments[0][1]
        self._private_from = start

    def write(self, offset: int, code: bytes) -> None:
        self._writable(offset)
        ctypes.memmove(self.rw + offset, code, len(code))

    def allocate(self, size: int, align: int = 16) -> int:
        """Reserve ``size`` bytes for a block; returns the offset."""
        start = (self.used + align - 1) & ~(align - 1)
        if start + size > self.size:
            raise CodeBufferFull()
        self.used = start + size
        return start

    def reset(self) -> None:
        self.used = self.head_size

    def exec_address(self, offset: int) -> int:
        return self.rx + offset

    def offset_of(self, address: int) -> int:
        return address - self.rx

    def patch_rel32(self, field_offset: int, target_offset: int) -> None:
        """Point a jump's rel32 at a target, with one aligned 32-bit store (atomic for
        threads running that code; the field must be 4-byte aligned)."""
        self._writable(field_offset)
        ctypes.c_int32.from_address(self.rw + field_offset).value = (
            target_offset - (field_offset + 4))

    def write_u64(self, offset: int, value: int) -> None:
        self._writable(offset)
        ctypes.c_uint64.from_address(self.rw + offset).value = value

    def read(self, offset: int, size: int) -> bytes:
        return ctypes.string_at(self.rx + offset, size)

    def close(self) -> None:
        self._finalizer()  # runs _release once
