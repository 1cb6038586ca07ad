"""The machine state stream: what savevm stores and migration sends.

  header   magic b"PVMF", u32 STREAM_VERSION, u16 length + the machine description
           (board, RAM blocks and sizes, harts: a stream for another machine is refused
           before anything is loaded)
  records  one tag byte each:
    b"R"   RAM pages: u8 length + block name, u64 offset, u32 page count, the pages
    b"Z"   RAM pages that are zero now: block name, offset, count (live migration
           resends a page that became zero; a savevm stream never needs it, since
           loading starts from zeroed RAM - zero pages cost nothing)
    b"D"   device state: u8 length + section id (the VMState name), u32 instance id
           (the n-th device of that name, in the board's order), u32 length, one
           section (section.py, with its own CRC)
    b"S"   RAM left in place (CPR): block name, u8 how (0: the memfd handed over on
           the cpr channel, 1: the file at the path), u16 length + path, u64 size
    b"E"   end: u32 CRC32 of every byte before it (header included)

All integers little-endian.  The reader bounds every length before reading it, so a
truncated, corrupt or lying stream raises ``StreamError`` with what was wrong.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

MAGIC = b"PVMF"
STREAM_VERSION = 1
PAGE_SIZE = 4096
MAX_RUN_PAGES = 256  # one R record carries at most 1 MiB
MAX_DEVICE_SECTION = 16 << 20
MAX_DESCRIPTION = 4096

TAG_RAM, TAG_ZERO, TAG_DEVICE, TAG_END = b"R", b"Z", b"D", b"E"
TAG_SHARED = b"S"
SHARED_BY_CHANNEL, SHARED_BY_PATH = 0, 1
MAX_PATH = 4096


class StreamError(Exception):
    """A stream that cannot be loaded; the message is for the user."""

    def __init__(self, why: str) -> None:
        super().__init__(f"migration stream: {why}")
        self.why = why


@dataclass(frozen=True)
class RamRecord:
    block: str
    offset: int
    data: bytes  # a whole number of pages; empty bytes of ``zero_pages`` for a Z record
    zero_pages: int = 0


@dataclass(frozen=True)
class DeviceRecord:
    idstr: str
    instance_id: int
    section: bytes


@dataclass(frozen=True)
class SharedRamRecord:
    """The block's RAM is not in the stream: it stays in shared memory that the
    destination maps (the memfd received on the cpr channel, or the file at ``path``)."""
    block: str
    how: int  # SHARED_BY_CHANNEL or SHARED_BY_PATH
    path: str
    size: int


@dataclass(frozen=True)
class EndRecord:
    pass


class StreamWriter:
    """Writes records to ``write`` (a file's or a socket's), keeping the running CRC."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self.crc = 0
        self.bytes_written = 0

    def _out(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.bytes_written += len(data)
        self._write(data)

    def header(self, description: str) -> None:
        raw = description.encode()
        self._out(MAGIC + struct.pack("<IH", STREAM_VERSION, len(raw)) + raw)

    @staticmethod
    def _name(name: str) -> bytes:
        raw = name.encode("ascii")
        return bytes([len(raw)]) + raw

    def ram(self, block: str, offset: int, data: bytes | memoryview) -> None:
        n = len(data) // PAGE_SIZE
        assert len(data) == n * PAGE_SIZE and 0 < n <= MAX_RUN_PAGES
        self._out(TAG_RAM + self._name(block) + struct.pack("<QI", offset, n))
        self._out(bytes(data))

    def zero(self, block: str, offset: int, pages: int) -> None:
        self._out(TAG_ZERO + self._name(block) + struct.pack("<QI", offset, pages))

    def device(self, idstr: str, instance_id: int, section: bytes) -> None:
        self._out(TAG_DEVICE + self._name(idstr) + struct.pack("<II", instance_id,
                                                                len(section)))
        self._out(section)

    def shared(self, block: str, how: int, path: str, size: int) -> None:
        raw = path.encode()
        self._out(TAG_SHARED + self._name(block) + struct.pack("<BH", how, len(raw)) + raw
                  + struct.pack("<Q", size))

    def end(self) -> None:
        crc = self.crc
        self._out(TAG_END + struct.pack("<I", crc))


class StreamReader:
    """Parses records from ``read(n)`` (which may return fewer bytes only at the end)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.crc = 0
        self.bytes_read = 0
        self.ended = False

    def _take(self, n: int, what: str) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._read(n - len(data))
            if not chunk:
                raise StreamError(f"truncated: the stream ends inside {what} "
                                  f"(after {self.bytes_read + len(data)} bytes)")
            data += chunk
        self.crc = zlib.crc32(data, self.crc)
        self.bytes_read += n
        return data

    def _name(self, what: str) -> str:
        raw = self._take(self._take(1, what)[0], what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise StreamError(f"{what}: the name is not ASCII (corrupt stream)") from None

    def header(self) -> str:
        magic = self._take(4, "the header")
        if magic != MAGIC:
            raise StreamError("not a pemu machine state (bad magic)")
        version, length = struct.unpack("<IH", self._take(6, "the header"))
        if version != STREAM_VERSION:
            raise StreamError(f"stream version {version}, this pemu reads version "
                              f"{STREAM_VERSION}")
        if length > MAX_DESCRIPTION:
            raise StreamError("corrupt header (machine description too long)")
        try:
            return self._take(length, "the header").decode()
        except UnicodeDecodeError:
            raise StreamError("corrupt header (machine description)") from None

    def record(self) -> RamRecord | DeviceRecord | SharedRamRecord | EndRecord:
        crc_before = self.crc
        tag = self._take(1, "a record tag")
        if tag in (TAG_RAM, TAG_ZERO):
            what = "a RAM record"
            block = self._name(what)
            offset, n = struct.unpack("<QI", self._take(12, what))
            if offset % PAGE_SIZE:
                raise StreamError(f"RAM record at unaligned offset 0x{offset:x}")
            if tag == TAG_ZERO:
                return RamRecord(block, offset, b"", zero_pages=n)
            if not 0 < n <= MAX_RUN_PAGES:
                raise StreamError(f"RAM record of {n} pages (corrupt stream)")
            return RamRecord(block, offset, self._take(n * PAGE_SIZE, what))
        if tag == TAG_DEVICE:
            what = "a device record"
            idstr = self._name(what)
            instance_id, length = struct.unpack("<II", self._take(8, what))
            if length > MAX_DEVICE_SECTION:
                raise StreamError(f"device record of {length} bytes (corrupt stream)")
            return DeviceRecord(idstr, instance_id, self._take(length, what))
        if tag == TAG_SHARED:
            what = "a shared RAM record"
            block = self._name(what)
            how, length = struct.unpack("<BH", self._take(3, what))
            if how not in (SHARED_BY_CHANNEL, SHARED_BY_PATH) or length > MAX_PATH:
                raise StreamError("corrupt shared RAM record")
            try:
                path = self._take(length, what).decode()
            except UnicodeDecodeError:
                raise StreamError("corrupt shared RAM record (path)") from None
            (size,) = struct.unpack("<Q", self._take(8, what))
            return SharedRamRecord(block, how, path, size)
        if tag == TAG_END:
            (crc,) = struct.unpack("<I", self._take(4, "the end record"))
            if crc != crc_before:
                raise StreamError("checksum mismatch: the stream is corrupted")
            self.ended = True
            return EndRecord()
        raise StreamError(f"unknown record tag {tag!r} after {self.bytes_read - 1} bytes "
                          "(corrupt stream)")


def bytes_source(data: bytes) -> Callable[[int], bytes]:
    """``read(n)`` over bytes in memory (savevm's VM state area, a file)."""
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos:pos + n])
        pos += len(chunk)
        return chunk

    return read


__all__ = ["SHARED_BY_CHANNEL", "SHARED_BY_PATH", "DeviceRecord", "EndRecord", "PAGE_SIZE",
           "RamRecord", "SharedRamRecord", "StreamError",
           "StreamReader", "StreamWriter", "bytes_source"]
