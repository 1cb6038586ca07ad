"""GDB remote serial protocol framing: ``$payload#cs``, acks, escapes, Ctrl-C.

``PacketReader`` cuts the byte stream into events: ``Packet(payload)`` for a packet
whose checksum matched, ``BAD_PACKET`` for one that did not (the caller NAKs it),
``INTERRUPT`` for a 0x03 byte between packets, ``ACK``/``NAK`` for ``+``/``-``.
A packet longer than ``max_size`` (the PacketSize that qSupported advertises) is
dropped the moment it overflows, as QEMU's stub drops it: the reader returns to idle,
yields ``OVERSIZED`` once (NAKed like a bad packet), and the bytes that follow are
noise until the next ``$``.
So a broken or hostile client cannot make the stub buffer without bound, and a good
packet after the junk is still served.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PACKET = 0x4000  # what qSupported advertises as PacketSize
ACK = "ack"
NAK = "nak"
INTERRUPT = "interrupt"
BAD_PACKET = "bad"
OVERSIZED = "oversized"


@dataclass
class Packet:
    payload: bytes


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(payload: bytes) -> bytes:
    """``$payload#cs`` with ``$ # } *`` escaped (every reply goes through this)."""
    out = bytearray()
    for b in payload:
        if b in b"$#}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return b"$" + bytes(out) + b"#%02x" % checksum(bytes(out))


def unescape(data: bytes) -> bytes:
    """Binary data of X packets: ``}`` escapes the next byte (xor 0x20)."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise ValueError("escape character at end of binary data")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def expand_rle(data: bytes) -> bytes:
    """Run-length encoding (``X*n``) that a client may use in packets it sends."""
    if b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x2A and out and i + 1 < len(data):
            out += bytes([out[-1]]) * (data[i + 1] - 29)
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


class PacketReader:
    def __init__(self, max_size: int = MAX_PACKET) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._state = "idle"  # idle | body | sum1 | sum2
        self._sum = ""

    def feed(self, data: bytes):
        for b in data:
            event = self._step(b)
            if event is not None:
                yield event

    def _step(self, b: int):
        state = self._state
        if state == "idle":
            if b == 0x24:  # $
                self._state = "body"
                self._buf = bytearray()
            elif b == 0x03:
                return INTERRUPT
            elif b == 0x2B:
                return ACK
            elif b == 0x2D:
                return NAK
            return None  # noise between packets is ignored, as gdbserver does
        if state == "body":
            if b == 0x23:  # #
                self._state = "sum1"
            elif len(self._buf) < self.max_size:
                self._buf.append(b)
            else:
                self._state = "idle"
                self._buf = bytearray()
                return OVERSIZED
            return None
        if state == "sum1":
            self._sum = chr(b)
            self._state = "sum2"
            return None
        self._state = "idle"
        try:
            expected = int(self._sum + chr(b), 16)
        except ValueError:
            return BAD_PACKET
        body = bytes(self._buf)
        if checksum(body) != expected:
            return BAD_PACKET
        return Packet(body)


def hex_bytes(data: bytes) -> bytes:
    return data.hex().encode()


def parse_hex(text: bytes | str) -> int:
    return int(text, 16)
