"""Which virtual pages a hart's TLBs may hold: the filter behind native page flushes.

Linux on RISC-V fences every PTE it installs (``update_mmu_cache``: ``sfence.vma
addr``), ~126 k times in Debian's boot, and nearly always for a page that no TLB of
the hart holds (it faulted a moment ago).  ``SoftMMU.flush_page`` is then a no-op,
but it costs a Python helper call to find that out.  The filter lets machine code
find it out: one byte per hash bucket, set for every page key that any cache of the
hart's ``SoftMMU`` may hold an entry for, in any address space:

* a 4 KiB virtual page (``shift`` 12, key ``vaddr >> 12``): what ``TLBContext.present``
  and ``jump_pages`` hold, the global execute pages;
* a superpage (``shift`` > 12, key ``vaddr >> shift``): the groups of 4 KiB pieces a
  flush of any address inside it drops (``TLBContext.superpages``, the global ones).

A byte is set before (or as) the entry is made: by Python where it fills, by the
native page walker where it fills (backend/x86_64/page_walk.py, the same hash).  It
is cleared only by a rebuild from what the caches hold then (after a flush of
everything, or when too many probes found a byte set that no page needs any more):
so a clear byte proves that a flush of the page would find nothing, and a set byte
only sends the flush to Python.  The probe (``page_cached``, and its machine-code
twin) checks the page's key and the key of every superpage size holding it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

# 4 KiB pages: 1 MiB per hart (Debian's boot marks ~27 k pages: ~3 % of the bytes);
# then the superpages, on bytes of their own (a probe checks four superpage keys: in
# the pages' bytes each would be as likely a false hit as the page's own)
PAGE_BITS = 20
SUPER_BITS = 12
SUPER_BASE = 1 << PAGE_BITS  # the superpages' first byte
FILTER_BYTES = SUPER_BASE + (1 << SUPER_BITS)
HASH_MULT = 0x5BD1_E995  # odd, below 2**31: x86's imul takes it as a sign-extended imm32
PAGE_SHIFT = 12
# the page sizes a RISC-V flush must look for (Sv39 .. Sv57): what the probe checks
PROBE_SHIFTS = (12, 21, 30, 39, 48)
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def bucket(shift: int, key: int) -> int:
    """The filter byte of page key ``key`` (``vaddr >> shift``) of a page of
    ``1 << shift`` bytes: ``h = ((key << 6) | shift) * HASH_MULT`` (mod 2**64), its low
    PAGE_BITS bits xor the next ones (consecutive pages get different bytes, and pages
    4 GiB apart differ in the second part); a superpage's: the low SUPER_BITS of that,
    from SUPER_BASE."""
    h = (((key << 6) | shift) * HASH_MULT) & MASK64
    h ^= h >> PAGE_BITS
    if shift == PAGE_SHIFT:
        return h & ((1 << PAGE_BITS) - 1)
    return SUPER_BASE + (h & ((1 << SUPER_BITS) - 1))


class PageFilter:
    """One hart's filter (module docstring), a native byte array."""

    def __init__(self) -> None:
        self.table = (ctypes.c_uint8 * FILTER_BYTES)()
        self.address = ctypes.addressof(self.table)
        # probes that Python answered but that found nothing to flush: when they are
        # many, the filter holds stale bytes and is rebuilt
        self.stale_hits = 0
        self.rebuild_at = 64

    def mark(self, shift: int, key: int) -> None:
        self.table[bucket(shift, key)] = 1

    def mark_page(self, vpn: int) -> None:
        self.table[bucket(PAGE_SHIFT, vpn)] = 1

    def page_cached(self, vaddr: int) -> bool:
        """May some cache hold an entry that a flush of ``vaddr`` must drop?"""
        t = self.table
        return any(t[bucket(s, vaddr >> s)] for s in PROBE_SHIFTS)

    def rebuild(self, pages: Iterable[int], superpages: Iterable[tuple[int, int]]) -> None:
        """Only these 4 KiB page numbers and (shift, key) superpages are marked."""
        ctypes.memset(self.table, 0, len(self.table))
        t, n = self.table, 0
        for vpn in pages:
            t[bucket(PAGE_SHIFT, vpn)] = 1
            n += 1
        for shift, key in superpages:
            t[bucket(shift, key)] = 1
            n += 1
        self.stale_hits = 0
        self.rebuild_at = 64 + n // 16  # amortized: a rebuild per n/16 stale hits

    def note_stale_hit(self) -> bool:
        """A flush found nothing although the filter said it might: True when it is
        time to rebuild."""
        self.stale_hits += 1
        return self.stale_hits >= self.rebuild_at


__all__ = ["HASH_MULT", "PAGE_BITS", "PROBE_SHIFTS", "SUPER_BASE", "SUPER_BITS", "PageFilter",
           "bucket"]
