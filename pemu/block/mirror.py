"""Mirroring a drive to a target image while the guest uses it (QEMU's mirror job, the
block layer's half; the job itself is pemu/monitor/block_jobs.py).

``MirrorNode`` is a filter put between the drive's accounting filter and its image
while the job runs.  Every guest write goes to the source and, in the same step, to
the target (QEMU's ``copy-mode=write-blocking``): once the background copy has been
over the disk once, the target stays equal to the source without a dirty bitmap, and
the job is *ready* from then on.  The background copy (``copy_pass``) takes one chunk
at a time from the source to the target under the node's lock, and guest writes take
the same lock, so a chunk copied while the guest rewrites it can never put old data
over new.

Which chunks the copy takes (``sync``): ``full`` every chunk, ``top`` only those
allocated in the source's top layer (the target has the source's backing file as its
own), ``none`` none (only what the guest writes from now on).  Chunks that read as
zero are skipped when the target is known to read zero there (an image the job just
created), else written as zeroes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .backend import is_zero
from .errors import BlockError
from .node import BlockNode, Extent

CHUNK = 1 << 20
SYNC_MODES = ("full", "top", "none")


class MirrorNode(BlockNode):
    """``MirrorNode(source, target)``: reads from the source, writes to both."""

    format_name = "mirror_top"

    def __init__(self, source: BlockNode, target: BlockNode) -> None:
        self.child = source
        self.target: BlockNode | None = target
        self.lock = threading.RLock()

    # Everything but the data path is the source's.
    size = property(lambda self: self.child.size)
    read_only = property(lambda self: self.child.read_only)
    filename = property(lambda self: self.child.filename)
    backing = property(lambda self: self.child.backing)
    file = property(lambda self: self.child.file)

    def read(self, offset: int, length: int) -> bytes:
        return self.child.read(offset, length)

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        self.child.readv(offset, buffers)

    def _both(self, apply: Callable[[BlockNode], None]) -> None:
        with self.lock:
            apply(self.child)
            if self.target is not None:
                apply(self.target)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self._both(lambda node: node.write(offset, data))

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        self._both(lambda node: node.writev(offset, buffers))

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._both(lambda node: node.write_zeroes(offset, length, may_unmap))

    def discard(self, offset: int, length: int) -> None:
        # What a discarded range reads as depends on the image: the target gets what
        # the source reads afterwards, so the two stay equal whatever the formats.
        with self.lock:
            self.child.discard(offset, length)
            if self.target is not None:
                copy_range(self.child, self.target, offset, length, target_zero=False)

    def flush(self) -> None:
        self._both(lambda node: node.flush())

    def block_status(self, offset: int, length: int) -> Extent:
        return self.child.block_status(offset, length)

    def resize(self, new_size: int, shrink: bool = False) -> None:
        raise BlockError("Cannot resize a drive while a mirror job runs on it")

    def allocated_file_size(self) -> int:
        return self.child.allocated_file_size()

    def detach(self) -> BlockNode | None:
        """Stop writing to the target (the job completed or was cancelled); returns it."""
        with self.lock:
            target, self.target = self.target, None
            return target

    def close(self) -> None:
        self.child.close()
        target = self.detach()
        if target is not None:
            target.close()


def copy_range(source: BlockNode, target: BlockNode, offset: int, length: int,
               target_zero: bool) -> None:
    """Source bytes to the target, zeroes as zeroes (or not at all: ``target_zero``)."""
    data = source.read(offset, length)
    if is_zero(data):
        if not target_zero:
            target.write_zeroes(offset, length)
        return
    target.write(offset, data)


def copy_pass(node: MirrorNode, sync: str, target_zero: bool,
              progress: Callable[[int, int], None], cancelled: Callable[[], bool],
              speed: Callable[[], int] = lambda: 0) -> bool:
    """Copy the chunks ``sync`` selects from the source to the target, chunk by chunk
    under the node's lock; ``progress(done, total)`` after each.  Returns False if
    ``cancelled()`` stopped it.  ``speed()``: bytes per second, 0 for no limit."""
    total = node.size
    start = time.monotonic()
    offset = 0
    while offset < total:
        if cancelled():
            return False
        n = min(CHUNK, total - offset)
        with node.lock:
            target = node.target
            if target is None:
                return False
            if sync == "full" or (sync == "top" and _allocated_in_top(node.child, offset, n)):
                copy_range(node.child, target, offset, n, target_zero)
        offset += n
        progress(offset, total)
        limit = speed()
        if limit > 0:  # sleep until the bytes copied so far fit the rate
            ahead = offset / limit - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(min(ahead, 1.0))
    return True


def _allocated_in_top(node: BlockNode, offset: int, length: int) -> bool:
    """Whether any of the range is described by the top layer (not its backing)."""
    end = offset + length
    while offset < end:
        extent = node.block_status(offset, end - offset)
        if extent.allocated:
            return True
        if extent.length <= 0:
            return True  # a node that cannot tell: copy
        offset += extent.length
    return False


__all__ = ["CHUNK", "SYNC_MODES", "MirrorNode", "copy_pass", "copy_range"]
