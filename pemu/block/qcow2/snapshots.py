"""Internal snapshots: create, apply, delete (``pemu-img snapshot``).

A snapshot is a frozen copy of the L1 table; its L2 tables and data clusters are
shared with the active image and protected by raised refcounts, so the first
write to a shared cluster copies it (see Qcow2Node.l2_for_write).  Refcounts are
always raised before a new reference is published and lowered after the old one
is gone.
"""

from __future__ import annotations

import struct
import time

from ..errors import BlockError
from .driver import Qcow2Node
from .format import OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED
from .snapshot_table import Snapshot, find_snapshot


def _tree_refs(node: Qcow2Node, l1: list[int]) -> dict[int, int]:
    """Clusters referenced from one L1 table (its L2 tables and their data)."""
    cb = node.cluster_bits
    refs: dict[int, int] = {}
    for e in l1:
        l2_off = e & OFFSET_MASK
        if not l2_off:
            continue
        refs[l2_off >> cb] = refs.get(l2_off >> cb, 0) + 1
        table = node.l2_table(l2_off)
        for j in range(0, len(table), node.words):
            entry = table[j]
            if entry & OFLAG_COMPRESSED:
                off, n = node.compressed_range(entry)
                for c in range(off >> cb, ((off + n - 1) >> cb) + 1):
                    refs[c] = refs.get(c, 0) + 1
            elif entry & OFFSET_MASK:
                c = (entry & OFFSET_MASK) >> cb
                refs[c] = refs.get(c, 0) + 1
    return refs


def _read_l1(node: Qcow2Node, sn: Snapshot) -> list[int]:
    raw = node.file.read(sn.l1_table_offset, sn.l1_size * 8)
    return list(struct.unpack(f">{sn.l1_size}Q", raw))


