"""BlockBackend: what a device holds.  Bounds, read-only, drive options, queueing."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any

from .aio import AioContext, Callback
from .drivers import probe_head
from .errors import BlockError
from .node import BlockNode


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True if every byte is zero (bytes comparison is a memcmp; memoryview's is not)."""
    b = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B").tobytes()
    return not b or (b[0] == 0 and b == bytes(len(b)))


class BlockBackend:
    """The device-facing side of a drive.

    ``discard``: "ignore" (default, as QEMU) or "unmap" to pass guest discards down.
    ``detect_zeroes``: "off", "on" (zero writes become write_zeroes) or "unmap"
    (and may also unmap, when discard=unmap).
    """

    def __init__(self, node: BlockNode, read_only: bool | None = None, discard: str = "ignore",
                 detect_zeroes: str = "off", throttle: Any = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.node = node
        self.read_only = node.read_only if read_only is None else (read_only or node.read_only)
        self.discard_mode = discard
        self.detect_zeroes = detect_zeroes
        self.throttle = throttle
        self._on_close = on_close
        self._aio: AioContext | None = None
        # image drivers keep caches: one request at a time, whichever thread sends it
        self._lock = threading.RLock()
        # set by open_drive when the format was probed as raw: the guest must not turn
        # the image into something that probes as another format (as QEMU restricts)
        self.guard_probe = False

    @property
    def size(self) -> int:
        return self.node.size

    # -- checks --------------------------------------------------------------
    def _check(self, offset: int, length: int, write: bool) -> None:
        if self.node is None:
            raise BlockError("drive is closed", errno=errno.ENOMEDIUM)
        if offset < 0 or length < 0 or offset + length > self.node.size:
            raise BlockError(f"request {offset}+{length} is beyond the end of the drive "
                             f"({self.node.size} bytes)", errno=errno.EIO)
        if write and self.read_only:
            raise BlockError("drive is read-only", errno=errno.EROFS)
        if self.throttle is not None:
            self.throttle.account(write, length)

    def _guard_sector0(self, offset: int, data: bytes) -> None:
        if not self.guard_probe or offset >= 512:
            return
        first = bytearray(self.node.read(0, min(1024, self.node.size)))
        first[offset:offset + len(data)] = bytes(data)[:len(first) - offset]
        if probe_head(bytes(first)).name != "raw":
            raise BlockError("write to sector 0 refused: it would make this raw image (whose "
                             "format was probed, not given) look like another format",
                             errno=errno.EPERM)

    # -- data path -----------------------------------------------------------
    def pread(self, offset: int, length: int) -> bytes:
        self._check(offset, length, False)
        with self._lock:
            return self.node.read(offset, length)

    def preadv(self, offset: int, buffers: list[memoryview]) -> None:
        self._check(offset, sum(len(b) for b in buffers), False)
        with self._lock:
            self.node.readv(offset, buffers)

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        self._check(offset, len(data), True)
        with self._lock:
            self._guard_sector0(offset, data)
            if self.detect_zeroes != "off" and is_zero(data):
                self.node.write_zeroes(offset, len(data), self._may_unmap())
                return
            self.node.write(offset, data)

    def pwritev(self, offset: int, buffers: list[memoryview]) -> None:
        total = sum(len(b) for b in buffers)
        self._check(offset, total, True)
        with self._lock:
            if self.guard_probe and offset < 512:
                self._guard_sector0(offset, b"".join(bytes(b) for b in buffers)[:1024])
            if self.detect_zeroes != "off" and all(is_zero(b) for b in buffers):
                self.node.write_zeroes(offset, total, self._may_unmap())
                return
            self.node.writev(offset, buffers)

    def _may_unmap(self) -> bool:
        return self.detect_zeroes == "unmap" and self.discard_mode == "unmap"

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._check(offset, length, True)
        with self._lock:
            self.node.write_zeroes(offset, length, may_unmap and self.discard_mode == "unmap")

    def discard(self, offset: int, length: int) -> None:
        self._check(offset, length, True)
        if self.discard_mode == "unmap":
            with self._lock:
                self.node.discard(offset, length)

    def flush(self) -> None:
        if self.node is not None and not self.read_only:
            with self._lock:
                self.node.flush()

    # -- queueing off the vCPU thread -----------------------------------------
    def submit(self, fn: Callable[[], Any], callback: Callback | None = None) -> None:
        """Queue ``fn`` (e.g. ``lambda: be.preadv(off, bufs)``) on this drive's I/O
        thread; ``callback(result, exc)`` runs there when it finishes."""
        if self._aio is None:
            self._aio = AioContext()
        self._aio.submit(fn, callback)

    def drain(self) -> None:
        if self._aio is not None:
            self._aio.drain()

    def close(self) -> None:
        if self._aio is not None:
            self._aio.close()
            self._aio = None
        if self.node is not None:
            try:
                if not self.read_only:
                    self.node.flush()
            finally:
                self.node.close()
                self.node = None
                if self._on_close is not None:
                    self._on_close()
