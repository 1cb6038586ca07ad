"""The qcow2 format driver: reads v2 and v3, writes v3 (and v2 in place).

Guest offsets map through the L1 table to L2 tables (kept in an LRU cache) to host
clusters.  Writes that land on a cluster we do not exclusively own (unallocated,
zero, compressed or shared with a snapshot) get a fresh cluster, filled by
copy-on-write from whatever the old entry read as, then the L2 entry is switched
and the old cluster's reference dropped -- in that order (see refcount.py).
"""

from __future__ import annotations

import os
import struct
import sys
from collections import OrderedDict

from ..driver_info import BackingOpener
from ..errors import BlockError
from ..luks import open_qcow2_crypto
from ..node import BlockNode, Extent
from . import format as fmt
from .cache_sizes import cache_sizes
from .check import check_image
from .compress import compress_cluster, decompress_cluster
from .format import (
    INCOMPAT_CORRUPT,
    INCOMPAT_DIRTY,
    INCOMPAT_EXTL2,
    OFFSET_MASK,
    OFLAG_COMPRESSED,
    OFLAG_COPIED,
    OFLAG_ZERO,
    Header,
    parse_header,
)
from .refcount import Refcounts
from .snapshot_table import Snapshot, find_snapshot, parse_snapshot_table

UNALLOC, ZERO, NORMAL, COMPRESSED = range(4)
# L2 entries kept decoded in memory (about 40 bytes each as Python ints)


