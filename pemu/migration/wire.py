"""Bounded reading and writing of the little-endian integers a state stream is made of.

A stream comes from a file or a socket: every read is checked against what is left, so
a short or lying stream raises ``WireError`` instead of indexing past the end.
"""

from __future__ import annotations


class WireError(ValueError):
    """The bytes are not a well-formed stream (the caller adds which device and field)."""


class Reader:
    """A cursor over bytes that never reads past the end."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = memoryview(data)
        self.pos = offset

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise WireError(f"truncated: {n} bytes needed, {self.remaining} left")
        chunk = bytes(self._data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def uint(self, width: int) -> int:
        return int.from_bytes(self.take(width), "little")


def put_uint(out: bytearray, width: int, value: int) -> None:
    """Append ``value`` as ``width`` little-endian bytes; refuse what does not fit."""
    if not 0 <= value < 1 << (8 * width):
        raise WireError(f"value {value} does not fit in {8 * width} bits")
    out += value.to_bytes(width, "little")
