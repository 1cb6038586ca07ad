"""The bytes of every page code was translated from, as they were then.

System mode finds self-modifying code at the guest's instruction-fetch fence (RISC-V
``fence.i``, A64 ``ic``/``isb``) by comparing these snapshots with memory
(system_cpu.SystemTranslator.sync_code).  Linux fences often (Debian's boot: 44 k
``fence.i`` with ~160 translated pages each), so with the native backend the compare
runs as one host routine over all pages (backend/x86_64/page_compare.py) instead of a
copy and compare per page in Python; the table of addresses it reads is rebuilt after
any snapshot is added or dropped.

Only pages written since their last compare are compared: the translator's DRAM
keeps a code-write mark per page (memory/code_writes.py) that every writer sets
(translated stores, the softmmu's slow paths, DMA and the loaders through the memory
API), and the compare skips unmarked pages and clears the marks of the others
before comparing them.  Writers set the mark after their bytes land, and the
compare clears it with a fence before it reads the page, so under MTTCG a store on
another host thread is either seen now or marked for the next fence.  Pages outside
that block (a ROM, another RAM block), or all pages when no block is tracked, are
compared every time.
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg import counters
from pemu.accel.tcg.backend.x86_64.page_compare import pages_differ
from pemu.memory.address_space import AddressSpace, RAMBlock

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# the mark of pages nobody marks: the native compare compares them every time and
# never clears it (page_compare.py)
_ALWAYS = ctypes.c_uint8(2)


class CodeSnapshots:
    """Physical page number -> its bytes when code on it was first translated."""

    def __init__(self, space: AddressSpace, native_compare: bool,
                 tracked: RAMBlock | None = None) -> None:
        """``tracked``: the RAM block whose code-write marks say which of its pages
        need a compare (None: every page, every time)."""
        self._space = space
        self._tracked = tracked
        self._writes = tracked.track_code_writes() if tracked is not None else None
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
            self._note_code(ppn, True)

    def _tracked_page(self, ppn: int) -> int | None:
        """The page's number inside the tracked block, if it lies there."""
        block = self._tracked
        if block is None:
            return None
        off = (ppn << PAGE_SHIFT) - block.base
        return off >> PAGE_SHIFT if 0 <= off < block.size else None

    def _note_code(self, ppn: int, holds_code: bool) -> None:
        page = self._tracked_page(ppn)
        if page is not None:
            self._writes.set_code(page, holds_code)

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
            self._note_code(ppn, False)

    def clear(self) -> None:
        self._snaps.clear()
        self._digests.clear()
        self._table = None
        if self._writes is not None:
            self._writes.clear_code()

    def page_bytes(self, ppn: int) -> bytes:
        """The page's bytes now (empty if it is not RAM)."""
        region = self._space.find(ppn << PAGE_SHIFT, PAGE_SIZE)
        if not isinstance(region, RAMBlock):
            return b""
        off = (ppn << PAGE_SHIFT) - region.base
        return bytes(region.view[off:off + PAGE_SIZE])

    def changed(self) -> list[int]:
        """The pages whose bytes differ from their snapshots now (of those written
        since their last compare, where that is tracked)."""
        if not self._native:
            return self._changed_python()
        table = self._table if self._table is not None else self._build()
        triples, ppns, out, others = table
        changed = []
        differ = compared = 0
        if ppns:
            differ, compared = pages_differ(triples, len(ppns), out)
            if differ:
                changed = [ppn for ppn, differs in zip(ppns, out, strict=True) if differs]
        compared += len(others)
        changed.extend(ppn for ppn in others if self.page_bytes(ppn) != self._snaps[ppn])
        changed.extend(self._changed_sticky(set(changed)))
        if counters.ENABLED:
            self._count(compared, len(changed))
        return changed

    def _changed_sticky(self, known: set[int]) -> list[int]:
        """The pages a device may still be writing (code_writes.py: sticky) that the
        compare of marked pages passed by."""
        writes = self._writes
        if writes is None or not writes.sticky:
            return []
        base = self._tracked.base >> PAGE_SHIFT
        return [base + page for page in writes.sticky
                if base + page not in known
                and self.page_bytes(base + page) != self._snaps.get(base + page)]

    def _changed_python(self) -> list[int]:
        """The python backend's compare (the reference: no host code), by the same
        rules as the native routine."""
        writes, changed, compared = self._writes, [], 0
        for ppn, snap in self._snaps.items():
            page = self._tracked_page(ppn)
            if page is not None:
                mark = writes.marks[page]
                if not mark:
                    continue
                writes.marks[page] = 0
            compared += 1
            if self.page_bytes(ppn) != snap:
                changed.append(ppn)
        changed.extend(self._changed_sticky(set(changed)))
        if counters.ENABLED:
            self._count(compared, len(changed))
        return changed

    def _count(self, compared: int, changed: int) -> None:
        sticky = len(self._writes.sticky) if self._writes is not None else 0
        compared += sticky  # (compared once more each, in Python)
        if sticky:
            counters.count("fence.i:sticky pages compared", sticky)
        counters.count("fence.i:sync")
        counters.count("fence.i:pages snapshotted", len(self._snaps))
        counters.count("fence.i:pages compared", compared)
        counters.count("fence.i:pages changed", changed)

    def _build(self) -> tuple[ctypes.Array, list[int], ctypes.Array, list[int]]:
        ppns: list[int] = []
        addresses: list[int] = []
        others: list[int] = []
        always = ctypes.addressof(_ALWAYS)
        writes = self._writes
        for ppn, snap in self._snaps.items():
            page = ppn << PAGE_SHIFT
            region = self._space.find(page, PAGE_SIZE)
            if len(snap) != PAGE_SIZE or not (isinstance(region, RAMBlock)
                                              and region.contains(page, PAGE_SIZE)):
                others.append(ppn)
                continue
            ppns.append(ppn)
            tracked = self._tracked_page(ppn)
            # the snapshot's own buffer (bytes never move; the table is dropped
            # before a snapshot is)
            addresses += [region.host_addr + page - region.base,
                          ctypes.cast(ctypes.c_char_p(snap), ctypes.c_void_p).value,
                          always if tracked is None else writes.marks_address + tracked]
        triples = (ctypes.c_uint64 * len(addresses))(*addresses)
        out = (ctypes.c_uint8 * len(ppns))()
        self._table = (triples, ppns, out, others)
        return self._table
