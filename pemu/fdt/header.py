"""Checking that a ``-dtb`` file is a flattened device tree before a guest is given it.

The checks are the header's own promises (the DTSpec fdt_header): the magic, a
``totalsize`` that the file holds, and structure/strings blocks and the memory
reservation map inside ``totalsize``.  Messages name libfdt's error codes, as QEMU's do.
"""

from __future__ import annotations

import struct

FDT_MAGIC = 0xD00DFEED
HEADER_SIZE = 40  # version 17 header: ten big-endian 32-bit words
FIRST_COMPATIBLE_VERSION = 16


class FdtHeaderError(ValueError):
    pass


def check_fdt_blob(blob: bytes) -> int:
    """Raise FdtHeaderError unless ``blob`` starts with a sound FDT; return its size."""
    if len(blob) < HEADER_SIZE:
        raise FdtHeaderError("FDT_ERR_TRUNCATED")
    (magic, totalsize, off_struct, off_strings, off_rsvmap, version, last_comp,
     _boot_cpu, size_strings, size_struct) = struct.unpack_from(">10I", blob, 0)
    if magic != FDT_MAGIC:
        raise FdtHeaderError("FDT_ERR_BADMAGIC")
    if last_comp > FIRST_COMPATIBLE_VERSION + 1 or version < FIRST_COMPATIBLE_VERSION:
        raise FdtHeaderError("FDT_ERR_BADVERSION")
    if totalsize < HEADER_SIZE or totalsize > len(blob):
        raise FdtHeaderError("FDT_ERR_TRUNCATED")
    for off, size in ((off_struct, size_struct), (off_strings, size_strings),
                      (off_rsvmap, 16)):
        if off < HEADER_SIZE or off + size > totalsize:
            raise FdtHeaderError("FDT_ERR_TRUNCATED")
    return totalsize
