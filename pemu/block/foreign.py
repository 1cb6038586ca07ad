"""Read-only drivers for conversion from other hypervisors' formats:
VMDK (monolithicSparse, streamOptimized), VHDX and VPC/VHD (fixed and dynamic).

Every table entry is range-checked before use, so a malformed file gives a
BlockError rather than a wild read.
"""

from __future__ import annotations

import struct
import uuid
import zlib

from .driver_info import declare
from .errors import BlockError
from .node import BlockNode, Extent

SECTOR = 512


class _ReadOnlyNode(BlockNode):
    """Common plumbing: fixed size, block-granular mapping via ``_map_block``."""

    block_size = 0
    _size = 0

    @property
    def size(self) -> int:  # type: ignore[override]
        return self._size

    def _map_block(self, index: int) -> tuple[str, int]:
        """('data', host offset) / ('compressed', host offset) / ('zero', 0) / ('unalloc', 0)"""
        raise NotImplementedError

    def _read_compressed(self, index: int, host: int) -> bytes:
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        pos = 0
        bs = self.block_size
        while pos < length:
            g = offset + pos
            index, within = divmod(g, bs)
            n = min(length - pos, bs - within)
            kind, host = self._map_block(index)
            if kind == "data":
                out[pos:pos + n] = self.file.read(host + within, n)
            elif kind == "compressed":
                out[pos:pos + n] = self._read_compressed(index, host)[within:within + n]
            pos += n
        return bytes(out)

    def block_status(self, offset: int, length: int) -> Extent:
        bs = self.block_size
        index, within = divmod(offset, bs)
        kind, host = self._map_block(index)
        n = min(length, bs - within)
        if kind == "data":
            return Extent(n, allocated=True, zero=False, data=True, offset=host + within)
        if kind == "compressed":
            return Extent(n, allocated=True, zero=False, data=True)
        return Extent(n, allocated=kind == "zero", zero=True, data=False)

    def check_range(self, host: int, n: int, what: str) -> None:
        if host < 0 or host + n > self.file.size + SECTOR * 8:
            raise BlockError(f"{self.format_name}: {what} at {host:#x} is outside the file")


# -- VMDK --------------------------------------------------------------------------
_VMDK_HDR = struct.Struct("<4sIIQQQQIQQQB4sH")
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_FLAG_COMPRESSED = 1 << 16


