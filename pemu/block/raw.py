"""The ``raw`` format: guest bytes are the file's bytes (optionally a window of it)."""

from __future__ import annotations

from .errors import BlockError
from .node import BlockNode, Extent


class RawNode(BlockNode):
    format_name = "raw"

    def __init__(self, file: BlockNode, offset: int = 0, size: int | None = None) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = file.read_only
        self.offset = offset
        self.fixed_size = size

    @property
    def size(self) -> int:  # type: ignore[override]
        if self.fixed_size is not None:
            return self.fixed_size
        return max(self.file.size - self.offset, 0)

    def read(self, offset: int, length: int) -> bytes:
        return self.file.read(self.offset + offset, length)

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        self.file.readv(self.offset + offset, buffers)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.file.write(self.offset + offset, data)

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        self.file.writev(self.offset + offset, buffers)

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self.file.write_zeroes(self.offset + offset, length, may_unmap)

    def discard(self, offset: int, length: int) -> None:
        self.file.discard(self.offset + offset, length)

    def block_status(self, offset: int, length: int) -> Extent:
        ext = self.file.block_status(self.offset + offset, length)
        if ext.offset is not None:
            ext.offset = offset + self.offset
        return ext

    def resize(self, new_size: int, shrink: bool = False) -> None:
        if self.fixed_size is not None:
            raise BlockError("raw: cannot resize an image with a fixed size window")
        if new_size < self.size and not shrink:
            raise BlockError("Use the --shrink option to perform a shrink operation.")
        self.file.resize(self.offset + new_size)
