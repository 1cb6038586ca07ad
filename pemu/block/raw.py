"""The ``raw`` format: guest bytes are the file's bytes (optionally a window of it)."""

from __future__ import annotations

import os

from pemu.qemuopts.keyval import OptionError, parse_size
from pemu.qom.registry import Property

from .driver_info import PREALLOCATION_OPTION, SIZE_OPTION, declare
from .errors import BlockError
from .file import FileNode
from .node import BlockNode, Extent

PREALLOC_MODES = ("off", "falloc", "full")


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


def _size_option(options: dict[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        return parse_size(options[key])
    except OptionError as e:
        raise BlockError(str(e)) from None


def open_raw(file: BlockNode, options: dict[str, str] | None = None, **_ignored) -> RawNode:
    options = options or {}
    return RawNode(file, offset=_size_option(options, "offset") or 0,
                   size=_size_option(options, "size"))


def create_raw(filename: str, size: int, prealloc: str = "off") -> None:
    if prealloc not in PREALLOC_MODES:
        raise BlockError(f"Invalid parameter '{prealloc}' for preallocation")
    f = FileNode(filename, create=True)
    try:
        f.truncate(size)
        if prealloc == "falloc" and size:
            os.posix_fallocate(f.fd, 0, size)
        elif prealloc == "full":
            chunk = bytes(1 << 20)
            for p in range(0, size, len(chunk)):
                f.write(p, chunk[:min(len(chunk), size - p)])
    finally:
        f.close()


def _create(filename: str, size: int, options: dict[str, str],
            secrets: dict[str, bytes]) -> None:
    create_raw(filename, size, options.get("preallocation", "off"))


declare("raw", "guest bytes are the file's bytes",
        probe=lambda head, filename: 1,  # anything is a raw image: the fallback
        open=open_raw, create=_create,
        properties=(Property("offset", "size", description="offset in the file"),
                    Property("size", "size", description="size of the window (default: "
                                                         "to the end of the file)")),
        create_options=(SIZE_OPTION, PREALLOCATION_OPTION))
