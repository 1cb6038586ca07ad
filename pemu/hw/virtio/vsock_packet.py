"""The virtio-vsock packet (spec 5.10.6): a 44-byte little-endian header, then the
payload (RW only).

    le64 src_cid; le64 dst_cid; le32 src_port; le32 dst_port; le32 len;
    le16 type; le16 op; le32 flags; le32 buf_alloc; le32 fwd_cnt;

``buf_alloc`` and ``fwd_cnt`` are the sender's receive buffer size and how many
bytes of this connection it has consumed: every packet carries the sender's credit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<QQIIIHHIII")
HEADER_SIZE = HEADER.size  # 44

VMADDR_CID_HOST = 2
TYPE_STREAM = 1

OP_INVALID = 0
OP_REQUEST = 1
OP_RESPONSE = 2
OP_RST = 3
OP_SHUTDOWN = 4
OP_RW = 5
OP_CREDIT_UPDATE = 6
OP_CREDIT_REQUEST = 7

SHUTDOWN_RCV = 1  # the sender will receive no more
SHUTDOWN_SEND = 2  # the sender will send no more
SHUTDOWN_BOTH = SHUTDOWN_RCV | SHUTDOWN_SEND

EVENT_TRANSPORT_RESET = 0


@dataclass
class Packet:
    src_cid: int
    dst_cid: int
    src_port: int
    dst_port: int
    op: int
    flags: int = 0
    buf_alloc: int = 0
    fwd_cnt: int = 0
    payload: bytes = b""
    type: int = TYPE_STREAM

    def header(self, length: int | None = None) -> bytes:
        """The header, for a payload of ``length`` bytes (default: all of it)."""
        n = len(self.payload) if length is None else length
        return HEADER.pack(self.src_cid, self.dst_cid, self.src_port, self.dst_port, n,
                           self.type, self.op, self.flags, self.buf_alloc, self.fwd_cnt)

    @classmethod
    def parse_header(cls, raw: bytes) -> tuple[Packet, int]:
        """A packet without its payload, and the payload length the header gives."""
        (src_cid, dst_cid, src_port, dst_port, length, type_, op, flags, buf_alloc,
         fwd_cnt) = HEADER.unpack(raw[:HEADER_SIZE])
        return cls(src_cid, dst_cid, src_port, dst_port, op, flags, buf_alloc, fwd_cnt,
                   type=type_), length