class Qcow2Node(BlockNode):
    format_name = "qcow2"

    def __init__(self, file: BlockNode, read_only: bool = False,
                 secrets: dict[str, bytes] | None = None, options: dict[str, str] | None = None,
                 open_backing: BackingOpener | None = None, depth: int = 0,
                 cache: str = "writeback",
                 check_mode: bool = False) -> None:
        self.file = file
        self.filename = file.filename
        self.read_only = read_only or file.read_only
        self.options = options or {}
        self.warnings: list[str] = []
        self.backing = None
        first = file.read(0, min(max(file.size, 0), 4096))
        if first[:4] == fmt.MAGIC and len(first) >= 24:
            cb = struct.unpack_from(">I", first, 20)[0]
            if fmt.MIN_CLUSTER_BITS <= cb <= fmt.MAX_CLUSTER_BITS and (1 << cb) > len(first):
                first = file.read(0, min(1 << cb, file.size))
        self.h: Header = parse_header(first, file.size, check_mode=check_mode)
        h = self.h
        self.cluster_bits = h.cluster_bits
        self.cluster_size = cs = 1 << h.cluster_bits
        self.cache_sizes = cache_sizes(self.options, cs)
        self.extl2 = bool(h.incompatible_features & INCOMPAT_EXTL2)
        self.words = 2 if self.extl2 else 1
        self.l2_size = cs // (8 * self.words)
        self.l2_bits = self.l2_size.bit_length() - 1
        self.span_bits = self.cluster_bits + self.l2_bits
        self.csize_shift = 62 - (self.cluster_bits - 8)
        self.csize_mask = (1 << (self.cluster_bits - 8)) - 1
        self.coffset_mask = (1 << self.csize_shift) - 1
        self.check_mode = check_mode
        if h.incompatible_features & INCOMPAT_CORRUPT and not self.read_only and not check_mode:
            self._warn(f"qcow2: Image '{self.filename}' is corrupt; opening it read-only "
                       "(run 'pemu-img check -r all' to repair)")
            self.read_only = True
        if self.extl2 and not self.read_only and not check_mode:
            raise BlockError(f"'{self.filename}': qcow2 images with extended L2 entries can "
                             "only be opened read-only")
        self._read_tables()
        self._l2_cache: OrderedDict[int, list[int]] = OrderedDict()
        self._l2_cache_tables = self.cache_sizes.l2_tables
        self._cbuf_key = -1
        self._cbuf = b""
        self._compressed_cursor = 0   # byte offset where the next compressed cluster may go
        self.lazy_refcounts = bool(h.compatible_features & fmt.COMPAT_LAZY_REFCOUNTS)
        self.crypto = None
        if h.crypt_method == fmt.CRYPT_LUKS:
            self.crypto = open_qcow2_crypto(self, secrets or {}, self.options)
        if h.backing_file and open_backing is not None:
            self._open_backing(open_backing, secrets, depth, cache)
        if not self.read_only and not check_mode:
            if h.incompatible_features & INCOMPAT_DIRTY:
                # refcounts may be stale after a crash with lazy refcounts: rebuild them
                check_image(self, repair="all")
                self._set_incompat(INCOMPAT_DIRTY, False)
            if h.autoclear_features & fmt.AUTOCLEAR_BITMAPS:
                # we do not keep persistent bitmaps up to date, so declare them stale
                h.autoclear_features &= ~fmt.AUTOCLEAR_BITMAPS
                self.write_header()

    def _read_tables(self) -> None:
        """The L1 table, the refcounts and the snapshot table where the header says."""
        h, file = self.h, self.file
        raw = file.read(h.l1_table_offset, h.l1_size * 8) if h.l1_size else b""
        self.l1 = list(struct.unpack(f">{h.l1_size}Q", raw))
        for i, e in enumerate(self.l1):
            # check mode opens anyway: the check reports the entry
            if e & fmt.L1E_RESERVED and not self.check_mode:
                raise BlockError(f"qcow2: L1 entry {i} has reserved bits set ({e:#x}); "
                                 "the image is corrupt")
        self.reload_refcounts()
        self._meta: tuple[set[int], set[int]] | None = None
        self.snapshots: list[Snapshot] = []
        self.snapshot_table_bytes = 0
        if h.nb_snapshots:
            data = file.read(h.snapshots_offset, min(64 << 20, max(file.size -
                                                                    h.snapshots_offset, 0)))
            self.snapshots, self.snapshot_table_bytes = parse_snapshot_table(
                data, h.nb_snapshots, self.cluster_size, file.size, h.size,
                min_extra=16 if self.check_mode and h.version >= 3 else 0)

    def invalidate_cache(self) -> None:
        """Another process wrote the image since it was opened here (the source of a
        migration on shared storage, the old pemu of a live update, which flushed it
        at the switch-over): read the header and every table again, drop cached L2s."""
        refresh = getattr(self.file, "refresh_size", None)
        if refresh is not None:
            refresh()
        first = self.file.read(0, min(max(self.file.size, 0), self.cluster_size))
        self.h = parse_header(first, self.file.size, check_mode=self.check_mode)
        self._read_tables()
        self._l2_cache.clear()
        self._cbuf_key = -1
        self._cbuf = b""
        self._compressed_cursor = 0

    # -- helpers -----------------------------------------------------------------
    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(msg, file=sys.stderr)

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.h.size

    @property
    def version(self) -> int:
        return self.h.version

    def _open_backing(self, open_image: BackingOpener, secrets, depth: int, cache: str) -> None:
        path = self.backing_path()
        try:
            self.backing = open_image(path, fmt=self.h.backing_format, read_only=True,
                                      cache=cache, secrets=secrets, depth=depth + 1)
        except BlockError as e:
            raise BlockError(f"Could not open backing file: {e}") from None

    def backing_path(self) -> str | None:
        name = self.h.backing_file
        if not name:
            return None
        if os.path.isabs(name) or ":" in name.split("/")[0]:
            return name
        return os.path.join(os.path.dirname(self.filename), name)

    def corrupt(self, msg: str) -> BlockError:
        """A metadata inconsistency: stop writing, report clearly (nothing is changed on
        disk -- the user decides whether to run check -r)."""
        self.read_only = True
        self.refcounts.writable = False
        return BlockError(f"qcow2: image '{self.filename}' is corrupt: {msg}; "
                          "further writes are refused")

    def _metadata_clusters(self) -> tuple[set[int], set[int]]:
        """(clusters of non-L2 metadata, clusters of active L2 tables), cached until
        metadata moves; used to refuse tables or data that overlap metadata."""
        if self._meta is not None:
            return self._meta
        cb, cs = self.cluster_bits, self.cluster_size

        def span(off: int, length: int) -> range:
            return range(off >> cb, ((off + max(length, 1) - 1) >> cb) + 1)

        fixed = {0}
        fixed.update(span(self.h.l1_table_offset, len(self.l1) * 8))
        fixed.update(span(self.refcounts.table_offset, self.refcounts.table_clusters * cs))
        fixed.update(o >> cb for o in self.refcounts.table if o)
        if self.h.nb_snapshots:
            fixed.update(span(self.h.snapshots_offset, self.snapshot_table_bytes))
        for sn in self.snapshots:
            fixed.update(span(sn.l1_table_offset, sn.l1_size * 8))
        if self.h.crypto_header:
            fixed.update(span(*self.h.crypto_header))
        l2s = {(e & OFFSET_MASK) >> cb for e in self.l1 if e & OFFSET_MASK}
        self._meta = (fixed, l2s)
        return self._meta

    def invalidate_meta(self) -> None:
        self._meta = None

    def _overlap_check(self, first: int, count: int) -> None:
        fixed, l2s = self._metadata_clusters()
        cb = self.cluster_bits
        for c in range(first, first + count):
            if c in fixed or c in l2s or (c << cb) in self._l2_cache:
                raise self.corrupt(f"refcounts claim cluster {c} is free, but it holds "
                                   "metadata")

    def check_releasable(self, entries: list[int]) -> None:
        """Before anything is written: every cluster these entries hold must have a
        refcount we can drop (a zero refcount means the image is corrupt)."""
        cb = self.cluster_bits
        for e in entries:
            if e & OFLAG_COMPRESSED:
                off, n = self.compressed_range(e)
                clusters = range(off >> cb, ((off + n - 1) >> cb) + 1)
            elif e & OFFSET_MASK:
                clusters = range((e & OFFSET_MASK) >> cb, ((e & OFFSET_MASK) >> cb) + 1)
            else:
                continue
            for c in clusters:
                if self.refcounts.get(c) == 0:
                    raise self.corrupt(f"cluster {c} is in use but its refcount is 0")

    def write_header(self) -> None:
        self.check_writable()
        self.invalidate_meta()
        self.file.write(0, self.h.pack())

    def _set_incompat(self, bit: int, on: bool) -> None:
        if on:
            self.h.incompatible_features |= bit
        else:
            self.h.incompatible_features &= ~bit
        self.write_header()
        self.file.flush()

    def reload_refcounts(self) -> None:
        """(Re)read the refcount table the header names (at open; after check rebuilt it)."""
        h = self.h
        self.refcounts = Refcounts(self.file, h.cluster_bits, h.refcount_order,
                                   h.refcount_table_offset, h.refcount_table_clusters,
                                   on_table_moved=self._refcount_table_moved,
                                   strict=not self.check_mode,
                                   cache_blocks=self.cache_sizes.refcount_blocks)
        self.refcounts.writable = not self.read_only
        self.refcounts.overlap_check = self._overlap_check
        self.refcounts.on_change = self.invalidate_meta

    def _refcount_table_moved(self, offset: int, clusters: int) -> None:
        self.h.refcount_table_offset = offset
        self.h.refcount_table_clusters = clusters
        self.write_header()

    def check_writable(self) -> None:
        if self.read_only:
            raise BlockError(f"'{self.filename}': image is opened read-only", errno=30)

    def _mark_dirty(self) -> None:
        if self.lazy_refcounts and not self.h.incompatible_features & INCOMPAT_DIRTY:
            self._set_incompat(INCOMPAT_DIRTY, True)

    # -- tables ------------------------------------------------------------------
    def l2_table(self, offset: int) -> list[int]:
        t = self._l2_cache.get(offset)
        if t is not None:
            self._l2_cache.move_to_end(offset)
            return t
        if offset % self.cluster_size or offset < self.cluster_size:
            raise self.corrupt(f"L2 table offset {offset:#x} is invalid")
        if offset + self.cluster_size > self.file.size:
            raise self.corrupt(f"L2 table at {offset:#x} is outside the image file")
        if offset >> self.cluster_bits in self._metadata_clusters()[0]:
            raise self.corrupt(f"L2 table at {offset:#x} overlaps other metadata")
        raw = self.file.read(offset, self.cluster_size)
        t = list(struct.unpack(f">{self.cluster_size // 8}Q", raw))
        self._cache_l2(offset, t)
        return t

    def _cache_l2(self, offset: int, table: list[int]) -> None:
        """Every way into the L2 cache goes through here, so it keeps its size limit
        (tables are written through at once: evicting one loses nothing)."""
        self._l2_cache[offset] = table
        self._l2_cache.move_to_end(offset)
        while len(self._l2_cache) > self._l2_cache_tables:
            self._l2_cache.popitem(last=False)

    def _set_l1(self, index: int, value: int) -> None:
        self.invalidate_meta()
        self.l1[index] = value
        self.file.write(self.h.l1_table_offset + index * 8, struct.pack(">Q", value))

    def _write_l2_entries(self, table_off: int, table: list[int], first: int, count: int) -> None:
        # the list we changed is authoritative, even if the cache evicted it meanwhile
        self._cache_l2(table_off, table)
        w = self.words
        self.file.write(table_off + first * 8 * w,
                        struct.pack(f">{count * w}Q", *table[first * w:(first + count) * w]))

    def classify(self, entry: int) -> tuple[int, int]:
        """(kind, host offset) of a standard L2 entry."""
        if entry & OFLAG_COMPRESSED:
            return COMPRESSED, entry & self.coffset_mask
        off = entry & OFFSET_MASK
        if entry & OFLAG_ZERO:
            return ZERO, off
        if off:
            if off % self.cluster_size:
                raise self.corrupt(f"cluster allocation offset {off:#x} is unaligned")
            return NORMAL, off
        return UNALLOC, 0

    def compressed_range(self, entry: int) -> tuple[int, int]:
        """(host offset, byte count) of a compressed cluster's data."""
        off = entry & self.coffset_mask
        sectors = ((entry >> self.csize_shift) & self.csize_mask) + 1
        return off, sectors * 512 - (off & 511)

    def _map(self, offset: int, length: int) -> tuple[int, int, int, int]:
        """(kind, host offset of ``offset`` or 0, bytes in this run, raw entry)."""
        cb, cs = self.cluster_bits, self.cluster_size
        l1_index = offset >> self.span_bits
        span_left = ((l1_index + 1) << self.span_bits) - offset
        limit = min(length, span_left)
        if l1_index >= len(self.l1) or not self.l1[l1_index] & OFFSET_MASK:
            return UNALLOC, 0, limit, 0
        table = self.l2_table(self.l1[l1_index] & OFFSET_MASK)
        idx = (offset >> cb) & (self.l2_size - 1)
        in_off = offset & (cs - 1)
        if self.extl2:
            return self._map_extl2(table, idx, in_off, limit)
        entry = table[idx]
        kind, host = self.classify(entry)
        n = cs - in_off
        if kind == COMPRESSED:
            return kind, 0, min(n, limit), entry
        next_host = host + cs
        i = idx + 1
        while n < limit and i < self.l2_size:
            k2, h2 = self.classify(table[i])
            if k2 != kind or (kind == NORMAL and h2 != next_host):
                break
            n += cs
            next_host += cs
            i += 1
        return kind, (host + in_off if kind == NORMAL else 0), min(n, limit), entry

    def _map_extl2(self, table, idx: int, in_off: int, limit: int):
        cs = self.cluster_size
        entry, bitmap = table[2 * idx], table[2 * idx + 1]
        if entry & OFLAG_COMPRESSED:
            return COMPRESSED, 0, min(cs - in_off, limit), entry
        sc = cs // 32
        host = entry & OFFSET_MASK

        def sub_kind(s: int) -> int:
            if bitmap & (1 << s):
                if bitmap & (1 << (32 + s)):
                    raise self.corrupt("subcluster is both allocated and zero")
                return NORMAL
            return ZERO if bitmap & (1 << (32 + s)) else UNALLOC

        s = in_off // sc
        kind = sub_kind(s)
        if kind == NORMAL and (not host or host % cs):
            raise self.corrupt(f"invalid cluster offset {host:#x} for allocated subcluster")
        e = s + 1
        while e < 32 and sub_kind(e) == kind:
            e += 1
        n = min(e * sc - in_off, limit)
        return kind, (host + in_off if kind == NORMAL else 0), n, entry

    # -- reading -----------------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        self._read_into(offset, memoryview(out))
        return bytes(out)

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        for buf in buffers:
            mv = memoryview(buf).cast("B")
            self._read_into(offset, mv)
            offset += len(mv)

    def _read_into(self, offset: int, mv: memoryview) -> None:
        """Fill ``mv`` (which must start zeroed or be fully overwritten) from the image."""
        length = len(mv)
        pos = 0
        while pos < length:
            g = offset + pos
            kind, host, n, entry = self._map(g, length - pos)
            part = mv[pos:pos + n]
            if kind == NORMAL:
                if self.crypto is not None:
                    a = host // 512 * 512
                    b = -(-(host + n) // 512) * 512
                    plain = self.crypto.decrypt(a, self.file.read(a, b - a))
                    part[:] = plain[host - a:host - a + n]
                else:
                    self.file.readv(host, [part])
            elif kind == COMPRESSED:
                cl = self._decompressed(entry)
                in_off = g & (self.cluster_size - 1)
                part[:] = cl[in_off:in_off + n]
            elif kind == UNALLOC and self.backing is not None and g < self.backing.size:
                m = min(n, self.backing.size - g)
                self.backing.readv(g, [part[:m]])
                if m < n:
                    part[m:] = bytes(n - m)
            else:
                part[:] = bytes(n)
            pos += n

    def _decompressed(self, entry: int) -> bytes:
        if entry == self._cbuf_key:
            return self._cbuf
        off, n = self.compressed_range(entry)
        if off + 1 > self.file.size or off < self.cluster_size:
            raise self.corrupt(f"compressed cluster at {off:#x} is outside the image file")
        data = self.file.read(off, min(n, self.file.size - off))
        self._cbuf = decompress_cluster(self.h.compression_type, data, self.cluster_size)
        self._cbuf_key = entry
        return self._cbuf

    def block_status(self, offset: int, length: int) -> Extent:
        kind, host, n, _ = self._map(offset, length)
        if kind == NORMAL:
            return Extent(n, allocated=True, zero=False, data=True, offset=host)
        if kind == COMPRESSED:
            return Extent(n, allocated=True, zero=False, data=True, offset=None)
        if kind == ZERO:
            return Extent(n, allocated=True, zero=True, data=False)
        return Extent(n, allocated=False, zero=self.backing is None, data=False)

    # -- writing -----------------------------------------------------------------
    def _write_data(self, host: int, parts: list) -> None:
        if self.crypto is not None:
            data = b"".join(bytes(p) for p in parts)
            a = host // 512 * 512
            b = -(-(host + len(data)) // 512) * 512
            if a != host or b != host + len(data):
                # encryption works on whole sectors: merge with what the cluster holds
                old = bytearray(self.crypto.decrypt(a, self.file.read(a, b - a)))
                old[host - a:host - a + len(data)] = data
                data, host = bytes(old), a
            self.file.write(host, self.crypto.encrypt(host, data))
        else:
            self.file.writev(host, [memoryview(p).cast("B") for p in parts if len(p)])

    def _owned(self, entry: int) -> bool:
        """Can this cluster be overwritten in place?"""
        return bool(entry & OFLAG_COPIED) and not entry & (OFLAG_COMPRESSED | OFLAG_ZERO) and \
            bool(entry & OFFSET_MASK)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.check_writable()
        self._mark_dirty()
        mv = memoryview(data).cast("B")
        pos, n = 0, len(mv)
        while pos < n:
            g = offset + pos
            chunk = min(n - pos, (((g >> self.span_bits) + 1) << self.span_bits) - g)
            self._write_in_table(g, mv[pos:pos + chunk])
            pos += chunk

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        if len(buffers) == 1:
            self.write(offset, buffers[0])
        else:
            self.write(offset, b"".join(buffers))

    def l2_for_write(self, l1_index: int) -> tuple[int, list[int]]:
        """The L2 table for ``l1_index``, allocated or un-shared first if needed."""
        if l1_index >= len(self.l1):
            raise BlockError("write beyond the L1 table")
        entry = self.l1[l1_index]
        off = entry & OFFSET_MASK
        if off and entry & OFLAG_COPIED:
            return off, self.l2_table(off)
        table = list(self.l2_table(off)) if off else [0] * (self.l2_size * self.words)
        if off:
            self.check_releasable([off])
        new = self.refcounts.alloc(1)
        self.file.write(new, struct.pack(f">{len(table)}Q", *table))
        self._cache_l2(new, table)
        self._set_l1(l1_index, new | OFLAG_COPIED)
        if off:
            self.refcounts.free(off)
            if self.refcounts.get_offset(off) == 0:
                self._l2_cache.pop(off, None)
        return new, table

    def _write_in_table(self, g: int, mv: memoryview) -> None:
        cb, cs = self.cluster_bits, self.cluster_size
        mask = self.l2_size - 1
        end = g + len(mv)
        l1e = self.l1[g >> self.span_bits] if (g >> self.span_bits) < len(self.l1) else 0
        if l1e & OFFSET_MASK:
            # validate before the first byte is written
            cur = self.l2_table(l1e & OFFSET_MASK)
            self.check_releasable([e for e in cur[(g >> cb) & mask:(((end - 1) >> cb) & mask) + 1]
                                   if not self._owned(e)])
        table_off, table = self.l2_for_write(g >> self.span_bits)
        i, last = g >> cb, (end - 1) >> cb
        while i <= last:
            entry = table[i & mask]
            owned = self._owned(entry)
            j = i + 1
            while j <= last:
                e2 = table[j & mask]
                if owned:
                    if not self._owned(e2) or \
                            (e2 & OFFSET_MASK) != (entry & OFFSET_MASK) + (j - i) * cs:
                        break
                elif self._owned(e2):
                    break
                j += 1
            rs, re = max(g, i << cb), min(end, j << cb)
            piece = mv[rs - g:re - g]
            if owned:
                fixed, l2s = self._metadata_clusters()
                host0 = (entry & OFFSET_MASK) >> cb
                if any(h in fixed or h in l2s for h in range(host0, host0 + j - i)):
                    raise self.corrupt(f"data cluster {host0} overlaps metadata")
                self._write_data((entry & OFFSET_MASK) + (rs - (i << cb)), [piece])
            else:
                self._write_new_clusters(table_off, table, i, j, rs, piece)
            i = j

    def _cow_read(self, start: int, length: int) -> bytes:
        """Old contents for copy-on-write; bytes beyond the virtual size are zero."""
        if length <= 0:
            return b""
        m = max(0, min(length, self.size - start))
        return (self.read(start, m) if m else b"") + bytes(length - m)

    def _write_new_clusters(self, table_off: int, table: list[int], i: int, j: int,
                            rs: int, piece: memoryview) -> None:
        cb, cs = self.cluster_bits, self.cluster_size
        k = j - i
        cstart, cend = i << cb, j << cb
        head = self._cow_read(cstart, rs - cstart)
        tail = self._cow_read(rs + len(piece), cend - rs - len(piece))
        first = i & (self.l2_size - 1)
        self.check_releasable(table[first:first + k])
        host = self.refcounts.alloc(k)
        self._write_data(host, [head, piece, tail])
        first = i & (self.l2_size - 1)
        old = table[first:first + k]
        for x in range(k):
            table[first + x] = (host + x * cs) | OFLAG_COPIED
        self._write_l2_entries(table_off, table, first, k)
        self.release(old)

    def release(self, entries: list[int], punch: bool = False) -> None:
        """Drop the references old L2 entries held (after they were unlinked)."""
        changes: dict[int, int] = {}
        cb = self.cluster_bits
        for e in entries:
            if e & OFLAG_COMPRESSED:
                off, n = self.compressed_range(e)
                for c in range(off >> cb, ((off + n - 1) >> cb) + 1):
                    changes[c] = changes.get(c, 0) - 1
            elif e & OFFSET_MASK:
                c = (e & OFFSET_MASK) >> cb
                changes[c] = changes.get(c, 0) - 1
        if not changes:
            return
        self.refcounts.apply(changes)
        for c in changes:
            if self.refcounts.get(c) == 0:
                self._l2_cache.pop(c << cb, None)
                if punch:
                    self.file.discard(c << cb, self.cluster_size)

    def release_map(self, changes: dict[int, int]) -> None:
        """Apply refcount decrements; clusters that become free are discarded in the file."""
        self.refcounts.apply(changes)
        for c in changes:
            if self.refcounts.get(c) == 0:
                self._l2_cache.pop(c << self.cluster_bits, None)
                self.file.discard(c << self.cluster_bits, self.cluster_size)

    def _zero_or_discard(self, offset: int, length: int, discard: bool) -> None:
        """Whole clusters become zero (or unallocated, for a discard without backing)."""
        cb = self.cluster_bits
        c, c_end = offset >> cb, (offset + length) >> cb
        mask = self.l2_size - 1
        v3 = self.version >= 3
        if discard:
            new_entry = OFLAG_ZERO if (self.backing is not None and v3) else 0
            if self.backing is not None and not v3:
                return
        else:
            new_entry = OFLAG_ZERO if v3 else 0
        while c < c_end:
            l1_index = c >> self.l2_bits
            n = min(c_end, (l1_index + 1) << self.l2_bits) - c
            entry = self.l1[l1_index] if l1_index < len(self.l1) else 0
            if not entry & OFFSET_MASK and (new_entry == 0 or discard and self.backing is None):
                c += n
                continue
            first = c & mask
            if entry & OFFSET_MASK:
                cur = self.l2_table(entry & OFFSET_MASK)[first:first + n]
                if all(e == new_entry for e in cur):
                    c += n
                    continue
                self.check_releasable(cur)
            table_off, table = self.l2_for_write(l1_index)
            old = table[first:first + n]
            for x in range(n):
                table[first + x] = new_entry
            self._write_l2_entries(table_off, table, first, n)
            self.release(old, punch=True)
            c += n

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self.check_writable()
        self._mark_dirty()
        cs = self.cluster_size
        end = offset + length
        a = min(end, -(-offset // cs) * cs)
        b = max(a, end // cs * cs) if end < self.size else max(a, -(-end // cs) * cs)
        if a > offset:
            self.write(offset, bytes(a - offset))
        if self.version < 3 and self.backing is not None:
            for p in range(a, b, 1 << 20):
                self.write(p, bytes(min(1 << 20, b - p)))
        elif b > a:
            self._zero_or_discard(a, b - a, discard=False)
        if end > b:
            self.write(b, bytes(end - b))

    def discard(self, offset: int, length: int) -> None:
        if self.read_only:
            return
        cs = self.cluster_size
        end = offset + length
        a = -(-offset // cs) * cs
        b = end // cs * cs if end < self.size else -(-end // cs) * cs
        if b > a:
            self._mark_dirty()
            self._zero_or_discard(a, b - a, discard=True)

    def compress(self, data: bytes) -> bytes | None:
        """Compress one cluster's worth (thread-safe: callers may run it in parallel;
        zlib and zstd release the GIL)."""
        cs = self.cluster_size
        if len(data) < cs:
            data = bytes(data) + bytes(cs - len(data))
        return compress_cluster(self.h.compression_type, data, cs)

    def write_compressed(self, offset: int, data: bytes,
                         comp: bytes | None | bool = False) -> None:
        """Write one whole cluster compressed (the last cluster may be short).
        ``comp`` may carry the result of :meth:`compress` computed earlier."""
        self.check_writable()
        cs, cb = self.cluster_size, self.cluster_bits
        if offset % cs or len(data) > cs:
            raise BlockError("compressed writes must cover exactly one cluster")
        if len(data) < cs:
            data = bytes(data) + bytes(cs - len(data))
        if comp is False:
            comp = self.compress(data)
        if comp is None:
            self.write(offset, data[:min(cs, self.size - offset)])
            return
        if self.crypto is not None:
            raise BlockError("Compression is not supported with encryption")
        n = len(comp)
        cur = self._compressed_cursor
        in_cl = cur & (cs - 1)
        if cur and in_cl and self.refcounts.get_offset(cur) > 0:
            if in_cl + n <= cs:
                host = cur
                self.refcounts.update(cur >> cb, 1, 1)
            else:
                # pack tightly: spill into fresh clusters if they follow the current one
                extra = -(-(in_cl + n - cs) // cs)
                new = self.refcounts.alloc(extra)
                if new == (cur | (cs - 1)) + 1:
                    host = cur
                    self.refcounts.update(cur >> cb, 1, 1)
                else:
                    self.refcounts.free(new, extra)
                    host = self.refcounts.alloc(-(-n // cs))
        else:
            host = self.refcounts.alloc(-(-n // cs))
        self._compressed_cursor = host + n
        self.file.write(host, comp)
        sectors = ((host + n - 1) >> 9) - (host >> 9)
        entry = OFLAG_COMPRESSED | (sectors << self.csize_shift) | host
        table_off, table = self.l2_for_write(offset >> self.span_bits)
        idx = (offset >> cb) & (self.l2_size - 1)
        old = [table[idx]]
        table[idx] = entry
        self._write_l2_entries(table_off, table, idx, 1)
        self.release(old)

    # -- whole-image operations ------------------------------------------------------
    def flush(self) -> None:
        if not self.read_only:
            self.file.flush()

    def l1_entries_for(self, size: int) -> int:
        return -(-size >> self.span_bits) if size else 0

    def grow_l1(self, entries: int) -> None:
        if entries <= len(self.l1):
            return
        if entries * 8 > fmt.MAX_L1_BYTES:
            raise BlockError("Image size too large for the L1 table")
        cs = self.cluster_size
        new_l1 = self.l1 + [0] * (entries - len(self.l1))
        nclusters = -(-entries * 8 // cs)
        new = self.refcounts.alloc(nclusters)
        raw = struct.pack(f">{entries}Q", *new_l1)
        self.file.write(new, raw + bytes(nclusters * cs - len(raw)))
        old_off, old_size = self.h.l1_table_offset, len(self.l1)
        self.h.l1_table_offset, self.h.l1_size = new, entries
        self.l1 = new_l1
        self.invalidate_meta()
        self.write_header()
        if old_size:
            self.refcounts.free(old_off, -(-old_size * 8 // cs))

    def resize(self, new_size: int, shrink: bool = False) -> None:
        self.check_writable()
        if new_size < 0 or new_size > fmt.MAX_VIRTUAL_SIZE:
            raise BlockError(f"Invalid image size {new_size}")
        old = self.size
        if new_size < old:
            if not shrink:
                raise BlockError("Use the --shrink option to perform a shrink operation.")
            if self.snapshots:
                raise BlockError("Can't shrink an image which has snapshots")
            cs = self.cluster_size
            start = -(-new_size // cs) * cs
            if new_size % cs:
                # the cut cluster's tail must read as zero if the image grows again
                self.write_zeroes(new_size, start - new_size)
            if start < old:
                self._zero_or_discard(start, -(-old // cs) * cs - start, discard=True)
                self._unmap_range(start, -(-old // cs) * cs)
        else:
            self.grow_l1(self.l1_entries_for(new_size))
        self.h.size = new_size
        self.write_header()

    def _unmap_range(self, start: int, end: int) -> None:
        """Make every cluster in [start, end) unallocated, even with a backing file."""
        cb = self.cluster_bits
        c, c_end = start >> cb, end >> cb
        while c < c_end:
            l1_index = c >> self.l2_bits
            n = min(c_end, (l1_index + 1) << self.l2_bits) - c
            if self.l1[l1_index] & OFFSET_MASK:
                table_off, table = self.l2_for_write(l1_index)
                first = c & (self.l2_size - 1)
                old = table[first:first + n]
                table[first:first + n] = [0] * n
                self._write_l2_entries(table_off, table, first, n)
                self.release(old, punch=True)
            c += n

    def load_snapshot_read_only(self, name: str) -> None:
        """Show an internal snapshot's contents instead of the active image (convert -l)."""
        sn = find_snapshot(self, name)
        raw = self.file.read(sn.l1_table_offset, sn.l1_size * 8)
        l1 = list(struct.unpack(f">{sn.l1_size}Q", raw))
        self.read_only = True
        self.refcounts.writable = False
        self.l1 = l1 + [0] * max(0, self.l1_entries_for(sn.disk_size) - len(l1))
        self.h.size = sn.disk_size
        self._l2_cache.clear()
        self.invalidate_meta()

    def close(self) -> None:
        if self.file is not None and not self.read_only:
            if self.h.incompatible_features & INCOMPAT_DIRTY:
                self.file.flush()
                self.h.incompatible_features &= ~INCOMPAT_DIRTY
                self.write_header()
            self.file.flush()
        super().close()

    # -- introspection -----------------------------------------------------------
    def format_specific_info(self) -> dict:
        h = self.h
        data: dict = {}
        if h.version >= 3:
            data["compat"] = "1.1"
            data["compression-type"] = fmt.COMPRESSION_NAMES[h.compression_type]
            data["lazy-refcounts"] = self.lazy_refcounts
            data["refcount-bits"] = 1 << h.refcount_order
            if self.crypto is not None:
                data["encrypt"] = self.crypto.info()
            data["corrupt"] = bool(h.incompatible_features & INCOMPAT_CORRUPT)
            data["extended-l2"] = self.extl2
        else:
            data["compat"] = "0.10"
            data["compression-type"] = fmt.COMPRESSION_NAMES[h.compression_type]
            data["refcount-bits"] = 16
            if self.crypto is not None:
                data["encrypt"] = self.crypto.info()
        return {"type": "qcow2", "data": data}

    def cluster_size_info(self) -> int:
        return self.cluster_size


def open_qcow2(file: BlockNode, read_only: bool = False, secrets=None, options=None,
               cache: str = "writeback", open_backing: BackingOpener | None = None,
               depth: int = 0,
               **_ignored) -> Qcow2Node:
    return Qcow2Node(file, read_only=read_only, secrets=secrets, options=options,
                     open_backing=open_backing, depth=depth, cache=cache,
                     check_mode=(options or {}).get("check-mode") == "on")
