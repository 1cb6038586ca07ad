"""Every block driver pemu has, and the questions asked about them.

The imports below are the list of modules that declare a block driver (see
pemu/block/driver_info.py): a new image format is one module that calls ``declare``
plus one line here.  Whoever looks drivers up imports this module, so the answer
never depends on what happened to be imported before: format probing, ``-drive
format=``, pemu-img's ``-f``/``-O`` and its "Supported formats:" line, QMP's
``BlockdevDriver``.
"""

from __future__ import annotations

from pemu.qom.registry import BLOCK_DRIVER, RegistryError, help_listing, lookup, types

from . import blkdebug, file, foreign, luks, qcow2, raw  # noqa: F401 - declare drivers
from .driver_info import PROBE_BYTES, BlockDriverInfo
from .errors import BlockError
from .node import BlockNode


def block_drivers() -> list[BlockDriverInfo]:
    """Every driver, formats and protocols, sorted by name."""
    return [t for t in types(BLOCK_DRIVER) if isinstance(t, BlockDriverInfo)]


def format_drivers() -> list[BlockDriverInfo]:
    """The image formats (what probing can pick and ``-O`` can name)."""
    return [d for d in block_drivers() if not d.protocol]


def creatable_formats() -> list[str]:
    """The formats pemu-img create / convert -O can write."""
    return [d.name for d in format_drivers() if d.create is not None]


def block_driver(name: str) -> BlockDriverInfo:
    """The driver called ``name``; QEMU's "Unknown driver 'NAME'" if there is none."""
    try:
        info = lookup(BLOCK_DRIVER, name)
    except RegistryError:
        raise BlockError(f"Unknown driver '{name}'") from None
    assert isinstance(info, BlockDriverInfo)
    return info


def format_driver(name: str) -> BlockDriverInfo:
    """The image format called ``name`` (a protocol is not one)."""
    info = block_driver(name)
    if info.protocol or info.open is None:
        raise BlockError(f"'{name}' is a protocol, not an image format")
    return info


def supported_formats_line() -> str:
    """qemu-img --help's and -drive format=help's "Supported formats: ..." line."""
    return help_listing(BLOCK_DRIVER)


def probe_head(head: bytes, filename: str = "") -> BlockDriverInfo:
    """The format whose probe scores the first bytes of an image highest (raw, which
    scores 1 for anything, when no magic matches)."""
    best, best_score = None, 0
    for info in format_drivers():
        score = info.probe(head, filename) if info.probe is not None else 0
        if score > best_score:
            best, best_score = info, score
    if best is None:
        raise BlockError(f"Could not determine the image format of '{filename}'")
    return best


def probe_format(protocol_node: BlockNode) -> str:
    """The format name of the image in ``protocol_node`` (qemu-img's probing when -f
    is not given)."""
    size = protocol_node.size
    head = protocol_node.read(0, min(PROBE_BYTES, size)) if size else b""
    return probe_head(head, protocol_node.filename).name


__all__ = ["block_driver", "block_drivers", "creatable_formats", "format_driver",
           "format_drivers", "probe_format", "probe_head", "supported_formats_line"]
