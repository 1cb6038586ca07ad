"""qcow2 reference counts: the refcount table, refcount blocks of every width
(1 to 64 bits) and cluster allocation.

Crash safety: every change is written to the file at once (write-through), and
callers order their writes so that a refcount is raised before anything points
at the cluster and lowered only after the last pointer is gone.  A process killed
at any moment therefore leaves at worst leaked clusters, never a cluster in use
with a too-small refcount.
"""

from __future__ import annotations

import re
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..errors import BlockError, CorruptImageError
from .format import OFFSET_MASK

if TYPE_CHECKING:
    from ..node import BlockNode

_WIDE = {3: "B", 4: "H", 5: "I", 6: "Q"}
_NONZERO = re.compile(rb"[^\x00]")
_BLOCK_CACHE_BYTES = 16 << 20


class RefcountCodec:
    """Read and write single entries of a raw refcount block (2**order bits each).

    Blocks stay in their on-disk byte form: decoding a 2 MiB block of 1-bit entries
    into a list would cost 16 million objects for a few lookups."""

    def __init__(self, order: int, cluster_size: int) -> None:
        self.order = order
        self.bits = 1 << order
        self.per_block = cluster_size * 8 // self.bits
        self.max = (1 << self.bits) - 1
        self.cluster_size = cluster_size
        if order >= 3:
            self._st = struct.Struct(">" + _WIDE[order])
            self.width = self.bits // 8

    def get(self, raw: bytearray, i: int) -> int:
        if self.order == 3:
            return raw[i]
        if self.order > 3:
            return self._st.unpack_from(raw, i * self.width)[0]
        per_byte = 8 // self.bits
        # sub-byte widths pack the lowest-numbered entry in the least significant bits
        return (raw[i // per_byte] >> ((i % per_byte) * self.bits)) & self.max

    def set(self, raw: bytearray, i: int, v: int) -> None:
        if self.order == 3:
            raw[i] = v
        elif self.order > 3:
            self._st.pack_into(raw, i * self.width, v)
        else:
            per_byte = 8 // self.bits
            shift = (i % per_byte) * self.bits
            byte = raw[i // per_byte] & ~(self.max << shift)
            raw[i // per_byte] = byte | (v << shift)

    def byte_range(self, start: int, end: int) -> tuple[int, int]:
        """Bytes holding entries [start, end)."""
        return start * self.bits // 8, -(-end * self.bits // 8)

    def nonzero(self, raw: bytearray):
        """(index, value) of every non-zero entry, found by a C-speed byte scan."""
        last = -1
        for m in _NONZERO.finditer(raw):
            b = m.start()
            if self.order >= 3:
                i = b // (self.bits // 8)
                if i != last:
                    last = i
                    yield i, self.get(raw, i)
            else:
                per_byte = 8 // self.bits
                for i in range(b * per_byte, (b + 1) * per_byte):
                    v = self.get(raw, i)
                    if v:
                        yield i, v

    def new_block(self) -> bytearray:
        return bytearray(self.cluster_size)

    def first_free(self, raw: bytearray, start: int) -> int:
        """Index of the first zero entry at or after ``start`` (per_block if none)."""
        i = start
        if self.order == 3:
            j = raw.find(0, i)
            return self.per_block if j < 0 else j
        if self.order > 3:
            zero = bytes(self.width)
            while i < self.per_block:
                j = raw.find(zero, i * self.width)
                if j < 0:
                    return self.per_block
                if j % self.width == 0:
                    return j // self.width
                i = j // self.width + 1
            return self.per_block
        while i < self.per_block:
            # skip whole bytes whose entries are all in use
            if i % (8 // self.bits) == 0:
                b = i * self.bits // 8
                full = _full_byte_skip(raw, b, self.bits)
                if full > b:
                    i = full * 8 // self.bits
                    continue
            if self.get(raw, i) == 0:
                return i
            i += 1
        return self.per_block


def _full_byte_skip(raw: bytearray, b: int, bits: int) -> int:
    """First byte index >= b that may contain a zero entry of ``bits`` bits."""
    n = len(raw)
    while b < n:
        v = raw[b]
        if v == 0:
            return b
        if all((v >> s) & ((1 << bits) - 1) for s in range(0, 8, bits)):
            b += 1
            continue
        return b
    return b


class Refcounts:
    def __init__(self, file: BlockNode, cluster_bits: int, order: int, table_offset: int,
                 table_clusters: int, on_table_moved=None, strict: bool = True,
                 cache_blocks: int | None = None) -> None:
        """``strict=False`` (check mode) keeps broken table entries for the check to
        report (and -r all to replace) instead of refusing the image."""
        self.file = file
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.codec = RefcountCodec(order, self.cluster_size)
        self.per_block = self.codec.per_block
        self.table_offset = table_offset
        self.table_clusters = table_clusters
        raw = file.read(table_offset, table_clusters * self.cluster_size)
        self.table = list(struct.unpack(f">{len(raw) // 8}Q", raw))
        for i, entry in enumerate(self.table):
            if strict and (entry & ~OFFSET_MASK & ~0x1FF or entry % self.cluster_size):
                raise CorruptImageError(f"Refcount block offset {entry:#x} (table entry {i}) is "
                                 "invalid")
        self._cache: OrderedDict[int, bytearray] = OrderedDict()
        self.cache_blocks = cache_blocks or max(4, _BLOCK_CACHE_BYTES // self.cluster_size)
        self.free_hint = 0
        self.on_table_moved = on_table_moved
        self.writable = True
        # raises if a cluster about to be handed out is known metadata
        self.overlap_check = None
        self.on_change = None   # called when refcount metadata moves or grows

    # -- reading -------------------------------------------------------------
    def _block(self, index: int) -> bytearray | None:
        if index >= len(self.table) or self.table[index] == 0:
            return None
        offset = self.table[index]
        blk = self._cache.get(offset)
        if blk is None:
            if offset + self.cluster_size > max(self.file.size, offset + self.cluster_size) \
                    or offset < self.cluster_size:
                raise BlockError(f"Refcount block {index} at {offset:#x} is invalid")
            blk = bytearray(self.file.read(offset, self.cluster_size))
            self._cache[offset] = blk
            if len(self._cache) > self.cache_blocks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(offset)
        return blk

    def get(self, cluster: int) -> int:
        blk = self._block(cluster // self.per_block)
        return 0 if blk is None else self.codec.get(blk, cluster % self.per_block)

    def get_offset(self, host_offset: int) -> int:
        return self.get(host_offset >> self.cluster_bits)

    # -- changing ------------------------------------------------------------
    def update(self, cluster: int, count: int, delta: int) -> None:
        """Add ``delta`` to the refcounts of ``count`` clusters from ``cluster``."""
        changes: dict[int, int] = {}
        for c in range(cluster, cluster + count):
            changes[c] = delta
        self.apply(changes)

    def apply(self, changes: dict[int, int]) -> None:
        """Add each delta to its cluster's refcount; checks everything before writing."""
        if not changes:
            return
        by_block: dict[int, list[tuple[int, int]]] = {}
        for c, d in changes.items():
            if d:
                by_block.setdefault(c // self.per_block, []).append((c % self.per_block, d))
        # make sure every block exists (only increments may need new blocks)
        for index, items in by_block.items():
            if self._block(index) is None:
                if any(d < 0 for _, d in items):
                    raise BlockError("qcow2: refcount would drop below zero (image is corrupt)")
                self._create_block(index)
        plans = []
        for index, items in sorted(by_block.items()):
            blk = self._block(index)
            for i, d in items:
                v = self.codec.get(blk, i) + d
                if v < 0:
                    raise BlockError(f"qcow2: refcount of cluster "
                                     f"{index * self.per_block + i} would drop below zero "
                                     "(image is corrupt)")
                if v > self.codec.max:
                    raise BlockError(f"qcow2: refcount overflow (at most {self.codec.max} "
                                     f"with {self.codec.bits}-bit refcounts)")
            plans.append((index, blk, items))
        for index, blk, items in plans:
            lo = min(i for i, _ in items)
            hi = max(i for i, _ in items) + 1
            for i, d in items:
                v = self.codec.get(blk, i) + d
                self.codec.set(blk, i, v)
                if v == 0:
                    self.free_hint = min(self.free_hint, index * self.per_block + i)
            self._write_block_range(index, blk, lo, hi)

    def _write_block_range(self, index: int, blk: bytearray, lo: int, hi: int) -> None:
        b0, b1 = self.codec.byte_range(lo, hi)
        self.file.write(self.table[index] + b0, bytes(blk[b0:b1]))

    # -- allocation ----------------------------------------------------------
    def _find_free_run(self, n: int, start: int) -> int:
        c = start
        run = 0
        while run < n:
            index = (c + run) // self.per_block
            blk = self._block(index)
            if blk is None:
                # a missing block means every cluster it would cover is free
                block_end = (index + 1) * self.per_block
                run += block_end - (c + run)
                continue
            i = (c + run) % self.per_block
            if self.codec.get(blk, i) == 0:
                run += 1
            else:
                # jump straight to the next free entry of this block
                nxt = self.codec.first_free(blk, i + 1)
                c = index * self.per_block + nxt
                run = 0
        return c

    def alloc(self, n: int) -> int:
        """Allocate ``n`` contiguous clusters (refcount 1); returns the host offset.

        If the run lies where no refcount block exists yet, the missing blocks are
        placed at the start of the run itself (so they describe themselves)."""
        if not self.writable:
            raise BlockError("qcow2: image is read-only")
        m = 0
        for attempt in range(200):
            c = self._find_free_run(n + m, self.free_hint)
            needed = [b for b in range(c // self.per_block, (c + n + m - 1) // self.per_block + 1)
                      if self._block(b) is None]
            if needed and max(needed) >= len(self.table):
                self._grow_table(max(needed) + 1)
                m = 0
                continue
            if len(needed) == m or (len(needed) < m and attempt > 20):
                break
            m = len(needed)
        else:
            raise BlockError("qcow2: cluster allocation did not converge (image is corrupt)")
        used = range(c, c + len(needed) + n)
        if self.overlap_check is not None:
            self.overlap_check(c, len(needed) + n)
        for j, b in enumerate(needed):
            blk = self.codec.new_block()
            for cl in used:
                if cl // self.per_block == b:
                    self.codec.set(blk, cl % self.per_block, 1)
            offset = (c + j) << self.cluster_bits
            self.file.write(offset, bytes(blk))
            self.table[b] = offset
            self.file.write(self.table_offset + b * 8, struct.pack(">Q", offset))
            self._cache[offset] = blk
            if self.on_change is not None:
                self.on_change()
        self.apply({cl: 1 for cl in used if cl // self.per_block not in needed})
        if c <= self.free_hint:
            self.free_hint = c + len(needed) + n
        return (c + len(needed)) << self.cluster_bits

    def free(self, host_offset: int, n: int = 1) -> None:
        self.update(host_offset >> self.cluster_bits, n, -1)

    def _create_block(self, index: int) -> None:
        """A refcount block for range ``index``, placed in the first cluster of that range
        (all of which is free, as no block describes it) and describing itself."""
        if index >= len(self.table):
            self._grow_table(index + 1)
            if self._block(index) is not None:
                return
        pos = index * self.per_block
        blk = self.codec.new_block()
        self.codec.set(blk, 0, 1)
        offset = pos << self.cluster_bits
        self.file.write(offset, bytes(blk))
        self.table[index] = offset
        self.file.write(self.table_offset + index * 8, struct.pack(">Q", offset))
        self._cache[offset] = blk
        if self.on_change is not None:
            self.on_change()

    def _grow_table(self, min_entries: int) -> None:
        """Move the refcount table to a bigger home.  The new table and any refcount
        blocks needed to describe it are written first, the header switched in one
        write, and only then is the old table freed."""
        cs = self.cluster_size
        entries = max(min_entries, len(self.table) * 3 // 2, 1)
        m = 0
        for attempt in range(100):
            k = -(-entries * 8 // cs)
            pos = self._find_free_run(k + m, self.free_hint)
            needed = [b for b in range(pos // self.per_block,
                                       (pos + k + m - 1) // self.per_block + 1)
                      if self._block(b) is None]
            if needed and max(needed) + 1 > entries:
                entries = max(needed) + 1
                continue
            if len(needed) == m or (len(needed) < m and attempt > 10):
                break
            m = len(needed)
        else:
            raise BlockError("qcow2: could not grow the refcount table")
        k = -(-entries * 8 // cs)
        entries = k * cs // 8
        used = list(range(pos, pos + k + len(needed)))
        if self.overlap_check is not None:
            self.overlap_check(pos, len(used))
        new_blocks = needed
        table = self.table + [0] * (entries - len(self.table))
        # write the new refcount blocks, each counting the new clusters it describes
        for j, b in enumerate(new_blocks):
            blk = self.codec.new_block()
            for c in used:
                if c // self.per_block == b:
                    self.codec.set(blk, c % self.per_block, 1)
            offset = (pos + k + j) << self.cluster_bits
            self.file.write(offset, bytes(blk))
            table[b] = offset
            self._cache[offset] = blk
        # clusters of the new table that fall in existing blocks
        old_counted = {c: 1 for c in used if self._block(c // self.per_block) is not None
                       and c // self.per_block not in new_blocks}
        self.apply(old_counted)
        new_offset = pos << self.cluster_bits
        self.file.write(new_offset, struct.pack(f">{entries}Q", *table))
        old_offset, old_clusters = self.table_offset, self.table_clusters
        self.table = table
        self.table_offset, self.table_clusters = new_offset, k
        if self.on_change is not None:
            self.on_change()
        if self.on_table_moved is not None:
            self.on_table_moved(new_offset, k)
        self.update(old_offset >> self.cluster_bits, old_clusters, -1)

    # -- helpers for check/snapshots -------------------------------------------
    def covered_clusters(self) -> int:
        return len(self.table) * self.per_block

    def drop_cache(self) -> None:
        self._cache.clear()
