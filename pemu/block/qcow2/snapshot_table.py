"""The qcow2 internal snapshot table (reading, validating, writing)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import BlockError, CorruptImageError
from .format import MAX_L1_BYTES

_ENTRY = struct.Struct(">QIHHIIQII")
MAX_EXTRA_DATA = 1024
MAX_TABLE_BYTES = 64 << 20


@dataclass
class Snapshot:
    l1_table_offset: int
    l1_size: int
    id_str: str
    name: str
    date_sec: int = 0
    date_nsec: int = 0
    vm_clock_nsec: int = 0
    vm_state_size: int = 0
    disk_size: int = 0
    icount: int = -1
    extra: bytes = b""   # unknown trailing extra data, kept as is

    def pack(self, version: int) -> bytes:
        ids, name = self.id_str.encode(), self.name.encode()
        extra = struct.pack(">QQq", self.vm_state_size, self.disk_size, self.icount) + \
            self.extra
        out = _ENTRY.pack(self.l1_table_offset, self.l1_size, len(ids), len(name),
                          self.date_sec, self.date_nsec, self.vm_clock_nsec,
                          min(self.vm_state_size, 0xFFFFFFFF), len(extra)) + extra + ids + name
        return out + bytes(-len(out) % 8)


def parse_snapshot_table(data: bytes, count: int, cluster_size: int, file_size: int,
                         image_size: int, min_extra: int = 0) -> tuple[list[Snapshot], int]:
    """Returns the snapshots and the table's length in bytes.  ``min_extra``: the extra
    data every entry must have (16 in a v3 image checked: vm state size and disk size)."""
    snaps: list[Snapshot] = []
    pos = 0
    for i in range(count):
        if pos + _ENTRY.size > len(data):
            raise CorruptImageError(f"Snapshot table entry {i} is outside the snapshot table")
        (l1_off, l1_size, id_len, name_len, dsec, dnsec, clock, vmstate,
         extra_len) = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        if extra_len > MAX_EXTRA_DATA:
            raise BlockError(f"Snapshot {i}: extra data too large")
        if pos + extra_len + id_len + name_len > len(data):
            raise CorruptImageError(f"Snapshot {i} is outside the snapshot table")
        if extra_len < min_extra:
            raise CorruptImageError(f"snapshot table entry {i} is incomplete")
        extra = data[pos:pos + extra_len]
        pos += extra_len
        try:
            ids = data[pos:pos + id_len].decode()
            name = data[pos + id_len:pos + id_len + name_len].decode()
        except UnicodeDecodeError:
            raise CorruptImageError(f"Snapshot {i}: name is not valid UTF-8") from None
        pos += id_len + name_len
        pos += -pos % 8
        if l1_size * 8 > MAX_L1_BYTES:
            raise CorruptImageError(f"Snapshot {i}: L1 table is too large")
        if l1_off % cluster_size or (l1_size and (l1_off == 0 or
                                                   l1_off + l1_size * 8 > file_size)):
            raise CorruptImageError(f"Snapshot {i}: invalid L1 table offset")
        s = Snapshot(l1_off, l1_size, ids, name, dsec, dnsec, clock, vmstate, image_size)
        if len(extra) >= 8:
            s.vm_state_size = struct.unpack_from(">Q", extra)[0]
        if len(extra) >= 16:
            s.disk_size = struct.unpack_from(">Q", extra, 8)[0]
        if len(extra) >= 24:
            s.icount = struct.unpack_from(">q", extra, 16)[0]
        s.extra = extra[24:]
        snaps.append(s)
        if pos > MAX_TABLE_BYTES:
            raise BlockError("Snapshot table too large")
    return snaps, pos


def find_snapshot(node, name: str) -> Snapshot:
    """The snapshot of ``node`` (a Qcow2Node) with ID ``name``, else the one with that
    name (QEMU looks IDs up first)."""
    for s in node.snapshots:
        if s.id_str == name:
            return s
    for s in node.snapshots:
        if s.name == name:
            return s
    raise BlockError("Can't find the snapshot")
