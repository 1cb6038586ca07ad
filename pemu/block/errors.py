"""The one exception the block layer raises for anything the user should see."""

from __future__ import annotations


class BlockError(Exception):
    """A block-layer failure with a clear, user-facing message (no traceback needed)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
