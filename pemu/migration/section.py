"""The framing of one device's state: a section.

  magic        4 bytes  b"PVMS"
  name length  u8, then the VMState name (ASCII)
  version      u32      the VMState version the fields were written with
  length       u32      payload bytes (at most MAX_PAYLOAD)
  payload      the fields, in declaration order (see fields.py)
  crc32        u32      over everything above: a flipped bit is an error, not a state

All integers are little-endian.  Sections are self-delimiting, so a savevm stream
(issue 24) is sections one after another; ``decode_section`` returns where the next
one starts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from pemu.migration.wire import Reader, WireError, put_uint

MAGIC = b"PVMS"
MAX_NAME = 255
# Far above any device's state (the largest is a few KiB); a length beyond it is a lie,
# refused before anything is allocated.
MAX_PAYLOAD = 16 << 20


@dataclass(frozen=True)
class Section:
    name: str
    version: int
    payload: bytes


def encode_section(name: str, version: int, payload: bytes) -> bytes:
    raw = name.encode("ascii")
    if not raw or len(raw) > MAX_NAME:
        raise WireError(f"section name {name!r} is empty or longer than {MAX_NAME} bytes")
    if len(payload) > MAX_PAYLOAD:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    out = bytearray(MAGIC)
    put_uint(out, 1, len(raw))
    out += raw
    put_uint(out, 4, version)
    put_uint(out, 4, len(payload))
    out += payload
    put_uint(out, 4, zlib.crc32(out))
    return bytes(out)


def decode_section(data: bytes, offset: int = 0) -> tuple[Section, int]:
    """Parse the section at ``offset``; returns it and the offset just past it."""
    r = Reader(data, offset)
    if r.take(len(MAGIC)) != MAGIC:
        raise WireError("not a device state section (bad magic)")
    raw_name = r.take(r.uint(1))
    version = r.uint(4)
    length = r.uint(4)
    if length > MAX_PAYLOAD:
        raise WireError(f"payload length {length} exceeds {MAX_PAYLOAD}")
    payload = r.take(length)
    covered = bytes(memoryview(data)[offset:r.pos])
    if r.uint(4) != zlib.crc32(covered):
        raise WireError("checksum mismatch: the section is corrupted")
    try:
        name = raw_name.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("section name is not ASCII") from None
    return Section(name, version, payload), r.pos
