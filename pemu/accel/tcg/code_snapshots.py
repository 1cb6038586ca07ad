"""The bytes of every page code was translated from, as they were then.

System mode finds self-modifying code at the guest's instruction-fetch fence (RISC-V
``fence.i``, A64 ``ic``/``isb``) by comparing these snapshots with memory
(system_cpu.SystemTranslator.sync_code).  Linux fences often (Debian's boot: 44 k
``fence.i`` with ~160 translated pages each), so with the native backend the compare
runs as one host routine over all pages (backend/x86_64/page_compare.py) instead of a
copy and compare per page in Python; the table of addresses it reads is rebuilt after
any snapshot is added or dropped.
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.backend.x86_64.page_compare import pages_differ
from pemu.memory.address_space import AddressSpace, RAMBlock

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


class CodeSnapshots:
    """Physical page number -> its bytes when code on it was first translated."""

    def __init__(self, space: AddressSpace, native_compare: bool) -> None:
        self._space = space
        self._snaps: dict[int, bytes] = {}
        # ppn -> the translation cache's digest of its snapshot (tb_cache.page_digest):
        # a page's later blocks compare its bytes with the snapshot instead of hashing
        self._digests: dict[int, bytes] = {}
        self._native = native_compare
        # the native compare's inputs: (page, snapshot) address pairs, their page
        # numbers, the result bytes; and pages it cannot compare (not plain RAM)
        self._table: tuple[ctypes.Array, list[int], ctypes.Array, list[int]] | None = None

    def __contains__(self, ppn: int) -> bool:
        return ppn in self._snaps

    def __len__(self) -> int:
        return len(self._snaps)

    def get(self, ppn: int) -> bytes | None:
        return self._snaps.get(ppn)

    def add(self, ppn: int, page_bytes: bytes | None = None,
            digest: bytes | None = None) -> None:
        """Snapshot page ``ppn`` unless it already has one: ``page_bytes`` if the
        caller just read them (with their ``digest``, if computed), else memory now."""
        if ppn not in self._snaps:
            self._snaps[ppn] = self.page_bytes(ppn) if page_bytes is None else page_bytes
            if digest is not None:
                self._digests[ppn] = digest
            self._table = None

    def digest(self, ppn: int) -> bytes | None:
        """The digest remembered with the page's snapshot, if any."""
        return self._digests.get(ppn)

    def set_digest(self, ppn: int, digest: bytes) -> None:
        if ppn in self._snaps:
            self._digests[ppn] = digest

    def pop(self, ppn: int) -> None:
        self._digests.pop(ppn, None)
        if self._snaps.pop(ppn, None) is not None:
            self._table = None

    def clear(self) -> None:
        self._snaps.clear()
        self._digests.clear()
        self._table = None

    def page_bytes(self, ppn: int) -> bytes:
        """The page's bytes now (empty if it is not RAM)."""
        region = self._space.find(ppn << PAGE_SHIFT, PAGE_SIZE)
        if not isinstance(region, RAMBlock):
            return b""
        off = (ppn << PAGE_SHIFT) - region.base
        return bytes(region.view[off:off + PAGE_SIZE])

    def changed(self) -> list[int]:
        """The pages whose bytes differ from their snapshots now."""
        if not self._native:
            return [ppn for ppn, snap in self._snaps.items() if self.page_bytes(ppn) != snap]
        table = self._table if self._table is not None else self._build()
        pairs, ppns, out, others = table
        changed = []
        if ppns and pages_differ(pairs, len(ppns), out):
            changed = [ppn for ppn, differs in zip(ppns, out, strict=True) if differs]
        changed.extend(ppn for ppn in others if self.page_bytes(ppn) != self._snaps[ppn])
        return changed

    def _build(self) -> tuple[ctypes.Array, list[int], ctypes.Array, list[int]]:
        ppns: list[int] = []
        addresses: list[int] = []
        others: list[int] = []
        for ppn, snap in self._snaps.items():
            page = ppn << PAGE_SHIFT
            region = self._space.find(page, PAGE_SIZE)
            if len(snap) != PAGE_SIZE or not (isinstance(region, RAMBlock)
                                              and region.contains(page, PAGE_SIZE)):
                others.append(ppn)
                continue
            ppns.append(ppn)
            # the snapshot's own buffer (bytes never move; the table is dropped
            # before a snapshot is)
            addresses += [region.host_addr + page - region.base,
                          ctypes.cast(ctypes.c_char_p(snap), ctypes.c_void_p).value]
        pairs = (ctypes.c_uint64 * len(addresses))(*addresses)
        out = (ctypes.c_uint8 * len(ppns))()
        self._table = (pairs, ppns, out, others)
        return self._table
