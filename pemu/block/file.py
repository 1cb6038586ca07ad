"""The ``file`` protocol node: a host file or block device, sparse-aware.

Reads and writes go straight from/to the caller's memoryviews with os.preadv and
os.pwritev (no intermediate copies).  Holes are reported with SEEK_DATA/SEEK_HOLE
and discards punch holes with fallocate(2) (through libc, as the os module lacks
FALLOC_FL_PUNCH_HOLE).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat

from pemu.fdpass import open_path
from pemu.qom.registry import Property

from .driver_info import declare
from .errors import BlockError
from .node import BlockNode, Extent

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10
# Linux limits one preadv/pwritev call to IOV_MAX iovecs
_IOV_MAX = 1024


def _load_fallocate():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


def _fallocate_mode(fd: int, mode: int, offset: int, length: int) -> bool:
    if _fallocate is None:
        return False
    if _fallocate(fd, mode, offset, length) == 0:
        return True
    return False


class FileNode(BlockNode):
    """A host file.  ``cache`` picks the flush policy (see docs/BLOCK.md)."""

    format_name = "file"

    def __init__(self, filename: str, read_only: bool = False, cache: str = "writeback",
                 create: bool = False) -> None:
        self.filename = filename
        self.read_only = read_only
        self.cache = cache
        flags = os.O_RDONLY if read_only else os.O_RDWR
        if create:
            flags |= os.O_CREAT | os.O_TRUNC
        flags |= getattr(os, "O_CLOEXEC", 0)
        if "\0" in filename:  # e.g. a backing file name read from an image header
            shown = filename.replace("\0", "\\0")
            raise BlockError(f"Could not open '{shown}': file name contains a NUL byte")
        try:
            self.fd = open_path(filename, flags, 0o644)  # /dev/fdset/N too
        except OSError as e:
            raise BlockError(f"Could not open '{filename}': {e.strerror}", errno=e.errno) from None
        st = os.fstat(self.fd)
        self.is_block_device = stat.S_ISBLK(st.st_mode)
        self._size = self._query_size()
        # writethrough/directsync: every write is durable before it completes
        self.write_through = cache in ("writethrough", "directsync")
        self.no_flush = cache == "unsafe"

    def _query_size(self) -> int:
        if self.is_block_device:
            return os.lseek(self.fd, 0, os.SEEK_END)
        return os.fstat(self.fd).st_size

    @property
    def size(self) -> int:  # type: ignore[override]
        return self._size

    def refresh_size(self) -> int:
        self._size = self._query_size()
        return self._size

    # -- data path ---------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self.fd, length, offset)
            while len(data) < length:
                more = os.pread(self.fd, length - len(data), offset + len(data))
                if not more:
                    # reading past EOF of a file yields zeros, as for a sparse tail
                    return data + bytes(length - len(data))
                data += more
            return data
        except OSError as e:
            raise BlockError(f"{self.filename}: read error: {e.strerror}", errno=e.errno) from None

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        bufs = [b for b in buffers if len(b)]
        try:
            while bufs:
                batch = bufs[:_IOV_MAX]
                want = sum(len(b) for b in batch)
                got = os.preadv(self.fd, batch, offset)
                if got < want:
                    # short read: finish what remains (EOF reads as zeros)
                    offset, bufs = self._advance(bufs, got, offset)
                    if got == 0:
                        for b in bufs:
                            b[:] = bytes(len(b))
                        return
                    continue
                offset += got
                bufs = bufs[len(batch):]
        except OSError as e:
            raise BlockError(f"{self.filename}: read error: {e.strerror}", errno=e.errno) from None

    @staticmethod
    def _advance(bufs: list[memoryview], done: int, offset: int):
        offset += done
        while bufs and done >= len(bufs[0]):
            done -= len(bufs[0])
            bufs = bufs[1:]
        if bufs and done:
            bufs = [bufs[0][done:]] + bufs[1:]
        return offset, bufs

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.writev(offset, [memoryview(data)])

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        self.check_writable()
        bufs = [memoryview(b).cast("B") if not isinstance(b, memoryview) else b
                for b in buffers if len(b)]
        end = offset + sum(len(b) for b in bufs)
        try:
            while bufs:
                batch = bufs[:_IOV_MAX]
                done = os.pwritev(self.fd, batch, offset)
                offset, bufs = self._advance(bufs, done, offset)
            if self.write_through:
                os.fdatasync(self.fd)
        except OSError as e:
            raise BlockError(f"{self.filename}: write error: {e.strerror}", errno=e.errno) from None
        if end > self._size:
            self._size = end

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self.check_writable()
        if length <= 0:
            return
        end = offset + length
        if not self.is_block_device:
            if offset >= self._size:
                # beyond EOF: extending the file creates a hole that reads as zeros
                os.ftruncate(self.fd, end)
                self._size = end
                return
            mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE if may_unmap else \
                _FALLOC_FL_ZERO_RANGE
            if end <= self._size and _fallocate_mode(self.fd, mode, offset, length):
                return
        super().write_zeroes(offset, length, may_unmap)

    def discard(self, offset: int, length: int) -> None:
        if self.read_only or length <= 0 or self.is_block_device:
            return
        length = min(length, self._size - offset)
        if length > 0:
            _fallocate_mode(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)

    def flush(self) -> None:
        if self.no_flush or self.read_only:
            return
        try:
            os.fdatasync(self.fd)
        except OSError as e:
            raise BlockError(f"{self.filename}: flush error: {e.strerror}", errno=e.errno) from None

    def truncate(self, size: int) -> None:
        self.check_writable()
        if self.is_block_device:
            if size > self._size:
                raise BlockError(f"{self.filename}: cannot grow a block device")
            return
        os.ftruncate(self.fd, size)
        self._size = size

    def resize(self, new_size: int, shrink: bool = False) -> None:
        self.truncate(new_size)

    def block_status(self, offset: int, length: int) -> Extent:
        """Data or hole, from SEEK_DATA/SEEK_HOLE (everything is data if unsupported)."""
        # holes carry their offset too: the bytes do live there (qemu-img map shows it)
        if offset >= self._size:
            return Extent(length, allocated=True, zero=True, data=False, offset=offset)
        length = min(length, self._size - offset)
        try:
            data = os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole up to EOF
                return Extent(length, allocated=True, zero=True, data=False, offset=offset)
            return Extent(length, allocated=True, zero=False, data=True, offset=offset)
        if data > offset:
            return Extent(min(length, data - offset), allocated=True, zero=True, data=False,
                          offset=offset)
        try:
            hole = os.lseek(self.fd, offset, os.SEEK_HOLE)
        except OSError:
            hole = offset + length
        return Extent(min(length, max(hole - offset, 1)), allocated=True, zero=False, data=True,
                      offset=offset)

    def allocated_file_size(self) -> int:
        return os.fstat(self.fd).st_blocks * 512

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1


def open_file(filename: str, read_only: bool = False, cache: str = "writeback",
              **_ignored) -> FileNode:
    return FileNode(filename, read_only=read_only, cache=cache)


declare("file", "a host file or block device", protocol=True, open=open_file,
        properties=(Property("filename", "str", description="path of the file"),
                    # pemu takes no image locks: only QEMU's locking=off describes that
                    Property("locking", "str", "off", "image locking", choices=("off",))))
