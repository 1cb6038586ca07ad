"""Guest RAM in shared memory that can outlive its pemu process (QEMU's CPR modes).

``-object memory-backend-memfd,id=ram0,size=1G`` and ``-object
memory-backend-file,id=ram0,size=1G,mem-path=/dev/shm/vm,share=on`` put the guest's
RAM in a memfd or a file instead of anonymous memory.  A new pemu process can then
take the very same pages over: by receiving the descriptor (cpr-transfer, over a UNIX
socket with SCM_RIGHTS) or by opening the same file again (cpr-reboot).  Guest RAM is
never copied.

A ``RamBacking`` is the host object behind one RAM block: it owns the descriptor
(kept open for as long as pemu runs, so that a later live update can hand it on).
The block maps it over its own address range (``RAMBlock.attach_backing``), so
every pointer into the block (TLBs, translated code, device views) stays valid.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

MEMFD = "memfd"
FILE = "file"


class BackingError(Exception):
    """A memory backend that cannot back the RAM; the message is for the user."""


@dataclass
class RamBacking:
    kind: str  # MEMFD or FILE
    fd: int
    size: int
    path: str = ""  # FILE: the mem-path (cpr-reboot reopens it)
    shared: bool = True  # FILE with share=off: a private copy-on-write view

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def create_memfd(name: str, size: int) -> RamBacking:
    """A new zero-filled memfd of ``size`` bytes (nothing is allocated until written)."""
    fd = os.memfd_create(f"pemu-{name}", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return RamBacking(MEMFD, fd, size)


def open_file(path: str, size: int, share: bool) -> RamBacking:
    """``mem-path``: an existing file (its contents are the RAM's), a new file, or a
    directory (QEMU: an unlinked file is created in it).  Grown to ``size``, never
    shrunk (a file kept from before a reboot holds the guest's RAM)."""
    if os.path.isdir(path):
        fd = os.open(path, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return RamBacking(FILE, fd, size, path=os.path.realpath(path), shared=share)


def adopt_fd(fd: int, size: int, what: str) -> RamBacking:
    """A descriptor received from another pemu (cpr-transfer): it must be a memory
    object (memfd, tmpfs or a regular file) of at least ``size`` bytes, else it cannot
    be this block's RAM."""
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise BackingError(f"{what}: bad descriptor ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise BackingError(f"{what}: the descriptor is not a memfd or a file")
    if st.st_size < size:
        raise BackingError(f"{what}: the memory object has {st.st_size} bytes, the RAM "
                           f"block needs {size}")
    return RamBacking(MEMFD, fd, size)


__all__ = ["FILE", "MEMFD", "BackingError", "RamBacking", "adopt_fd", "create_memfd",
           "open_file"]
