"""What a block driver declares about itself in the type registry (pemu/qom).

QEMU's ``BlockDriver`` struct, reduced to what pemu's users need: each image format
(raw, qcow2, luks, vmdk, ...) and each protocol (file, blkdebug) fills one
``BlockDriverInfo`` in its own module and registers it with :func:`declare`.  Format
probing, the ``-drive format=``/``driver=`` check, pemu-img's format lists and
``-o`` options, and QMP's ``BlockdevDriver`` enum all read these declarations
(through pemu/block/drivers.py, which imports every declaring module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.qom.registry import BLOCK_DRIVER, Property, TypeInfo, register

from .node import BlockNode

# probe(head, filename) -> score: 0 "not mine" .. 100 "certainly mine" (the magic
# matched); the highest score wins, raw answers 1 for anything (QEMU's bdrv_probe).
Probe = Callable[[bytes, str], int]
# open(file, *, read_only, secrets, options, cache, open_backing, depth) -> node:
# a format node over the protocol node ``file`` (a protocol: over the image node).
# ``open_backing`` is the BackingOpener for a backing file, or None not to open one.
Opener = Callable[..., BlockNode]
# open_backing(filename, fmt=..., read_only=..., cache=..., secrets=..., depth=...) -> node:
# drive.open_image, handed down by whoever opens the image, because a backing file may
# be of any format and the format list itself imports every format module.
BackingOpener = Callable[..., BlockNode]
# create(filename, size, options, secrets): a new image; options are the -o keys, each
# one the driver declares in ``create_options``.
Creator = Callable[[str, int, dict[str, str], dict[str, bytes]], None]

PROBE_BYTES = 1024  # how much of the image head a probe sees


@dataclass(frozen=True, kw_only=True)
class BlockDriverInfo(TypeInfo):
    """A registered block driver.  ``properties`` (from TypeInfo) are the options it
    takes when an image is opened; ``create_options`` are pemu-img create's ``-o``
    keys, in the order qemu-img prints them in its "Formatting ..." line."""

    protocol: bool = False  # True: talks to the host (file) or filters one; False: format
    probe: Probe | None = field(default=None, compare=False)
    open: Opener | None = field(default=None, compare=False)
    create: Creator | None = field(default=None, compare=False)
    create_options: tuple[Property, ...] = ()
    compression: bool = False  # pemu-img convert -c can write it

    def find_create_option(self, name: str) -> Property | None:
        for p in self.create_options:
            if p.name == name:
                return p
        return None


def declare(name: str, description: str, *, protocol: bool = False,
            probe: Probe | None = None, open: Opener | None = None,  # noqa: A002
            create: Creator | None = None, properties: tuple[Property, ...] = (),
            create_options: tuple[Property, ...] = (),
            compression: bool = False) -> BlockDriverInfo:
    """Register a block driver (at import of the module that implements it)."""
    info = BlockDriverInfo(name=name, kind=BLOCK_DRIVER, description=description,
                           properties=properties, protocol=protocol, probe=probe,
                           open=open, create=create, create_options=create_options,
                           compression=compression)
    register(info)
    return info


# -o keys shared by several formats (QEMU's BLOCK_OPT_* with their help texts)
SIZE_OPTION = Property("size", "size", description="Virtual disk size")
PREALLOCATION_OPTION = Property("preallocation", "str",
                                description="Preallocation mode (allowed values: off, "
                                            "falloc, full)")

__all__ = ["PREALLOCATION_OPTION", "PROBE_BYTES", "SIZE_OPTION", "BlockDriverInfo", "Creator",
           "Opener", "Probe", "declare"]
