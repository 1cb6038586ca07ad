"""qcow2 consistency check and repair (``pemu-img check``), counting references the
way qemu-img does: every L1 table (active and snapshots) is walked on its own, so a
cluster reached through a shared L2 table is counted once per table that reaches it."""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field

from ..errors import BlockError
from .format import (
    INCOMPAT_CORRUPT,
    L1E_RESERVED,
    L2E_STD_RESERVED,
    OFFSET_MASK,
    OFLAG_COMPRESSED,
    OFLAG_COPIED,
)

L2E_ZERO = 1  # bit 0 of a standard L2 entry: the cluster reads as zeros (v3)


@dataclass
class CheckResult:
    corruptions: int = 0
    leaks: int = 0
    check_errors: int = 0
    corruptions_fixed: int = 0
    leaks_fixed: int = 0
    image_end_offset: int = 0
    total_clusters: int = 0
    allocated_clusters: int = 0
    fragmented_clusters: int = 0
    compressed_clusters: int = 0
    messages: list[str] = field(default_factory=list)


class _Refs:
    """Reference counts computed from the metadata (array for in-file clusters)."""

    def __init__(self, nb: int) -> None:
        self.arr = array("Q", bytes(8 * nb))
        self.extra: dict[int, int] = {}

    def inc(self, c: int, n: int = 1) -> None:
        for x in range(c, c + n):
            if x < len(self.arr):
                self.arr[x] += 1
            else:
                self.extra[x] = self.extra.get(x, 0) + 1

    def get(self, c: int) -> int:
        return self.arr[c] if c < len(self.arr) else self.extra.get(c, 0)

    def dec(self, c: int) -> None:
        if c < len(self.arr):
            self.arr[c] = max(self.arr[c] - 1, 0)
        elif self.extra.get(c):
            self.extra[c] -= 1

    def end(self) -> int:
        """One past the highest cluster with a reference."""
        top = max((c for c, n in self.extra.items() if n), default=-1)
        for c in range(len(self.arr) - 1, top, -1):
            if self.arr[c]:
                return c + 1
        return top + 1


def _walk_refs(node, res: CheckResult, refs: _Refs, fix: bool = False
               ) -> tuple[list[int], bool]:
    """Count references into ``refs``; returns the clusters of the refcount table and
    blocks (once per reference counted), and whether a refcount table entry is broken."""
    cs, cb = node.cluster_size, node.cluster_bits
    file_size = node.file.size
    h = node.h

    def inc_range(off: int, length: int) -> None:
        if length <= 0:
            return
        if off + length > file_size + cs:
            # as qemu-img: no refcount is kept (or created, on repair) that far out
            bad(f"ERROR: counting reference for region exceeding the end of the file by "
                f"one cluster or more: offset {off:#x} size {length:#x}")
            return
        first, last = off >> cb, (off + length - 1) >> cb
        refs.inc(first, last - first + 1)

    def bad(msg: str) -> None:
        res.messages.append(msg)
        res.corruptions += 1

    inc_range(0, cs)
    next_contig = [0]

    def walk_l1(l1: list[int], l1_off: int, active: bool) -> None:
        inc_range(l1_off, len(l1) * 8)
        for _i, e in enumerate(l1):
            if e & L1E_RESERVED:
                bad(f"ERROR found L1 entry with reserved bits set: {e:x}")
            l2_off = e & OFFSET_MASK
            if not l2_off:
                continue
            if l2_off % cs:
                bad(f"ERROR l2_offset={l2_off:x}: Table is not cluster aligned; L1 entry "
                    "corrupted")
                continue
            if l2_off + cs > file_size:
                bad(f"ERROR l2_offset={l2_off:x}: L2 table is outside the image file")
                continue
            inc_range(l2_off, cs)
            raw = node.file.read(l2_off, cs)
            table = list(struct.unpack(f">{cs // 8}Q", raw))
            dirty = False
            for j in range(0, len(table), node.words):
                entry = table[j]
                if entry & OFLAG_COMPRESSED:
                    if entry & OFLAG_COPIED:
                        bad(f"ERROR: coffset=0x{entry & node.coffset_mask:x}: copied flag "
                            "must never be set for compressed clusters")
                    off, n = node.compressed_range(entry)
                    if off + n > file_size + 511 + cs:
                        bad(f"ERROR compressed cluster at {off:#x} is outside the image file")
                        continue
                    inc_range(off & ~511, n + (off & 511))
                    if active:
                        res.allocated_clusters += 1
                        res.compressed_clusters += 1
                        res.fragmented_clusters += 1
                    continue
                if entry & L2E_STD_RESERVED and not node.extl2:
                    bad(f"ERROR found l2 entry with reserved bits set: {entry:x}")
                off = entry & OFFSET_MASK
                if not off:
                    continue
                if off % cs:
                    bad(f"ERROR offset={off:x}: Cluster is not properly aligned; L2 entry "
                        "corrupted.")
                    continue
                if off + cs > file_size:
                    # no refcount can be right for it; repair makes the guest see zeros
                    if fix:
                        res.messages.append(f"Repairing offset={off:x}: Data cluster is "
                                            "beyond the end of the image file")
                        table[j] = L2E_ZERO if node.version >= 3 else 0
                        dirty = True
                        res.corruptions_fixed += 1
                    else:
                        bad(f"ERROR offset={off:x}: Data cluster is beyond the end of the "
                            "image file")
                    continue
                inc_range(off, cs)
                if active:
                    res.allocated_clusters += 1
                    if next_contig[0] and off != next_contig[0]:
                        res.fragmented_clusters += 1
                    next_contig[0] = off + cs
            if dirty:
                node.file.write(l2_off, struct.pack(f">{len(table)}Q", *table))
                node._l2_cache.pop(l2_off, None)

    walk_l1(node.l1, h.l1_table_offset, True)
    for s in node.snapshots:
        raw = node.file.read(s.l1_table_offset, s.l1_size * 8)
        walk_l1(list(struct.unpack(f">{s.l1_size}Q", raw)), s.l1_table_offset, False)
    if h.nb_snapshots:
        inc_range(h.snapshots_offset, node.snapshot_table_bytes)
    if h.crypto_header:
        inc_range(*h.crypto_header)
    rc = node.refcounts
    inc_range(rc.table_offset, rc.table_clusters * cs)
    structure = list(range(rc.table_offset >> cb, (rc.table_offset >> cb) + rc.table_clusters))
    broken = rc.table_offset + rc.table_clusters * cs > file_size
    if broken:
        bad("ERROR refcount table is outside the image file")
    for i, off in enumerate(rc.table):
        if not off:
            continue
        if off & ~OFFSET_MASK:
            bad(f"ERROR refcount table entry {i} has reserved bits set")
            broken = True
            continue
        if off % cs:
            bad(f"ERROR refcount block {i} is not cluster aligned; refcount table entry "
                "corrupted")
            broken = True
            continue
        if off + cs > file_size:
            bad(f"ERROR refcount block {i} is outside image")
            broken = True
            continue
        inc_range(off, cs)
        structure.append(off >> cb)
    return structure, broken