class VmdkNode(_ReadOnlyNode):
    format_name = "vmdk"

    def __init__(self, file: BlockNode) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = True
        head = file.read(0, 512)
        if head[:4] != b"KDMV":
            if head.startswith(b"# Disk DescriptorFile"):
                raise BlockError("vmdk: descriptor files with separate extents are not "
                                 "supported; convert the monolithic image instead")
            raise BlockError("Image is not in vmdk format")
        hdr = self._parse(head)
        if hdr["gd"] == _GD_AT_END:
            if file.size < 1536:
                raise BlockError("vmdk: stream footer is missing")
            hdr = self._parse(file.read(file.size - 1024, 512))
            if hdr["gd"] == _GD_AT_END:
                raise BlockError("vmdk: footer has no grain directory")
        self.hdr = hdr
        self.compressed = bool(hdr["flags"] & _FLAG_COMPRESSED)
        self._size = hdr["capacity"] * SECTOR
        self.block_size = hdr["grain"] * SECTOR
        self.gt_entries = hdr["gtes"]
        gt_coverage = self.gt_entries * hdr["grain"]
        n_gd = -(-hdr["capacity"] // gt_coverage) if hdr["capacity"] else 0
        gd_off = hdr["gd"] * SECTOR
        self.check_range(gd_off, n_gd * 4, "grain directory")
        self.gd = list(struct.unpack(f"<{n_gd}I", file.read(gd_off, n_gd * 4)))
        self._gt_cache: dict[int, tuple[int, ...]] = {}
        self._cbuf: tuple[int, bytes] = (-1, b"")

    def _parse(self, raw: bytes) -> dict:
        if raw[:4] != b"KDMV":
            raise BlockError("vmdk: bad header magic")
        (_, version, flags, capacity, grain, _doff, _dsize, gtes, _rgd, gd, _over, _unclean,
         _chars, algo) = _VMDK_HDR.unpack_from(raw)
        if version not in (1, 2, 3):
            raise BlockError(f"vmdk: unsupported version {version}")
        if grain == 0 or grain & (grain - 1) or grain > 2048 * 16:
            raise BlockError(f"vmdk: invalid grain size {grain}")
        if gtes == 0 or gtes > 65536:
            raise BlockError(f"vmdk: invalid grain table size {gtes}")
        if capacity > (1 << 41):
            raise BlockError("vmdk: capacity too large")
        if flags & _FLAG_COMPRESSED and algo != 1:
            raise BlockError(f"vmdk: unsupported compression algorithm {algo}")
        return {"flags": flags, "capacity": capacity, "grain": grain, "gtes": gtes,
                "gd": gd}

    def _grain_table(self, i: int) -> tuple[int, ...]:
        t = self._gt_cache.get(i)
        if t is None:
            off = self.gd[i] * SECTOR
            self.check_range(off, self.gt_entries * 4, "grain table")
            t = struct.unpack(f"<{self.gt_entries}I", self.file.read(off, self.gt_entries * 4))
            self._gt_cache[i] = t
        return t

    def _map_block(self, index: int) -> tuple[str, int]:
        gd_i, gt_i = divmod(index, self.gt_entries)
        if gd_i >= len(self.gd) or self.gd[gd_i] == 0:
            return "unalloc", 0
        entry = self._grain_table(gd_i)[gt_i]
        if entry == 0:
            return "unalloc", 0
        if entry == 1:
            return "zero", 0
        host = entry * SECTOR
        self.check_range(host, 12 if self.compressed else self.block_size, "grain")
        return ("compressed" if self.compressed else "data"), host

    def _read_compressed(self, index: int, host: int) -> bytes:
        if self._cbuf[0] == host:
            return self._cbuf[1]
        _lba, size = struct.unpack("<QI", self.file.read(host, 12))
        if size > self.block_size * 2 + 1024:
            raise BlockError(f"vmdk: compressed grain at {host:#x} is too large")
        self.check_range(host + 12, size, "compressed grain")
        try:
            data = zlib.decompressobj().decompress(self.file.read(host + 12, size),
                                                   self.block_size)
        except zlib.error as e:
            raise BlockError(f"vmdk: corrupt compressed grain: {e}") from None
        data = data.ljust(self.block_size, b"\0")
        self._cbuf = (host, data)
        return data


# -- VPC / VHD ------------------------------------------------------------------------
_VHD_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
_VHD_DYN = struct.Struct(">8sQQIIII")
_VHD_MAX_GEOMETRY = 65535 * 16 * 255


class VpcNode(_ReadOnlyNode):
    format_name = "vpc"

    def __init__(self, file: BlockNode) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = True
        raw = file.read(0, 512)
        if raw[:8] != b"conectix":
            raw = file.read(max(file.size - 512, 0), 512)
            if raw[:8] != b"conectix":
                raise BlockError("Image is not in vpc format")
        (_, _feat, _ver, data_off, _ts, app, _cv, _os, _orig, cur, cyl, heads, spt, dtype,
         _csum, _uuid, _saved) = _VHD_FOOTER.unpack_from(raw)
        chs = cyl * heads * spt
        use_chs = app not in (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0")
        sectors = chs if use_chs and chs != _VHD_MAX_GEOMETRY else cur // SECTOR
        self._size = sectors * SECTOR
        self.dtype = dtype
        if dtype == 2:
            self.block_size = 1 << 21
            if self._size > file.size:
                raise BlockError("vpc: fixed image is shorter than its size")
            return
        if dtype == 4:
            raise BlockError("vpc: differencing images are not supported")
        if dtype != 3:
            raise BlockError(f"vpc: unknown disk type {dtype}")
        self.check_range(data_off, 1024, "dynamic header")
        dyn = file.read(data_off, _VHD_DYN.size)
        if dyn[:8] != b"cxsparse":
            raise BlockError("vpc: dynamic header has a bad signature")
        (_, _d, table_off, _hv, entries, block, _c) = _VHD_DYN.unpack_from(dyn)
        if block < SECTOR or block & (block - 1) or block > (1 << 28):
            raise BlockError(f"vpc: invalid block size {block}")
        if entries * block < self._size or entries > (1 << 24):
            raise BlockError("vpc: block allocation table is too small for the disk size")
        self.check_range(table_off, entries * 4, "block allocation table")
        self.block_size = block
        self.bitmap = -(-(block // SECTOR // 8) // SECTOR) * SECTOR
        self.bat = struct.unpack(f">{entries}I", file.read(table_off, entries * 4))

    def _map_block(self, index: int) -> tuple[str, int]:
        if self.dtype == 2:
            return "data", index * self.block_size
        if index >= len(self.bat) or self.bat[index] == 0xFFFFFFFF:
            return "unalloc", 0
        host = self.bat[index] * SECTOR + self.bitmap
        self.check_range(host, self.block_size, "data block")
        return "data", host


# -- VHDX -----------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


_BAT_GUID = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
_META_GUID = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
_FILE_PARAMS = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
_DISK_SIZE = _guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
_LOGICAL_SECTOR = _guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")


class VhdxNode(_ReadOnlyNode):
    format_name = "vhdx"

    def __init__(self, file: BlockNode) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = True
        if file.read(0, 8) != b"vhdxfile":
            raise BlockError("Image is not in vhdx format")
        header = self._current_header()
        log_guid = header[48:64]
        if any(log_guid):
            raise BlockError("vhdx: the image log must be replayed first (it was not closed "
                             "cleanly); repair it with qemu-img check -r all")
        regions = self._regions()
        if _BAT_GUID not in regions or _META_GUID not in regions:
            raise BlockError("vhdx: region table lacks the BAT or metadata region")
        meta_off, meta_len = regions[_META_GUID]
        items = self._metadata(meta_off, meta_len)
        try:
            self.block_size, flags = struct.unpack("<II", items[_FILE_PARAMS][:8])
            self._size = struct.unpack("<Q", items[_DISK_SIZE][:8])[0]
            sector = struct.unpack("<I", items[_LOGICAL_SECTOR][:4])[0]
        except (KeyError, struct.error):
            raise BlockError("vhdx: required metadata items are missing") from None
        if flags & 2:
            raise BlockError("vhdx: differencing images are not supported")
        if self.block_size < (1 << 20) or self.block_size > (256 << 20) or \
                self.block_size & (self.block_size - 1):
            raise BlockError(f"vhdx: invalid block size {self.block_size}")
        if sector not in (512, 4096):
            raise BlockError(f"vhdx: invalid logical sector size {sector}")
        if self._size > (64 << 40):
            raise BlockError("vhdx: disk size too large")
        self.chunk_ratio = (1 << 23) * sector // self.block_size
        blocks = -(-self._size // self.block_size)
        entries = blocks + (blocks - 1) // self.chunk_ratio if blocks else 0
        bat_off, bat_len = regions[_BAT_GUID]
        if entries * 8 > bat_len:
            raise BlockError("vhdx: BAT region is too small for the disk size")
        self.check_range(bat_off, entries * 8, "BAT")
        self.bat = struct.unpack(f"<{entries}Q", file.read(bat_off, entries * 8))

    def _current_header(self) -> bytes:
        best, seq = None, -1
        for off in (64 << 10, 128 << 10):
            h = bytearray(self.file.read(off, 4096))
            if h[:4] != b"head":
                continue
            csum = struct.unpack_from("<I", h, 4)[0]
            h[4:8] = bytes(4)
            if crc32c(bytes(h)) != csum:
                continue
            s = struct.unpack_from("<Q", h, 8)[0]
            if s > seq:
                best, seq = bytes(h), s
        if best is None:
            raise BlockError("vhdx: no valid header found")
        return best

    def _regions(self) -> dict[bytes, tuple[int, int]]:
        for off in (192 << 10, 256 << 10):
            r = bytearray(self.file.read(off, 64 << 10))
            if r[:4] != b"regi":
                continue
            csum = struct.unpack_from("<I", r, 4)[0]
            r[4:8] = bytes(4)
            if crc32c(bytes(r)) != csum:
                continue
            count = struct.unpack_from("<I", r, 8)[0]
            if count > 2047:
                raise BlockError("vhdx: region table has too many entries")
            out = {}
            for i in range(count):
                guid, foff, length, _req = struct.unpack_from("<16sQII", r, 16 + i * 32)
                self.check_range(foff, length, "region")
                out[bytes(guid)] = (foff, length)
            return out
        raise BlockError("vhdx: no valid region table found")

    def _metadata(self, off: int, length: int) -> dict[bytes, bytes]:
        raw = self.file.read(off, min(length, 1 << 20))
        if raw[:8] != b"metadata":
            raise BlockError("vhdx: metadata table has a bad signature")
        count = struct.unpack_from("<H", raw, 10)[0]
        if count > 2047:
            raise BlockError("vhdx: metadata table has too many entries")
        items = {}
        for i in range(count):
            guid, ioff, ilen, _flags = struct.unpack_from("<16sIII", raw, 32 + i * 32)
            if ioff + ilen > len(raw):
                raise BlockError("vhdx: metadata item is outside the metadata region")
            items[bytes(guid)] = raw[ioff:ioff + ilen]
        return items

    def _map_block(self, index: int) -> tuple[str, int]:
        bat_i = index + index // self.chunk_ratio
        if bat_i >= len(self.bat):
            return "unalloc", 0
        entry = self.bat[bat_i]
        state = entry & 7
        if state == 6:   # PAYLOAD_BLOCK_FULLY_PRESENT
            host = entry & ~0xFFFFF
            self.check_range(host, self.block_size, "payload block")
            return "data", host
        if state in (0, 1, 2, 3):
            return ("zero" if state == 2 else "unalloc"), 0
        raise BlockError(f"vhdx: unsupported block state {state}")


def _opener(cls):
    def open_node(file: BlockNode, read_only: bool = True, **_ignored) -> BlockNode:
        if not read_only and not _ignored.get("options", {}).get("no-io"):
            raise BlockError(f"{cls.format_name}: this format is supported read-only "
                             "(for conversion); open it with read-only=on")
        return cls(file)
    return open_node


def _magic_probe(*magics: bytes):
    def probe(head: bytes, filename: str) -> int:
        return 100 if head.startswith(magics) else 0
    return probe


# read-only formats: pemu-img info/convert/compare read them, nothing writes them
declare("vmdk", "VMware disk (read-only)", open=_opener(VmdkNode),
        probe=_magic_probe(b"KDMV", b"# Disk DescriptorFile"))
declare("vhdx", "Hyper-V VHDX disk (read-only)", open=_opener(VhdxNode),
        probe=_magic_probe(b"vhdxfile"))
declare("vpc", "Virtual PC / VHD disk (read-only)", open=_opener(VpcNode),
        probe=_magic_probe(b"conectix"))
