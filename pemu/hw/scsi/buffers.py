"""Copying between bytes and a command's scatter list (memoryviews of guest RAM)."""

from __future__ import annotations


def total(bufs: list[memoryview]) -> int:
    return sum(len(b) for b in bufs)


def clip(bufs: list[memoryview], length: int) -> list[memoryview]:
    """The first ``length`` bytes of ``bufs`` (fewer if the list is shorter)."""
    out = []
    for b in bufs:
        if length <= 0:
            break
        out.append(b[:length])
        length -= len(out[-1])
    return out


def scatter(bufs: list[memoryview], data: bytes) -> int:
    """Copy ``data`` into ``bufs`` (truncated to fit); returns the bytes copied."""
    done = 0
    for b in bufs:
        if done == len(data):
            break
        take = min(len(b), len(data) - done)
        b[:take] = data[done:done + take]
        done += take
    return done


def gather(bufs: list[memoryview], length: int) -> bytes:
    """Up to ``length`` bytes from the start of ``bufs``."""
    return b"".join(bytes(b) for b in clip(bufs, length))
