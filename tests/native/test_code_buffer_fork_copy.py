"""The code buffer's copy for a fork child made ahead of the fork (codebuf.py,
``prepare_fork_copy``: the binfmt server copies its megabytes of preinstalled blocks
between two programs).  A real fork: the child reads its buffer through the executable
view, where the code it would run lies."""

from __future__ import annotations

import os

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.backend.x86_64.codebuf import CodeBuffer

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs an x86-64 Linux host")


def _child_sees(buf: CodeBuffer, offset: int, size: int) -> bytes:
    """What a forked child finds at ``offset`` in its copy of ``buf``."""
    read, write = os.pipe()
    buf.copy_for_fork()  # as the backend's before-fork hook does
    pid = os.fork()
    if pid == 0:
        try:
            buf.use_fork_copy()
            os.write(write, buf.read(offset, size))
        finally:
            os._exit(0)
    buf.drop_fork_copy()
    os.close(write)
    os.waitpid(pid, 0)
    got = os.read(read, size)
    os.close(read)
    return got


def test_a_copy_made_ahead_is_used_only_while_nothing_wrote_the_buffer():
    buf = CodeBuffer(1 << 20)
    try:
        off = buf.allocate(16)
        buf.write(off, b"A" * 16)
        buf.prepare_fork_copy()
        spare = buf._spare
        assert spare is not None
        assert _child_sees(buf, off, 16) == b"A" * 16
        assert buf._spare is None  # handed to that child
        # made ahead again, then the buffer changes: the fork copies it as it is now
        buf.prepare_fork_copy()
        buf.patch_rel32(off, off + 4)  # a chain patched after the copy was made
        assert _child_sees(buf, off, 4) == (0).to_bytes(4, "little")
        buf.prepare_fork_copy()
        new = buf.allocate(8)  # a block installed after it
        buf.write(new, b"B" * 8)
        assert _child_sees(buf, new, 8) == b"B" * 8
        # the parent's own buffer never changed under it
        assert buf.read(off + 4, 12) == b"A" * 12
    finally:
        buf.close()
