"""Block accounting: a filter node that counts a drive's I/O and reports its failures.

What QEMU's BlockAcctStats keeps for ``query-blockstats``: operations and bytes per
direction, and failed operations.  A failure is also handed to ``report_error`` (the
monitor turns it into a BLOCK_IO_ERROR event) before it reaches the device.
"""

from __future__ import annotations

import errno as errno_mod
import threading
from collections.abc import Callable

from .errors import BlockError
from .node import BlockNode, Extent

# report_error(operation "read"/"write", nospace, reason)
ErrorReporter = Callable[[str, bool, str], None]

STAT_KEYS = ("rd_bytes", "wr_bytes", "rd_operations", "wr_operations", "flush_operations",
             "unmap_operations", "unmap_bytes", "failed_rd_operations",
             "failed_wr_operations", "failed_flush_operations")


class AccountingNode(BlockNode):
    """A transparent filter that counts I/O and reports failures."""

    format_name = "accounting"

    def __init__(self, child: BlockNode, report_error: ErrorReporter) -> None:
        self.child = child
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self._report_error = report_error
        self._lock = threading.Lock()

    # Everything but the data path is the child's.
    size = property(lambda self: self.child.size)
    read_only = property(lambda self: self.child.read_only)
    filename = property(lambda self: self.child.filename)
    backing = property(lambda self: self.child.backing)
    file = property(lambda self: self.child.file)

    def _count(self, ops: str, nbytes: str | None, length: int) -> None:
        with self._lock:
            self.stats[ops] += 1
            if nbytes:
                self.stats[nbytes] += length

    def _failed(self, what: str, operation: str, e: Exception) -> None:
        with self._lock:
            self.stats[f"failed_{what}_operations"] += 1
        code = getattr(e, "errno", None)
        self._report_error(operation, code == errno_mod.ENOSPC, str(e))

    def read(self, offset: int, length: int) -> bytes:
        try:
            data = self.child.read(offset, length)
        except (BlockError, OSError) as e:
            self._failed("rd", "read", e)
            raise
        self._count("rd_operations", "rd_bytes", length)
        return data

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        try:
            self.child.readv(offset, buffers)
        except (BlockError, OSError) as e:
            self._failed("rd", "read", e)
            raise
        self._count("rd_operations", "rd_bytes", sum(len(b) for b in buffers))

    def write(self, offset: int, data: bytes | memoryview) -> None:
        try:
            self.child.write(offset, data)
        except (BlockError, OSError) as e:
            self._failed("wr", "write", e)
            raise
        self._count("wr_operations", "wr_bytes", len(data))

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        try:
            self.child.writev(offset, buffers)
        except (BlockError, OSError) as e:
            self._failed("wr", "write", e)
            raise
        self._count("wr_operations", "wr_bytes", sum(len(b) for b in buffers))

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        try:
            self.child.write_zeroes(offset, length, may_unmap)
        except (BlockError, OSError) as e:
            self._failed("wr", "write", e)
            raise
        self._count("wr_operations", "wr_bytes", length)

    def discard(self, offset: int, length: int) -> None:
        self.child.discard(offset, length)
        self._count("unmap_operations", "unmap_bytes", length)

    def flush(self) -> None:
        try:
            self.child.flush()
        except (BlockError, OSError) as e:
            self._failed("flush", "write", e)
            raise
        self._count("flush_operations", None, 0)

    def block_status(self, offset: int, length: int) -> Extent:
        return self.child.block_status(offset, length)

    def resize(self, new_size: int, shrink: bool = False) -> None:
        self.child.resize(new_size, shrink)

    def close(self) -> None:
        self.child.close()

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters, taken under the lock."""
        with self._lock:
            return dict(self.stats)

    def allocated_file_size(self) -> int:
        return self.child.allocated_file_size()


__all__ = ["STAT_KEYS", "AccountingNode", "ErrorReporter"]
