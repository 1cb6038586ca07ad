"""A small reader of flattened device trees, for tests that check what pemu writes.

``read_dtb(blob)`` -> ``{node path: {property: raw bytes}}``; ``cells`` splits a
property into big-endian 32-bit cells.  Written from the devicetree specification's
description of the structure block (FDT_BEGIN_NODE/END_NODE/PROP/NOP/END).
"""

from __future__ import annotations

import struct

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9


def read_dtb(blob: bytes) -> dict[str, dict[str, bytes]]:
    magic, _, off_struct, off_strings = struct.unpack_from(">IIII", blob, 0)
    assert magic == FDT_MAGIC, "not a flattened device tree"

    def string_at(offset: int) -> str:
        end = blob.index(b"\0", offset)
        return blob[offset:end].decode()

    nodes: dict[str, dict[str, bytes]] = {}
    path: list[str] = []
    pos = off_struct
    while True:
        (token,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if token == FDT_BEGIN_NODE:
            end = blob.index(b"\0", pos)
            path.append(blob[pos:end].decode())
            pos = (end + 4) & ~3
            nodes["/" + "/".join(p for p in path if p)] = {}
        elif token == FDT_END_NODE:
            path.pop()
        elif token == FDT_PROP:
            length, name_off = struct.unpack_from(">II", blob, pos)
            pos += 8
            nodes["/" + "/".join(p for p in path if p)][string_at(off_strings + name_off)] = \
                blob[pos:pos + length]
            pos = (pos + length + 3) & ~3
        elif token == FDT_NOP:
            continue
        elif token == FDT_END:
            return nodes
        else:
            raise ValueError(f"bad FDT token {token} at {pos - 4}")


def cells(value: bytes) -> list[int]:
    return list(struct.unpack(f">{len(value) // 4}I", value))
