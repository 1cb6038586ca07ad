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


def _memfd() -> int:
    # at host_fds.FD_FLOOR and up: the guest's descriptors are the host process's
    return moved_up(os.memfd_create("pemu-tcg-code", os.MFD_CLOEXEC))


class CodeBufferFull(Exception):
    """No room for another block: flush the cache and translate again."""


def _release(owned: dict[str, int]) -> None:
    """Unmap both views and close the memfd (``close`` or garbage collection)."""
    for view in ("rw", "rx"):
        _libc.munmap(owned[view], owned["size"])
    os.close(owned["fd"])


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
        self._owned = {"rw": self.rw, "rx": self.rx, "size": size, "fd": self.fd}
        self._finalizer = weakref.finalize(self, _release, self._owned)
        self._fork_copy: int | None = None  # memfd of the next fork child's copy
        # a copy made ahead of the fork (``prepare_fork_copy``): memfd, and the changes
        # count and bump pointer it was made at (stale once either moved on)
        self._changes = 0
        self._spare: tuple[int, int, int] | None = None

    def _map(self, prot: int) -> int:
        addr = _libc.mmap(None, self.size, prot, mmap.MAP_SHARED, self.fd, 0)
        if addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"mapping the code buffer: {os.strerror(err)}")
        return addr

    # -- fork ---------------------------------------------------------------------------
    # Both mappings are MAP_SHARED, so a forked child must get its own copy.  The copy
    # is taken in the parent *before* the fork (``copy_for_fork``): a copy the child
    # took after it would race with the parent, which goes on installing blocks and
    # patching chained jumps into the shared pages meanwhile; the child then ran old
    # blocks whose exits jumped to code that did not exist in its copy.  With a warm
    # translation cache the parent patches within a millisecond of the fork, so that
    # was Debian's dpkg-deb failing in a quarter of its runs (docs/LINUX_USER.md).

    def prepare_fork_copy(self) -> None:
        """Copy the buffer now, for the next fork, if nothing writes it until then (the
        binfmt server's, between two programs): the copy is then off the fork's path.
        Best effort: a failed copy is made at the fork."""
        if self._spare_fits():
            return
        self._drop_spare()
        try:
            fd = self._copy()
        except OSError:
            return
        self._spare = (fd, self._changes, self.used)

    def _spare_fits(self) -> bool:
        return self._spare is not None and self._spare[1:] == (self._changes, self.used)

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            os.close(spare[0])

    def copy_for_fork(self) -> None:
        """In the parent, just before a fork (no thread may write the buffer until
        the fork is done): a private copy of the buffer as it is now, for the child."""
        if self._spare_fits():
            self._fork_copy, self._spare = self._spare[0], None
            return
        self._drop_spare()
        self._fork_copy = self._copy()

    def _copy(self) -> int:
        fd = _memfd()
        try:
            os.ftruncate(fd, self.size)
            os.pwrite(fd, ctypes.string_at(self.rx, self.used), 0)
        except OSError:
            os.close(fd)
            raise
        return fd

    def drop_fork_copy(self) -> None:
        """In the parent after the fork: the child has the copy, the parent keeps its
        own buffer."""
        fd, self._fork_copy = self._fork_copy, None
        if fd is not None:
            os.close(fd)

    def use_fork_copy(self) -> None:
        """In the child after the fork: run from the copy, at the same addresses (the
        code and the dispatcher hold absolute addresses of both views)."""
        if self._spare is not None:  # the parent's, for its next child
            os.close(self._spare[0])
            self._spare = None
        fd, self._fork_copy = self._fork_copy, None
        if fd is None:  # a fork nobody announced (copy_for_fork): copy what is there
            self.copy_for_fork()
            fd, self._fork_copy = self._fork_copy, None
        for addr, prot in ((self.rw, mmap.PROT_READ | mmap.PROT_WRITE),
                           (self.rx, mmap.PROT_READ | mmap.PROT_EXEC)):
            got = _libc.mmap(addr, self.size, prot, mmap.MAP_SHARED | _MAP_FIXED, fd, 0)
            if got != addr:
                raise OSError(ctypes.get_errno(), "remapping the code buffer after fork")
        os.close(self.fd)
        self.fd = self._owned["fd"] = fd

    def write(self, offset: int, code: bytes) -> None:
        self._changes += 1
        ctypes.memmove(self.rw + offset, code, len(code))

    def allocate(self, size: int, align: int = 16) -> int:
        """Reserve ``size`` bytes for a block; returns the offset."""
        start = (self.used + align - 1) & ~(align - 1)
        if start + size > self.size:
            raise CodeBufferFull()
        self.used = start + size
        return start

    def reset(self) -> None:
        self._changes += 1
        self.used = self.head_size

    def exec_address(self, offset: int) -> int:
        return self.rx + offset

    def offset_of(self, address: int) -> int:
        return address - self.rx

    def patch_rel32(self, field_offset: int, target_offset: int) -> None:
        """Point a jump's rel32 at a target, with one aligned 32-bit store (atomic for
        threads running that code; the field must be 4-byte aligned)."""
        self._changes += 1
        ctypes.c_int32.from_address(self.rw + field_offset).value = (
            target_offset - (field_offset + 4))

    def write_u64(self, offset: int, value: int) -> None:
        self._changes += 1
        ctypes.c_uint64.from_address(self.rw + offset).value = value

    def read(self, offset: int, size: int) -> bytes:
        return ctypes.string_at(self.rx + offset, size)

    def close(self) -> None:
        self._drop_spare()
        self._finalizer()  # runs _release once
