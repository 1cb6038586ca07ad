"""The driver interface every block node (protocol or format) implements.

A *node* is one layer of an image graph: a protocol node talks to the host (a file),
a format node (raw, qcow2, luks, ...) interprets the bytes of its ``file`` child and
may have a ``backing`` node.  Devices never see nodes directly; they hold a
:class:`~pemu.block.backend.BlockBackend`, which wraps the top node and enforces
bounds, read-only mode and drive options.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BlockError


@dataclass
class Extent:
    """What :meth:`BlockNode.block_status` reports for a run of guest bytes.

    allocated: the run is described by this layer (not passed to a backing file).
    zero: the run reads as zeros.  data: the run has host storage (``offset`` into
    the ``file`` child when known).
    """

    length: int
    allocated: bool
    zero: bool
    data: bool
    offset: int | None = None


class BlockNode:
    """Base class: default implementations are in terms of read/write."""

    format_name = "node"
    size: int = 0
    read_only: bool = True
    filename: str = ""
    backing: BlockNode | None = None
    file: BlockNode | None = None

    # -- data path ---------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        data = self.read(offset, sum(len(b) for b in buffers))
        pos = 0
        for buf in buffers:
            n = len(buf)
            buf[:] = data[pos:pos + n]
            pos += n

    def write(self, offset: int, data: bytes | memoryview) -> None:
        raise BlockError(f"{self.format_name}: writing is not supported")

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        self.write(offset, b"".join(buffers))

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        chunk = 1 << 20
        while length > 0:
            n = min(chunk, length)
            self.write(offset, bytes(n))
            offset += n
            length -= n

    def discard(self, offset: int, length: int) -> None:
        """Advisory: a node that cannot discard ignores the request."""

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def block_status(self, offset: int, length: int) -> Extent:
        return Extent(length, allocated=True, zero=False, data=True, offset=offset)

    def resize(self, new_size: int, shrink: bool = False) -> None:
        raise BlockError(f"{self.format_name}: resizing is not supported")

    def close(self) -> None:
        if self.backing is not None:
            self.backing.close()
            self.backing = None
        if self.file is not None:
            self.file.close()
            self.file = None

    # -- introspection for pemu-img ---------------------------------------
    def allocated_file_size(self) -> int:
        """Host bytes used (``disk size`` in qemu-img info)."""
        return self.file.allocated_file_size() if self.file is not None else 0

    def format_specific_info(self) -> dict | None:
        return None

    def check_writable(self) -> None:
        if self.read_only:
            raise BlockError(f"{self.filename or self.format_name}: image is read-only",
                             errno=30)