def _write_snapshot_table(node: Qcow2Node, snaps: list[Snapshot]) -> None:
    """Write a new table, switch the header to it, then free the old one."""
    cs = node.cluster_size
    data = b"".join(s.pack(node.version) for s in snaps)
    old_off, old_len = node.h.snapshots_offset, node.snapshot_table_bytes
    old_count = node.h.nb_snapshots
    new_off = 0
    if data:
        n = -(-len(data) // cs)
        new_off = node.refcounts.alloc(n)
        node.file.write(new_off, data + bytes(n * cs - len(data)))
    node.h.snapshots_offset = new_off
    node.h.nb_snapshots = len(snaps)
    node.write_header()
    node.snapshots = snaps
    node.snapshot_table_bytes = len(data)
    node.invalidate_meta()
    if old_count and old_len:
        node.refcounts.free(old_off, -(-old_len // cs))


def refresh_copied_flags(node: Qcow2Node) -> None:
    """Set OFLAG_COPIED on active entries exactly where the refcount is 1."""
    rc = node.refcounts
    for i, e in enumerate(node.l1):
        l2_off = e & OFFSET_MASK
        if not l2_off:
            continue
        want = (e | OFLAG_COPIED) if rc.get_offset(l2_off) == 1 else (e & ~OFLAG_COPIED)
        if want != e:
            node._set_l1(i, want)
        table = node.l2_table(l2_off)
        changed = False
        for j in range(0, len(table), node.words):
            entry = table[j]
            if entry & OFLAG_COMPRESSED or not entry & OFFSET_MASK:
                continue
            w = (entry | OFLAG_COPIED) if rc.get_offset(entry & OFFSET_MASK) == 1 else \
                (entry & ~OFLAG_COPIED)
            if w != entry:
                table[j] = w
                changed = True
        if changed:
            node.file.write(l2_off, struct.pack(f">{len(table)}Q", *table))


def vm_state_offset(node: Qcow2Node) -> int:
    """Where the VM state area starts: the first L1 entry past the virtual disk, as
    QEMU places it, so that guest writes never reach it and ``qemu-img`` finds it."""
    return node.l1_entries_for(node.size) << node.span_bits


def _write_vm_state(node: Qcow2Node, data: bytes) -> None:
    start = vm_state_offset(node)
    node.grow_l1(node.l1_entries_for(start + len(data)))
    node.write(start, data)


def _drop_vm_state(node: Qcow2Node, length: int) -> None:
    """Unmap the VM state area from the active L1: the snapshot keeps its copy, and
    the active image must not carry (and later copy-on-write) a stale one."""
    start = vm_state_offset(node)
    end = start + -(-length // node.cluster_size) * node.cluster_size
    node._unmap_range(start, min(end, len(node.l1) << node.span_bits))


def read_vm_state(node: Qcow2Node, name: str) -> bytes:
    """The VM state saved with snapshot ``name``, read through the snapshot's own L1
    (the active image is not changed)."""
    sn = find_snapshot(node, name)
    if not sn.vm_state_size:
        return b""
    snap_l1 = _read_l1(node, sn)
    active, size = node.l1, node.h.size
    node.l1, node.h.size = snap_l1, sn.disk_size
    try:
        return node.read(vm_state_offset(node), sn.vm_state_size)
    finally:
        node.l1, node.h.size = active, size


def create_snapshot(node: Qcow2Node, name: str, date: float | None = None,
                    vm_state: bytes = b"", vm_clock_nsec: int = 0) -> Snapshot:
    """Snapshot the disk, and with ``vm_state`` the machine state stored with it (in the
    VM state area, so ``qemu-img snapshot -l`` shows its size)."""
    node.check_writable()
    if any(s.name == name for s in node.snapshots):
        raise BlockError(f"Snapshot with name '{name}' already exists")
    if vm_state:
        _write_vm_state(node, vm_state)
    ids = [int(s.id_str) for s in node.snapshots if s.id_str.isdigit()]
    sid = str(max(ids, default=0) + 1)
    cs = node.cluster_size
    l1 = list(node.l1)
    n = max(1, -(-len(l1) * 8 // cs))
    refs = _tree_refs(node, l1)
    l1_off = node.refcounts.alloc(n)
    raw = struct.pack(f">{len(l1)}Q", *[e & ~OFLAG_COPIED for e in l1])
    node.file.write(l1_off, raw + bytes(n * cs - len(raw)))
    node.refcounts.apply(refs)
    refresh_copied_flags(node)
    now = time.time() if date is None else date
    sn = Snapshot(l1_off, len(l1), sid, name, int(now), int((now % 1) * 1e9) // 1000 * 1000,
                  vm_clock_nsec, len(vm_state), node.size, 0)
    _write_snapshot_table(node, node.snapshots + [sn])
    if vm_state:
        _drop_vm_state(node, len(vm_state))
    node.flush()
    return sn


def apply_snapshot(node: Qcow2Node, name: str) -> None:
    node.check_writable()
    sn = find_snapshot(node, name)
    snap_l1 = _read_l1(node, sn)
    if sn.disk_size != node.size:
        node.h.size = sn.disk_size
    node.grow_l1(max(len(snap_l1), node.l1_entries_for(sn.disk_size)))
    new_refs = _tree_refs(node, snap_l1)
    old_refs = _tree_refs(node, node.l1)
    node.refcounts.apply(new_refs)
    new_l1 = snap_l1 + [0] * (len(node.l1) - len(snap_l1))
    node.l1 = [e & ~OFLAG_COPIED for e in new_l1]
    node.invalidate_meta()
    node.file.write(node.h.l1_table_offset, struct.pack(f">{len(node.l1)}Q", *node.l1))
    node.write_header()
    node.release_map({c: -d for c, d in old_refs.items()})
    if sn.vm_state_size:
        _drop_vm_state(node, sn.vm_state_size)
    refresh_copied_flags(node)
    node.flush()


def delete_snapshot(node: Qcow2Node, name: str) -> None:
    node.check_writable()
    sn = find_snapshot(node, name)
    l1 = _read_l1(node, sn)
    refs = _tree_refs(node, l1)
    _write_snapshot_table(node, [s for s in node.snapshots if s is not sn])
    node.release_map({c: -d for c, d in refs.items()})
    if sn.l1_size:
        node.refcounts.free(sn.l1_table_offset, -(-sn.l1_size * 8 // node.cluster_size))
    refresh_copied_flags(node)
    node.flush()
