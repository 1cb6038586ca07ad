"""Replacing part of a host mapping in place (MAP_FIXED), which Python's mmap cannot.

Guest RAM is one anonymous mmap whose address translated code, TLBs and memoryviews
keep (RAMBlock.host_addr, .view).  A mapped-ram restore swaps ranges of it for private
mappings of a snapshot file, and giving such pages back (balloon, loadvm) must swap
them for anonymous memory again: madvise(MADV_DONTNEED) on a private file mapping
would bring the file's contents back instead of zeros.  Same address, other backing:
every pointer into the block stays valid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_FIXED = 0x10
_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE


def _map_fixed(addr: int, length: int, flags: int, fd: int, offset: int) -> None:
    got = _libc.mmap(addr, length, _PROT_RW, flags | _MAP_FIXED, fd, offset)
    if got == _MAP_FAILED or got != addr:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap at 0x{addr:x}+0x{length:x}: {os.strerror(err)}")


def map_file_private(addr: int, length: int, fd: int, offset: int) -> None:
    """Pages [addr, addr+length) become a copy-on-write view of the file at ``offset``:
    read lazily on first touch, shared with every other private mapping of the file
    until written, and a write never reaches the file."""
    _map_fixed(addr, length, mmap.MAP_PRIVATE, fd, offset)


def map_shared(addr: int, length: int, fd: int, offset: int) -> None:
    """Pages [addr, addr+length) become the file's (or memfd's) own pages at
    ``offset``: every store reaches the file, every other process mapping it sees it
    (guest RAM that outlives its pemu process: CPR, pemu/memory/shared_ram.py)."""
    _map_fixed(addr, length, mmap.MAP_SHARED, fd, offset)


def map_anonymous(addr: int, length: int) -> None:
    """Pages [addr, addr+length) become fresh zero-filled anonymous memory."""
    _map_fixed(addr, length, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)


__all__ = ["map_anonymous", "map_file_private", "map_shared"]