def check_image(node, repair: str | None = None) -> CheckResult:
    """Check (and with repair="leaks"/"all", fix) a qcow2 image."""
    res = CheckResult()
    cs, _cb = node.cluster_size, node.cluster_bits
    res.total_clusters = -(-node.size // cs)
    nb = -(-node.file.size // cs)
    refs = _Refs(nb)
    fix = repair == "all" and not node.read_only
    structure, broken = _walk_refs(node, res, refs, fix=fix)
    rc = node.refcounts
    rc.drop_cache()
    fixes: dict[int, int] = {}
    highest = 0
    seen = set()

    def compare(c: int, stored: int) -> None:
        nonlocal highest
        ref = refs.get(c)
        if stored or ref:
            highest = max(highest, c)
        if stored == ref:
            return
        fixing = (repair == "all") or (repair == "leaks" and stored > ref)
        word = "Repairing" if fixing else ("ERROR" if stored < ref else "Leaked")
        res.messages.append(f"{word} cluster {c} refcount={stored} reference={ref}")
        if stored < ref:
            res.corruptions += 1
        else:
            res.leaks += 1
        if fixing:
            fixes[c] = ref - stored
        if c in structure_set:
            structure_wrong.append(c)

    structure_wrong: list[int] = []
    structure_set = set(structure)
    for b, off in enumerate(rc.table):
        if not off or off & ~OFFSET_MASK or off % cs or off + cs > node.file.size:
            continue  # reported by _walk_refs
        try:
            blk = rc._block(b)
        except BlockError as e:
            res.messages.append(f"ERROR refcount block {b}: {e}")
            res.corruptions += 1
            broken = True
            continue
        base = b * rc.per_block
        for i, v in rc.codec.nonzero(blk):
            # like qemu-img, refcounts past the end of the file are not compared
            if base + i < nb or refs.get(base + i):
                seen.add(base + i)
                compare(base + i, v)
    for c in list(range(nb)) + list(refs.extra):
        if c not in seen and refs.get(c):
            compare(c, 0)
    res.image_end_offset = (highest + 1) * cs
    if fix and (broken or structure_wrong):
        # the refcount structure itself cannot be trusted: write a new one, as qemu-img
        for c in structure:
            refs.dec(c)
        _rebuild_refcounts(node, refs)
        res.corruptions_fixed += res.corruptions
        res.messages.append("Rebuilding refcount structure")
    elif repair and not node.read_only:
        if fixes:
            # raise first, then lower: a crash in between only leaks
            rc.apply({c: d for c, d in fixes.items() if d > 0})
            rc.apply({c: d for c, d in fixes.items() if d < 0})
            for d in fixes.values():
                if d < 0:
                    res.leaks_fixed += 1
                else:
                    res.corruptions_fixed += 1
    # stored refcounts from a broken structure say nothing about COPIED flags
    copied_fixes = _check_copied(node, res, repair == "all") if not broken or fix else 0
    if repair and not node.read_only:
        res.corruptions_fixed += copied_fixes
        if repair == "all" and node.h.incompatible_features & INCOMPAT_CORRUPT:
            node.h.incompatible_features &= ~INCOMPAT_CORRUPT
            node.write_header()
        node.file.flush()
    return res


def _rebuild_refcounts(node, refs: _Refs) -> None:
    """A new refcount table and blocks after the last used cluster, holding ``refs``
    (which must not count the old structure) plus the new structure itself; then the
    header points at it.  The old table and blocks are left behind, unreferenced."""
    cs, cb = node.cluster_size, node.cluster_bits
    old = node.refcounts
    codec, per_block = old.codec, old.per_block
    start = max(refs.end(), -(-node.file.size // cs))
    blocks = table_clusters = 0
    while True:  # the structure covers itself
        total = start + blocks + table_clusters
        need_blocks = -(-total // per_block)
        need_table = -(-need_blocks * 8 // cs)
        if (need_blocks, need_table) == (blocks, table_clusters):
            break
        blocks, table_clusters = need_blocks, need_table
    for c in range(start, start + blocks + table_clusters):
        refs.inc(c)
    table = []
    for b in range(blocks):
        raw = codec.new_block()
        for i in range(per_block):
            n = refs.get(b * per_block + i)
            if n:
                codec.set(raw, i, min(n, codec.max))
        offset = (start + b) << cb
        node.file.write(offset, bytes(raw))
        table.append(offset)
    table_offset = (start + blocks) << cb
    node.file.write(table_offset, struct.pack(f">{len(table)}Q", *table)
                    + bytes(table_clusters * cs - 8 * len(table)))
    node.file.flush()
    node.h.refcount_table_offset = table_offset
    node.h.refcount_table_clusters = table_clusters
    node.write_header()
    node.reload_refcounts()


def _check_copied(node, res: CheckResult, fix: bool) -> int:
    """The COPIED flag must be set exactly when the refcount is 1 (active tables)."""
    cs = node.cluster_size
    fixed = 0
    rc = node.refcounts
    for i, e in enumerate(node.l1):
        l2_off = e & OFFSET_MASK
        if not l2_off or l2_off % cs or l2_off + cs > node.file.size:
            continue
        refcount = rc.get_offset(l2_off)
        if (refcount == 1) != bool(e & OFLAG_COPIED):
            res.messages.append(f"{'Repairing' if fix else 'ERROR'} OFLAG_COPIED L2 cluster: "
                                f"l1_index={i} l1_entry={e:x} refcount={refcount}")
            res.corruptions += 1
            if fix and not node.read_only:
                node._set_l1(i, (e | OFLAG_COPIED) if refcount == 1 else (e & ~OFLAG_COPIED))
                fixed += 1
        raw = node.file.read(l2_off, cs)
        table = list(struct.unpack(f">{cs // 8}Q", raw))
        dirty = False
        for j in range(0, len(table), node.words):
            entry = table[j]
            if entry & OFLAG_COMPRESSED:
                continue
            off = entry & OFFSET_MASK
            if not off or off % cs:
                continue
            refcount = rc.get_offset(off)
            if (refcount == 1) != bool(entry & OFLAG_COPIED):
                res.messages.append(f"{'Repairing' if fix else 'ERROR'} OFLAG_COPIED data "
                                    f"cluster: l2_entry={entry:x} refcount={refcount}")
                res.corruptions += 1
                if fix and not node.read_only:
                    table[j] = (entry | OFLAG_COPIED) if refcount == 1 else \
                        (entry & ~OFLAG_COPIED)
                    dirty = True
                    fixed += 1
        if dirty:
            node.file.write(l2_off, struct.pack(f">{len(table)}Q", *table))
            node._l2_cache.pop(l2_off, None)
    return fixed
