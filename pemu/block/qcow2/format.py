"""qcow2 on-disk structures: the header, its extensions and entry bit layouts.

Facts from QEMU's docs/interop/qcow2.txt.  Every field read from disk is
validated here, so a malformed header is refused with a clear message before any
other code trusts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import BlockError, CorruptImageError

MAGIC = b"QFI\xfb"

# incompatible feature bits
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

# header extension types
EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

CRYPT_NONE, CRYPT_AES, CRYPT_LUKS = 0, 1, 2
COMPRESSION_ZLIB, COMPRESSION_ZSTD = 0, 1
COMPRESSION_NAMES = {COMPRESSION_ZLIB: "zlib", COMPRESSION_ZSTD: "zstd"}

# table entry bits
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1
OFFSET_MASK = 0x00FFFFFFFFFFFE00
L1E_RESERVED = 0x7F000000000001FF
L2E_STD_RESERVED = 0x3F000000000001FE

MIN_CLUSTER_BITS, MAX_CLUSTER_BITS = 9, 21
MAX_L1_BYTES = 32 << 20          # QEMU's QCOW_MAX_L1_SIZE
MAX_REFTABLE_BYTES = 8 << 20     # QEMU's QCOW_MAX_REFTABLE_SIZE
MAX_SNAPSHOTS = 65536
MAX_VIRTUAL_SIZE = 1 << 56       # offsets are 56-bit
MAX_BACKING_NAME = 1023
V2_HEADER_LEN = 72
V3_HEADER_LEN = 104

_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
_V3 = struct.Struct(">QQQII")


@dataclass
class Header:
    version: int = 3
    backing_file_offset: int = 0
    backing_file_size: int = 0
    cluster_bits: int = 16
    size: int = 0
    crypt_method: int = 0
    l1_size: int = 0
    l1_table_offset: int = 0
    refcount_table_offset: int = 0
    refcount_table_clusters: int = 0
    nb_snapshots: int = 0
    snapshots_offset: int = 0
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = 112
    compression_type: int = 0
    # parsed from extensions / the header cluster
    backing_file: str | None = None
    backing_format: str | None = None
    crypto_header: tuple[int, int] | None = None   # (offset, length)
    unknown_extensions: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    def pack(self) -> bytes:
        """The header cluster's bytes: fixed header, extensions, backing name."""
        cs = self.cluster_size
        out = bytearray()
        exts: list[tuple[int, bytes]] = []
        if self.backing_format:
            exts.append((EXT_BACKING_FORMAT, self.backing_format.encode()))
        if self.crypto_header:
            exts.append((EXT_CRYPTO, struct.pack(">QQ", *self.crypto_header)))
        if self.version >= 3:
            exts.append((EXT_FEATURE_TABLE, _feature_table()))
        exts.extend(self.unknown_extensions)
        if self.version >= 3:
            self.header_length = 112   # QEMU always writes the compression type byte
        fixed_len = self.header_length if self.version >= 3 else V2_HEADER_LEN
        out += _V2.pack(MAGIC, self.version, 0, 0, self.cluster_bits, self.size,
                        self.crypt_method, self.l1_size, self.l1_table_offset,
                        self.refcount_table_offset, self.refcount_table_clusters,
                        self.nb_snapshots, self.snapshots_offset)
        if self.version >= 3:
            out += _V3.pack(self.incompatible_features, self.compatible_features,
                            self.autoclear_features, self.refcount_order, self.header_length)
            out += bytes([self.compression_type]) + bytes(fixed_len - V3_HEADER_LEN - 1)
        for etype, data in exts:
            out += struct.pack(">II", etype, len(data)) + data + bytes(-len(data) % 8)
        out += struct.pack(">II", EXT_END, 0)
        if self.backing_file:
            name = self.backing_file.encode()
            struct.pack_into(">QI", out, 8, len(out), len(name))
            self.backing_file_offset, self.backing_file_size = len(out), len(name)
            out += name
        else:
            self.backing_file_offset = self.backing_file_size = 0
        if len(out) > cs:
            raise BlockError("qcow2 header (with extensions and backing file name) does not fit "
                             f"in one {cs}-byte cluster")
        return bytes(out)


