"""The one exception the block layer raises for anything the user should see."""

from __future__ import annotations


class BlockError(Exception):
    """A block-layer failure with a clear, user-facing message (no traceback needed)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class CorruptImageError(BlockError):
    """Image metadata that contradicts itself or the file (a table outside the file, an
    offset that is not aligned): ``pemu-img check`` reports it as a corruption (status
    2) even when it stops the image from being opened."""
