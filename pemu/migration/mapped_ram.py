"""Snapshot files whose RAM is mapped, not read (QEMU's ``mapped-ram`` capability).

A sequential stream (stream.py) must be read and copied page by page; this file puts
every RAM block at a fixed, page-aligned offset instead, so that a restore maps the
block's pages MAP_PRIVATE from the file: nothing is read until the guest touches a
page, a write copies the page privately (the file never changes), and every guest
restored from one file shares its clean pages in the host's page cache.

  offset 0   index: magic b"PVMR", u32 FORMAT_VERSION, u32 length of the body
             body:  u16 + machine description (as in a stream header),
                    u16 block count, per block: u8 + name, u64 size,
                    u64 data offset, u64 bitmap offset, u64 bitmap length,
                    u64 devices offset, u64 devices length
             u32 CRC32 of everything before it
  bitmaps    one bit per page (LSB first): 1 = the page's contents are in the file;
             0 = the page is zero (a hole in the file; the restore leaves it anonymous)
  blocks     each block's pages at data offset + page offset (a sparse file: zero
             pages take no disk space)
  devices    a stream (stream.py) with the header, the device records and the end
             record: devices and CPUs keep their own checked format

All integers little-endian.  ``read_index`` checks everything (CRC, the machine, every
offset against the file's size) before ``restore`` maps anything.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from pemu.memory.address_space import RAMBlock
from pemu.migration.machine_state import MachineLoader, MigratableMachine, write_devices
from pemu.migration.ram import nonzero_pages
from pemu.migration.stream import (
    PAGE_SIZE,
    DeviceRecord,
    EndRecord,
    StreamError,
    StreamReader,
    StreamWriter,
    bytes_source,
)

MAGIC = b"PVMR"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sII")
_BLOCK = struct.Struct("<QQQQ")
_DEVICES = struct.Struct("<QQ")
MAX_INDEX = 1 << 20
MAX_DEVICES = 64 << 20
# Past this many runs of non-zero pages a block is mapped from the file whole (its
# holes read as zero too): each run costs a kernel VMA, and vm.max_map_count is finite.
MAX_RUNS_PER_BLOCK = 4096
WRITE_CHUNK = 8 << 20


def _align(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass(frozen=True)
class BlockEntry:
    name: str
    size: int
    data_offset: int
    bitmap_offset: int
    bitmap_length: int


@dataclass(frozen=True)
class Index:
    description: str
    blocks: list[BlockEntry]
    devices_offset: int
    devices_length: int


def is_mapped_ram_file(path: str) -> bool:
    """Whether the file starts like a mapped-ram snapshot (``-incoming file:`` picks
    the restore by what the file is)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


# -- writing -----------------------------------------------------------------------------
def _bitmap(pages: list[int], total: int) -> bytes:
    bits = bytearray((total + 7) // 8)
    for p in pages:
        bits[p >> 3] |= 1 << (p & 7)
    return bytes(bits)


def _runs(pages: list[int]) -> list[tuple[int, int]]:
    """(first page, count) of consecutive page numbers (ascending input)."""
    out: list[tuple[int, int]] = []
    for p in pages:
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def _encode_index(index: Index) -> bytes:
    desc = index.description.encode()
    body = bytearray(struct.pack("<H", len(desc)) + desc)
    body += struct.pack("<H", len(index.blocks))
    for b in index.blocks:
        name = b.name.encode("ascii")
        body += bytes([len(name)]) + name
        body += _BLOCK.pack(b.size, b.data_offset, b.bitmap_offset, b.bitmap_length)
    body += _DEVICES.pack(index.devices_offset, index.devices_length)
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)) + bytes(body)
    return head + struct.pack("<I", zlib.crc32(head))


