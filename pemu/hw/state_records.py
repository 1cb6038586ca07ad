"""A list of byte strings in one VMState ``bytes`` field: each record is a u16
length and the bytes.  The state's fields are flat (kinds in pemu/hw/core.py), and
some state is a short list of variable-length records: control messages waiting for a
buffer, per-unit SCSI sense data."""

from __future__ import annotations

import struct

_LEN = struct.Struct("<H")
MAX_RECORD = 0xFFFF


def pack_records(records: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(r)) + r for r in records)


def unpack_records(blob: bytes, shortest: int = 0, longest: int = MAX_RECORD
                   ) -> list[bytes] | None:
    """The records of ``blob``; None if it is not a sequence of records whose lengths
    are within ``shortest``..``longest`` (a device's check turns that into a refusal)."""
    out, pos = [], 0
    while pos < len(blob):
        if pos + _LEN.size > len(blob):
            return None
        (n,) = _LEN.unpack_from(blob, pos)
        pos += _LEN.size
        if not shortest <= n <= longest or pos + n > len(blob):
            return None
        out.append(bytes(blob[pos:pos + n]))
        pos += n
    return out
