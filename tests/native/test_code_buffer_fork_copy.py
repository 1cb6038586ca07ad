"""The code buffer across a fork (codebuf.py, ``freeze``): parent and child share its
pages until one of them writes; a new block goes to a private tail, a write into the
blocks of the fork copies the whole buffer, and neither side ever sees the other's
writes.  Real forks: each side reads its buffer through the executable view, where
the code it would run lies."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterator

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.backend.x86_64.codebuf import CodeBuffer

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs an x86-64 Linux host")


@contextlib.contextmanager
def _forked(buf: CodeBuffer, child) -> Iterator[tuple[Callable, Callable]]:
    """Fork as the backend's hooks do; ``child(buf, wait, tell)`` runs in the child.
    Yields (wait, tell) for the parent: bytes each way, for ordering."""
    to_child, to_parent = os.pipe(), os.pipe()
    buf.freeze()
    pid = os.fork()
    if pid == 0:
        try:
            buf.freeze()
            child(buf, lambda: _read(to_child[0]), lambda b: os.write(to_parent[1], b))
        finally:
            os._exit(0)
    try:
        yield (lambda: _read(to_parent[0])), (lambda b: os.write(to_child[1], b))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (*to_child, *to_parent):
            os.close(fd)


def _read(fd: int) -> bytes:
    if not select.select([fd], [], [], 30)[0]:
        raise TimeoutError("the other side of the fork did not answer")
    return os.read(fd, 1 << 16)


def _buffer_with_a_block() -> tuple[CodeBuffer, int]:
    """A buffer whose block fills a page: below the page the next block goes to."""
    buf = CodeBuffer(1 << 20)
    off = buf.allocate(4096)
    buf.write(off, b"A" * 4096)
    return buf, off


def test_neither_side_sees_the_others_writes():
    buf, old = _buffer_with_a_block()
    try:
        def child(buf, wait, tell):
            new = buf.allocate(16)
            buf.write(new, b"C" * 16)  # a new block: a private tail
            tell(bytes([buf.copies]))
            wait()
            buf.patch_rel32(old, old + 4)  # a chain into a block of the fork: a copy
            tell(bytes([buf.copies]))
            wait()  # the parent has written the same places
            tell(buf.read(old, 8) + buf.read(new, 16))

        with _forked(buf, child) as (wait, tell):
            assert wait() == b"\0"  # the new block did not copy the buffer
            tell(b"go")
            assert wait() == b"\1"
            # the child's writes are not the parent's
            assert buf.read(old, 8) == b"A" * 8
            new = buf.allocate(16)
            assert buf.read(new, 16) == b"\0" * 16
            buf.write(new, b"P" * 16)
            buf.patch_rel32(old, old + 64)
            tell(b"go")
            # nor the parent's the child's
            assert wait() == (0).to_bytes(4, "little") + b"A" * 4 + b"C" * 16
        assert buf.read(old, 4) == (60).to_bytes(4, "little")
        assert buf.read(new, 16) == b"P" * 16
    finally:
        buf.close()


def test_a_side_that_only_adds_blocks_never_copies_the_buffer():
    buf, old = _buffer_with_a_block()
    try:
        def child(buf, wait, tell):
            wait()
            tell(buf.read(old, 64) + bytes([buf.frozen_at(old)]))

        with _forked(buf, child) as (wait, tell):
            assert buf.frozen_at(old)
            for _ in range(50):  # blocks the parent installs after the fork
                buf.write(buf.allocate(4096), b"N" * 4096)
            assert buf.copies == 0
            tell(b"go")
            assert wait() == b"A" * 64 + b"\1"
        buf.write(old, b"B" * 64)  # then a write into the old block: one copy
        assert buf.copies == 1 and not buf.frozen_at(old)
        assert buf.read(old, 64) == b"B" * 64 and buf.read(old + 4096, 4) == b"NNNN"
    finally:
        buf.close()


def test_a_second_fork_freezes_the_tail_the_first_one_left():
    buf, old = _buffer_with_a_block()
    try:
        buf.freeze()  # as if a child had been forked (and had not written anything)
        tail = buf.allocate(4096)
        buf.write(tail, b"T" * 4096)  # a private tail, no copy
        assert buf.copies == 0

        def child(buf, wait, tell):
            wait()
            tell(buf.read(tail, 4) + buf.read(old, 4))

        with _forked(buf, child) as (wait, tell):
            buf.write(tail, b"U" * 4096)  # the tail is the second child's too: a copy
            assert buf.copies == 1
            tell(b"go")
            assert wait() == b"TTTTAAAA"
        assert buf.read(tail, 4) == b"UUUU" and buf.read(old, 4) == b"AAAA"
    finally:
        buf.close()