_FEATURES = [(0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"),
             (0, 3, "compression type"), (0, 4, "extended L2 entries"),
             (1, 0, "lazy refcounts"), (2, 0, "bitmaps"), (2, 1, "raw external data")]


def _feature_table() -> bytes:
    return b"".join(struct.pack(">BB46s", t, b, n.encode()) for t, b, n in _FEATURES)


def parse_header(buf: bytes, file_size: int, check_mode: bool = False) -> Header:
    """Parse and validate the header cluster (``buf`` holds at least its first bytes)."""
    if len(buf) < V2_HEADER_LEN or buf[:4] != MAGIC:
        raise BlockError("Image is not in qcow2 format")
    (_, version, bf_off, bf_size, cluster_bits, size, crypt, l1_size, l1_off, rt_off,
     rt_clusters, nb_snap, snap_off) = _V2.unpack_from(buf)
    h = Header(version=version, backing_file_offset=bf_off, backing_file_size=bf_size,
               cluster_bits=cluster_bits, size=size, crypt_method=crypt, l1_size=l1_size,
               l1_table_offset=l1_off, refcount_table_offset=rt_off,
               refcount_table_clusters=rt_clusters, nb_snapshots=nb_snap,
               snapshots_offset=snap_off)
    if version not in (2, 3):
        raise BlockError(f"Unsupported qcow2 version {version}")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise BlockError(f"Unsupported cluster size: 2^{cluster_bits}")
    cs = 1 << cluster_bits
    if version == 2:
        h.header_length = V2_HEADER_LEN
        h.refcount_order = 4
    else:
        if len(buf) < V3_HEADER_LEN:
            raise BlockError("qcow2 header exceeds cluster size")
        (h.incompatible_features, h.compatible_features, h.autoclear_features,
         h.refcount_order, h.header_length) = _V3.unpack_from(buf, V2_HEADER_LEN)
        if h.header_length < V3_HEADER_LEN:
            raise BlockError("qcow2 header too short")
        if h.header_length > cs or h.header_length > len(buf):
            raise BlockError("qcow2 header exceeds cluster size")
        if h.header_length > V3_HEADER_LEN:
            h.compression_type = buf[V3_HEADER_LEN]
    unknown = h.incompatible_features & ~INCOMPAT_KNOWN
    if h.incompatible_features & INCOMPAT_DATA_FILE:
        raise BlockError("Unsupported qcow2 feature(s): external data file")
    if unknown:
        raise BlockError(f"Unsupported qcow2 feature(s): unknown incompatible bits {unknown:#x}")
    if h.autoclear_features & AUTOCLEAR_DATA_FILE_RAW:
        raise BlockError("data-file-raw requires a data file")  # none can be given
    if h.refcount_order > 6:
        raise BlockError("Reference count entry width too large; may not exceed 64 bits")
    if h.compression_type not in COMPRESSION_NAMES:
        raise BlockError(f"qcow2: unknown compression type {h.compression_type}")
    if h.compression_type != COMPRESSION_ZLIB and not h.incompatible_features & \
            INCOMPAT_COMPRESSION:
        raise BlockError("qcow2: compression type is set but the compression type "
                         "feature bit is not")
    if crypt == CRYPT_AES:
        raise BlockError("AES-CBC encrypted qcow2 images are not supported; convert them "
                         "with an older QEMU")
    if crypt not in (CRYPT_NONE, CRYPT_LUKS):
        raise BlockError(f"Unsupported encryption method: {crypt}")
    if size > MAX_VIRTUAL_SIZE:
        raise BlockError(f"Image size {size} is too large")
    entry_bytes = 16 if h.incompatible_features & INCOMPAT_EXTL2 else 8
    if entry_bytes == 16 and cs // 32 < 512:
        raise BlockError(f"Unsupported subcluster size: {cs // 32}")
    l2_span = (cs // entry_bytes) * cs
    needed_l1 = -(-size // l2_span)
    if l1_size * 8 > MAX_L1_BYTES:
        raise BlockError("Active L1 table too large")
    if l1_size < needed_l1:
        raise CorruptImageError("L1 table is too small for the image size")
    if l1_size and (l1_off % cs or l1_off == 0):
        raise CorruptImageError("Invalid L1 table offset")
    if l1_size and l1_off + l1_size * 8 > max(file_size, cs):
        raise CorruptImageError("L1 table is outside the image file")
    if rt_off % cs or rt_off == 0:
        raise CorruptImageError("Invalid reference count table offset")
    if rt_clusters == 0 or rt_clusters * cs > MAX_REFTABLE_BYTES:
        raise CorruptImageError("Reference count table too large" if rt_clusters else
                         "Image has no reference count table")
    if (rt_off + rt_clusters * cs) >> 56:  # past what any qcow2 offset can address
        raise CorruptImageError("Reference count table offset invalid")
    if rt_off + rt_clusters * cs > file_size and not check_mode:  # check: -r all rebuilds
        raise CorruptImageError("Reference count table is outside the image file")
    if nb_snap > MAX_SNAPSHOTS:
        raise BlockError("Too many snapshots")
    if nb_snap and (snap_off % cs or snap_off == 0 or snap_off >= file_size):
        raise CorruptImageError("Invalid snapshot table offset")
    _parse_extensions(h, buf, cs)
    if bf_off:
        if bf_size > MAX_BACKING_NAME or bf_off + bf_size > min(cs, len(buf)):
            raise BlockError("Backing file name too long or outside the header cluster")
        try:
            h.backing_file = buf[bf_off:bf_off + bf_size].decode()
        except UnicodeDecodeError:
            raise BlockError("Backing file name is not valid UTF-8") from None
    if crypt == CRYPT_LUKS and h.crypto_header is None:
        raise BlockError("LUKS encryption is set but there is no crypto header extension")
    return h


def _parse_extensions(h: Header, buf: bytes, cs: int) -> None:
    pos = h.header_length
    end = min(cs, len(buf))
    if h.backing_file_offset:
        end = min(end, h.backing_file_offset)
    while pos + 8 <= end:
        etype, length = struct.unpack_from(">II", buf, pos)
        pos += 8
        if etype == EXT_END:
            return
        if pos + length > end:
            raise BlockError("qcow2: header extension is outside the header cluster")
        data = buf[pos:pos + length]
        if etype == EXT_BACKING_FORMAT:
            try:
                h.backing_format = data.decode()
            except UnicodeDecodeError:
                raise BlockError("Backing format name is not valid UTF-8") from None
        elif etype == EXT_CRYPTO:
            if length != 16:
                raise BlockError("qcow2: crypto header extension has the wrong size")
            off, clen = struct.unpack(">QQ", data)
            if off % cs or clen == 0 or clen > (1 << 30):
                raise BlockError("qcow2: invalid crypto header offset or length")
            h.crypto_header = (off, clen)
        elif etype == EXT_DATA_FILE:
            raise BlockError("Unsupported qcow2 feature(s): external data file")
        elif etype in (EXT_FEATURE_TABLE, EXT_BITMAPS):
            pass   # informational / bitmaps are dropped (autoclear bit cleared on write)
        else:
            h.unknown_extensions.append((etype, data))
        pos += length + (-length % 8)