def save_mapped(machine: MigratableMachine, path: str) -> dict[str, int]:
    """Write the paused machine to ``path`` as a mapped-ram file.  The file is written
    next to ``path`` and renamed over it at the end: a guest restored from the old
    file keeps its (unlinked) pages, where truncating it in place would kill it."""
    machine.migration_pre_save()
    blocks = machine.ram_blocks()
    pages = {b.name: list(nonzero_pages(b)) for b in blocks}
    devices = bytearray()
    dev_writer = StreamWriter(devices.extend)
    dev_writer.header(machine.migration_description())
    write_devices(dev_writer, machine)
    dev_writer.end()

    # the layout: index, bitmaps, block data, devices; the index's size depends on
    # nothing it holds but the names, so it is computed with placeholder offsets
    placeholder = [BlockEntry(b.name, b.size, 0, 0, 0) for b in blocks]
    index_size = len(_encode_index(Index(machine.migration_description(), placeholder,
                                         0, 0)))
    pos = _align(index_size)
    entries: list[BlockEntry] = []
    bitmaps: list[bytes] = []
    for b in blocks:
        bitmaps.append(_bitmap(pages[b.name], b.size // PAGE_SIZE))
        entries.append(BlockEntry(b.name, b.size, 0, pos, len(bitmaps[-1])))
        pos += len(bitmaps[-1])
    pos = _align(pos)
    for i, b in enumerate(blocks):
        e = entries[i]
        entries[i] = BlockEntry(e.name, e.size, pos, e.bitmap_offset, e.bitmap_length)
        pos += _align(b.size)
    index = Index(machine.migration_description(), entries, pos, len(devices))
    raw_index = _encode_index(index)
    assert len(raw_index) == index_size

    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sent = 0
    try:
        os.pwrite(fd, raw_index, 0)
        for e, bits in zip(entries, bitmaps, strict=True):
            os.pwrite(fd, bits, e.bitmap_offset)
        for e, b in zip(entries, blocks, strict=True):
            for first, count in _runs(pages[b.name]):
                start, end = first * PAGE_SIZE, (first + count) * PAGE_SIZE
                for off in range(start, end, WRITE_CHUNK):
                    chunk = b.view[off:min(end, off + WRITE_CHUNK)]
                    os.pwrite(fd, chunk, e.data_offset + off)
                sent += count
        os.pwrite(fd, bytes(devices), index.devices_offset)
        os.ftruncate(fd, index.devices_offset + len(devices))
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise
    total = sum(b.size // PAGE_SIZE for b in blocks)
    return {"normal": sent, "duplicate": total - sent,
            "transferred": index.devices_offset + len(devices)}


# -- reading -----------------------------------------------------------------------------
class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise StreamError("mapped-ram index: truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))


def read_index(fd: int) -> Index:
    """The file's index, checked against the file's own size (not yet the machine)."""
    file_size = os.fstat(fd).st_size
    prefix = os.pread(fd, _PREFIX.size, 0)
    if len(prefix) < _PREFIX.size:
        raise StreamError("mapped-ram file: truncated (no index)")
    magic, version, body_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise StreamError("not a pemu mapped-ram snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise StreamError(f"mapped-ram format version {version}, this pemu reads "
                          f"version {FORMAT_VERSION}")
    if body_len > MAX_INDEX:
        raise StreamError("mapped-ram index: corrupt (too long)")
    rest = os.pread(fd, body_len + 4, _PREFIX.size)
    if len(rest) < body_len + 4:
        raise StreamError("mapped-ram file: truncated inside the index")
    (crc,) = struct.unpack("<I", rest[body_len:])
    if zlib.crc32(prefix + rest[:body_len]) != crc:
        raise StreamError("mapped-ram index: checksum mismatch (corrupt file)")
    cur = _Cursor(rest[:body_len])
    try:
        description = cur.take(cur.unpack(struct.Struct("<H"))[0]).decode()
        (count,) = cur.unpack(struct.Struct("<H"))
        blocks = []
        for _ in range(count):
            name = cur.take(cur.take(1)[0]).decode("ascii")
            blocks.append(BlockEntry(name, *cur.unpack(_BLOCK)))
    except UnicodeDecodeError:
        raise StreamError("mapped-ram index: corrupt (names)") from None
    dev_off, dev_len = cur.unpack(_DEVICES)

    def inside(what: str, offset: int, length: int) -> None:
        if offset + length > file_size:
            raise StreamError(f"mapped-ram file: {what} at 0x{offset:x}+0x{length:x} is "
                              f"past the end of the file (0x{file_size:x} bytes): "
                              "truncated or corrupt")

    for b in blocks:
        pages = b.size // PAGE_SIZE
        if b.size % PAGE_SIZE or b.data_offset % PAGE_SIZE:
            raise StreamError(f"mapped-ram block {b.name!r}: unaligned size or offset")
        if b.bitmap_length != (pages + 7) // 8:
            raise StreamError(f"mapped-ram block {b.name!r}: bitmap of "
                              f"{b.bitmap_length} bytes for {pages} pages")
        inside(f"the bitmap of {b.name!r}", b.bitmap_offset, b.bitmap_length)
        # data past the file's end may be a trailing hole only if the devices follow
        inside(f"block {b.name!r}", b.data_offset, b.size)
    if dev_len > MAX_DEVICES:
        raise StreamError("mapped-ram index: corrupt (device state too long)")
    inside("the device state", dev_off, dev_len)
    return Index(description, blocks, dev_off, dev_len)


def _set_runs(bitmap: bytes, pages: int) -> list[tuple[int, int]]:
    """(first page, count) runs of set bits, clamped to the block (the bitmap is not
    under the index's CRC); a whole 0x00 or 0xff byte that changes nothing is skipped
    at once, so a mostly full or empty bitmap of 1 GiB costs milliseconds."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, byte in enumerate(bitmap):
        if (byte == 0xFF and start >= 0) or (byte == 0 and start < 0):
            continue
        for bit in range(8):
            p = i * 8 + bit
            if byte >> bit & 1:
                if start < 0:
                    start = p
            elif start >= 0:
                runs.append((start, p - start))
                start = -1
    if start >= 0:
        runs.append((start, len(bitmap) * 8 - start))
    return [(s, min(n, pages - s)) for s, n in runs if s < pages]


def restore(machine: MigratableMachine, path: str) -> dict[str, int]:
    """Load a mapped-ram file into the paused machine: check it all, then map each
    block's non-zero pages from the file (nothing is read yet) and load the devices.
    Returns how many pages were mapped and how many mappings that took."""
    fd = os.open(path, os.O_RDONLY)
    try:
        index = read_index(fd)
        ours = {b.name: b for b in machine.ram_blocks()}
        theirs = {e.name: e for e in index.blocks}
        if set(ours) != set(theirs) or any(ours[n].size != theirs[n].size for n in ours):
            layout = ", ".join(f"{e.name}:{e.size >> 20}M" for e in index.blocks)
            raise StreamError(f"the snapshot's RAM ({layout}) is not this machine's")
        raw = os.pread(fd, index.devices_length, index.devices_offset)
        reader = StreamReader(bytes_source(raw))
        loader = MachineLoader(machine)
        loader.begin(reader)  # the machine description; gives the RAM back (zeros)
        loader.settle_ram()  # the file's pages go over zeroed RAM of the block's kind
        records: list[DeviceRecord] = []
        while True:  # every device record checked (the end CRC) before anything maps
            rec = reader.record()
            if isinstance(rec, EndRecord):
                break
            if not isinstance(rec, DeviceRecord):
                raise StreamError("mapped-ram file: RAM in the device state")
            records.append(rec)
        plans = []
        for entry in index.blocks:
            pages = entry.size // PAGE_SIZE
            bitmap = os.pread(fd, entry.bitmap_length, entry.bitmap_offset)
            runs = _set_runs(bitmap, pages)
            if len(runs) > MAX_RUNS_PER_BLOCK:
                runs = [(0, pages)]
            plans.append((ours[entry.name], entry, runs))
        mapped = mappings = 0
        for block, entry, runs in plans:
            mapped += _map_runs(block, entry, runs, fd)
            mappings += len(runs)
        for rec in records:
            loader.apply(rec)
        loader.finish()
        return {"mapped-pages": mapped, "mappings": mappings}
    finally:
        os.close(fd)  # the mappings keep the file


def _map_runs(block: RAMBlock, entry: BlockEntry, runs: list[tuple[int, int]],
              fd: int) -> int:
    pages = 0
    for first, count in runs:
        off = first * PAGE_SIZE
        block.map_file(off, count * PAGE_SIZE, fd, entry.data_offset + off)
        pages += count
    return pages


__all__ = ["FORMAT_VERSION", "Index", "is_mapped_ram_file", "read_index", "restore",
           "save_mapped"]
