"""qcow2 overlays over a running drive's image: ``snapshot=on``/``-snapshot`` (a
throw-away overlay) and ``blockdev-snapshot-sync`` (an overlay file that stays).

Either way writes go to the new qcow2 layer and the old top becomes its read-only
backing node; the guest sees the same bytes.
"""

from __future__ import annotations

import os
import tempfile

from .drivers import block_driver
from .errors import BlockError
from .file import FileNode
from .node import BlockNode
from .qcow2 import Qcow2Node, create_qcow2

OVERLAY_FORMAT = "qcow2"  # the format pemu can put over another node


def _open_over(path: str, base: BlockNode, cache: str = "writeback") -> Qcow2Node:
    overlay = Qcow2Node(FileNode(path, cache=cache), read_only=False)
    overlay.backing = base
    return overlay


def temporary_overlay(base: BlockNode) -> BlockNode:
    """snapshot=on: writes go to a throw-away qcow2 overlay; the image is untouched."""
    fd, path = tempfile.mkstemp(prefix="pemu-snapshot-", suffix=".qcow2")
    os.close(fd)
    try:
        create_qcow2(path, base.size)
        overlay = _open_over(path, base, cache="unsafe")  # nothing to keep: no flushes
    finally:
        os.unlink(path)  # the open descriptor keeps it alive until close
    return overlay


def snapshot_overlay(base: BlockNode, path: str, fmt: str = OVERLAY_FORMAT,
                     create: bool = True) -> BlockNode:
    """blockdev-snapshot-sync: an overlay at ``path`` over ``base`` (flushed by the
    caller).  ``create``: make the file, naming ``base`` by absolute path as its backing
    file (mode absolute-paths); otherwise the file must exist (mode existing)."""
    if block_driver(fmt).name != OVERLAY_FORMAT:
        raise BlockError(f"snapshot format '{fmt}' is not supported (use {OVERLAY_FORMAT})")
    if not create and not os.path.exists(path):
        raise BlockError(f"Could not open '{path}': No such file or directory")
    try:
        if create:
            create_qcow2(path, base.size, backing_file=os.path.abspath(base.filename),
                         backing_fmt=base.format_name)
        return _open_over(path, base)
    except (BlockError, OSError) as e:
        raise BlockError(f"Could not create '{path}': {e}") from None

__all__ = ["OVERLAY_FORMAT", "snapshot_overlay", "temporary_overlay"]
