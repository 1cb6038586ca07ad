"""The mirror filter and its copy pass (pemu/block/mirror.py), in process: guest writes
racing the background copy never leave the target behind the source."""

from __future__ import annotations

import os
import random
import threading

from pemu.block import open_drive
from pemu.block.mirror import CHUNK, MirrorNode, copy_pass
from pemu.block.qcow2 import create_qcow2

SIZE = 8 * CHUNK


def _drive(path: str, fmt: str = "qcow2", backing: str | None = None):
    if not os.path.exists(path):
        create_qcow2(path, SIZE, backing_file=backing, backing_fmt="qcow2" if backing else None)
    return open_drive({"file": path, "format": fmt})


def test_writes_during_the_copy_reach_the_target(tmp_path):
    src = _drive(str(tmp_path / "src.qcow2"))
    src.pwrite(0, os.urandom(SIZE // 2))  # half the disk has data, half reads zero
    dst = _drive(str(tmp_path / "dst.qcow2"))
    node = MirrorNode(src.node, dst.node)
    src.node = node  # what the job does under the drive's filter
    rng = random.Random(7)
    stop = threading.Event()

    def guest() -> None:
        while not stop.is_set():
            offset = rng.randrange(0, SIZE - 4096, 512)
            src.pwrite(offset, os.urandom(rng.choice((512, 4096))))

    writer = threading.Thread(target=guest)
    writer.start()
    done: list[int] = []
    try:
        assert copy_pass(node, "full", True, lambda d, t: done.append(d), lambda: False)
    finally:
        stop.set()
        writer.join()
    assert done[-1] == SIZE and len(done) == SIZE // CHUNK
    src.pwrite(SIZE - 512, b"\x5a" * 512)  # after the pass: written to both
    assert node.child.read(0, SIZE) == dst.node.read(0, SIZE)
    target = node.detach()
    src.pwrite(0, b"\x11" * 512)  # detached: the target no longer follows
    assert target.read(0, 512) != b"\x11" * 512


def test_sync_top_copies_only_the_top_layer(tmp_path):
    base = _drive(str(tmp_path / "base.qcow2"))
    base.pwrite(0, b"\xbb" * SIZE)
    base.close()
    src = _drive(str(tmp_path / "src.qcow2"), backing=str(tmp_path / "base.qcow2"))
    src.pwrite(3 * CHUNK, b"\xcc" * 4096)  # one chunk allocated in the top layer
    dst = _drive(str(tmp_path / "dst.qcow2"))  # no backing: what is not copied reads 0
    node = MirrorNode(src.node, dst.node)
    assert copy_pass(node, "top", True, lambda d, t: None, lambda: False)
    assert dst.node.read(3 * CHUNK, 4096) == b"\xcc" * 4096
    assert dst.node.read(0, CHUNK) == bytes(CHUNK)  # from the backing: left alone
    assert not copy_pass(node, "full", True, lambda d, t: None, lambda: True)  # cancelled
