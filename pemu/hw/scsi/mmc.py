"""The MMC commands of a CD-ROM unit that Linux's sr/cdrom drivers send: READ TOC
(one data track, as an ISO image is), GET CONFIGURATION (the CD-ROM profile) and GET
EVENT STATUS NOTIFICATION (the medium is present).  Each takes the CDB and the disc's
size in 2 KiB blocks and returns (reply, allocation length)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.hw.scsi import sense as K

LEAD_OUT = 0xAA
DATA_TRACK = 0x14  # ADR 1 (position), CONTROL 4 (data track)
PROFILE_CDROM = 0x0008
LBA_TO_MSF_OFFSET = 150  # the 2-second pregap before LBA 0


def _address(lba: int, msf: bool) -> bytes:
    if not msf:
        return struct.pack(">I", lba)
    frames = lba + LBA_TO_MSF_OFFSET
    return bytes([0, frames // (75 * 60), (frames // 75) % 60, frames % 75])


def read_toc(cdb: bytes, blocks: int) -> tuple[bytes, int]:
    msf = bool(cdb[1] & 0x02)
    fmt = cdb[2] & 0x0F or (cdb[9] >> 6 if len(cdb) > 9 else 0)
    alloc = int.from_bytes(cdb[7:9], "big")
    if fmt == 1:  # session information: one session, starting at track 1
        body = bytes([0, DATA_TRACK, 1, 0]) + _address(0, msf)
        return struct.pack(">HBB", 2 + len(body), 1, 1) + body, alloc
    if fmt != 0:
        raise K.invalid_field()
    start = cdb[6]
    entries = []
    if start <= 1:
        entries.append(bytes([0, DATA_TRACK, 1, 0]) + _address(0, msf))
    elif start != LEAD_OUT:
        raise K.invalid_field()
    entries.append(bytes([0, DATA_TRACK, LEAD_OUT, 0]) + _address(blocks, msf))
    body = b"".join(entries)
    return struct.pack(">HBB", 2 + len(body), 1, 1) + body, alloc


def get_configuration(cdb: bytes, _blocks: int) -> tuple[bytes, int]:
    alloc = int.from_bytes(cdb[7:9], "big")
    start = int.from_bytes(cdb[2:4], "big")
    features = b""
    if start == 0:  # the profile list feature: CD-ROM, current
        features = struct.pack(">HBB", 0, 0x03, 4) + struct.pack(">HBB", PROFILE_CDROM, 1, 0)
    head = struct.pack(">IHH", 4 + len(features), 0, PROFILE_CDROM)
    return head + features, alloc


def get_event_status(cdb: bytes, _blocks: int) -> tuple[bytes, int]:
    if not cdb[1] & 1:
        raise K.invalid_field()  # only the polled form exists
    alloc = int.from_bytes(cdb[7:9], "big")
    if not cdb[4] & 0x10:  # no media class asked for: "no event available"
        return struct.pack(">HBB", 2, 0x80, 0x10), alloc
    media = bytes([0, 0x02, 0, 0])  # no change, medium present, tray closed
    return struct.pack(">HBB", 2 + len(media), 0x04, 0x10) + media, alloc


COMMANDS: dict[int, Callable[[bytes, int], tuple[bytes, int]]] = {
    0x43: read_toc, 0x46: get_configuration, 0x4A: get_event_status}
