"""Which virtual pages a hart's TLBs may hold: the filter behind native page flushes.

Linux on RISC-V fences every PTE it installs (``update_mmu_cache``: ``sfence.vma
addr``) and every text patch (the fixmap page it writes through): ~128 k fences in
Debian's boot, for a page that no TLB of the hart holds or that only the native data
TLBs hold.  ``SoftMMU.flush_page`` did both in a Python helper call.  The filter
lets machine code do them (backend/x86_64/page_walk.emit_flush_probe): one byte per
hash bucket, in three regions, set for every page key some cache of the hart's
``SoftMMU`` may hold, in any of its address spaces:

* *Python pages* (4 KiB, key ``vaddr >> 12``): pages Python's structures hold - its
  dict TLBs (``TLBContext.present`` as Python fills it), ``jump_pages``, the global
  execute pages - and every code page, also the native fetch walk's (its code TLB
  entries are known to Python by the fill log only);
* *native pages*: the native walker's data fills (in the native TLB arrays only);
* *superpages* (``shift`` > 12, key ``vaddr >> shift``): the groups of 4 KiB pieces a
  flush of any address inside it drops (``TLBContext.superpages``, the global ones).

A byte is set before (or as) the entry is made: by Python where it fills, by the
native walker where it fills (the same hash).  The superpage and native bytes are
cleared only by a rebuild from what the caches hold then (after a flush of
everything; also when Python has answered too many flushes that found nothing: stale
bytes).  A Python byte is exact instead: ``counts`` holds, per bucket, how many
(holder, page) pairs are in it (``hold``: an address space that entered the page in
a Python structure or absorbed a native code fill of it, or the hart's global
execute pages), and ``release`` clears the byte when the last goes - when a context
flushes the page, is cleared or dropped.  Address spaces come and go with the
guest's processes (a fork/exec-heavy guest drops several per exec), and the next
process faults and fences at the same virtual pages: with bytes left set until a
rebuild, most of those fences went to Python to find nothing (~45 per exec of
busybox in the lean guest).  (The native fetch walk sets a Python byte uncounted,
until its fill log is absorbed: every release comes after the absorption of the
fills of the context in use, the only one the walker fills.)  So for a page whose
Python byte
and superpage bytes are clear, nothing but the native data TLBs may hold it: the
probe drops its entries there, in every address space's arrays (``contexts``: the
host addresses of the hart's native TLBs), and the flush is done.  Anything else
goes to Python.
"""

from __future__ import annotations

import ctypes
from array import array
from collections.abc import Iterable

# 4 KiB pages: 1 MiB per region and hart (Debian's boot marks ~30 k pages: ~3 % of the
# bytes); the superpages have bytes of their own (a probe checks four superpage keys:
# in the pages' bytes each would be as likely a false hit as the page's own)
PAGE_BITS = 20
NATIVE_BASE = 1 << PAGE_BITS  # the native pages' first byte (the Python pages': 0)
SUPER_BASE = 2 << PAGE_BITS  # the superpages' first byte
SUPER_BITS = 16
FILTER_BYTES = SUPER_BASE + (1 << SUPER_BITS)
HASH_MULT = 0x5BD1_E995  # odd, below 2**31: x86's imul takes it as a sign-extended imm32
PAGE_SHIFT = 12
# the page sizes a RISC-V flush must look for (Sv39 .. Sv57): what the probe checks
PROBE_SHIFTS = (12, 21, 30, 39, 48)
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def bucket(shift: int, key: int) -> int:
    """The filter byte of page key ``key`` (``vaddr >> shift``) of a page of
    ``1 << shift`` bytes: ``h = ((key << 6) | shift) * HASH_MULT`` (mod 2**64) xor
    itself shifted right by PAGE_BITS; its low PAGE_BITS bits for a 4 KiB page (the
    Python region: add NATIVE_BASE for the native one), its low SUPER_BITS from
    SUPER_BASE for a superpage.  Consecutive pages get different bytes."""
    h = (((key << 6) | shift) * HASH_MULT) & MASK64
    h ^= h >> PAGE_BITS
    if shift == PAGE_SHIFT:
        return h & ((1 << PAGE_BITS) - 1)
    return SUPER_BASE + (h & ((1 << SUPER_BITS) - 1))


class PageFilter:
    """One hart's filter (module docstring), a native byte array, and the list of its
    address spaces' native TLB arrays the probe flushes."""

    def __init__(self, max_contexts: int) -> None:
        self.table = (ctypes.c_uint8 * FILTER_BYTES)()
        self.address = ctypes.addressof(self.table)
        # [count, TLB address, ...]; ``_held`` keeps the arrays listed alive until the
        # next ``publish`` (a context dropped in between is flushed harmlessly)
        self.contexts = (ctypes.c_uint64 * (1 + max_contexts))()
        self.contexts_address = ctypes.addressof(self.contexts)
        self._held: list[object] = []
        # flushes that Python answered but that found nothing: when they are many,
        # the filter holds stale bytes and is rebuilt
        self.stale_hits = 0
        self.rebuild_at = 64
        # holders of each Python-page bucket (module docstring)
        self.counts = array("I", bytes(4 << PAGE_BITS))

    def mark(self, shift: int, key: int) -> None:
        """A superpage group."""
        self.table[bucket(shift, key)] = 1

    def hold(self, vpn: int) -> None:
        """One more holder of a page in Python's structures: its Python byte, and its
        native one, since Python's fills reach the native TLB too."""
        page = bucket(PAGE_SHIFT, vpn)
        self.counts[page] += 1
        self.table[page] = 1
        self.table[NATIVE_BASE + page] = 1

    def release(self, vpn: int) -> None:
        """A holder of ``vpn`` (one ``hold``) holds it no more."""
        page = bucket(PAGE_SHIFT, vpn)
        n = self.counts[page]
        if n > 1:
            self.counts[page] = n - 1
        elif n == 1:
            self.counts[page] = 0
            self.table[page] = 0
        else:  # released more often than held: not known any more, so kept marked
            self.table[page] = 1  # (until a rebuild counts again)

    def page_cached(self, vaddr: int) -> bool:
        """May some cache hold an entry that a flush of ``vaddr`` must drop?"""
        t = self.table
        page = bucket(PAGE_SHIFT, vaddr >> PAGE_SHIFT)
        return bool(t[page] or t[NATIVE_BASE + page]
                    or any(t[bucket(s, vaddr >> s)] for s in PROBE_SHIFTS[1:]))

    def publish(self, tlbs: list[tuple[int, object]]) -> None:
        """The native TLB arrays of the hart's address spaces now: (host address,
        owner to keep alive) each."""
        self._held = [owner for _, owner in tlbs]
        for i, (address, _) in enumerate(tlbs, 1):
            self.contexts[i] = address
        self.contexts[0] = len(tlbs)

    def clear(self) -> None:
        """Nothing is cached any more (a flush of everything: the caller's holders
        have released or forgotten every page)."""
        ctypes.memset(self.table, 0, len(self.table))
        ctypes.memset(self.counts.buffer_info()[0], 0, len(self.counts) * 4)
        self.stale_hits = 0

    def rebuild(self, python_pages: Iterable[int], superpages: Iterable[tuple[int, int]]
                ) -> None:
        """Only these are marked in the Python and superpage regions: the pages of
        every holder, once per holder (the counts start again from them), (shift,
        key) superpages.  The native pages stay as they are: a stale native byte costs
        the probe a look at each address space's entries, not a call of Python."""
        ctypes.memset(self.table, 0, NATIVE_BASE)
        ctypes.memset(self.address + SUPER_BASE, 0, FILTER_BYTES - SUPER_BASE)
        counts = self.counts
        ctypes.memset(counts.buffer_info()[0], 0, len(counts) * 4)
        t, n = self.table, 0
        for vpn in python_pages:
            page = bucket(PAGE_SHIFT, vpn)
            t[page] = 1
            counts[page] += 1
            n += 1
        for shift, key in superpages:
            t[bucket(shift, key)] = 1
            n += 1
        self.stale_hits = 0
        self.rebuild_at = 64 + n // 16  # amortized: a rebuild per n/16 stale hits

    def note_stale_hit(self) -> bool:
        """Python flushed a page (the filter said it might be cached) that nothing
        holds now: its bytes are stale.  True when it is time to rebuild."""
        self.stale_hits += 1
        return self.stale_hits >= self.rebuild_at


__all__ = ["HASH_MULT", "NATIVE_BASE", "PAGE_BITS", "PROBE_SHIFTS", "SUPER_BASE",
           "SUPER_BITS", "PageFilter", "bucket"]
