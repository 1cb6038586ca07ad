"""The system-mode softmmu: per-hart TLBs, the slow path, and the inline fast path.

TLB
---
Each hart has one read and one write TLB per *MMU index* (a translation regime the
target defines; RISC-V: 0 U, 1 S, 2 S with SUM, 3 M), plain dicts from virtual page
number to an *addend*: ``host offset into the DRAM memoryview = vaddr + addend``.
The index is known when a block is translated (the target derives it from the block
flags), so translated code names its dict directly: a load is one dict lookup, a
page-offset compare and a ``struct.unpack_from`` on DRAM.  Only DRAM pages that PMP
grants as a whole and nobody watches (HTIF's tohost page) ever enter a TLB;
everything else (MMIO, the boot ROM, page-crossing and M-mode MPRV accesses) goes
through ``SoftMMU.load``/``store``, which walk the page table, check PMP, refill the
TLB or raise the guest exception.

A read fill installs the write entry too when the PTE is writable and already dirty,
so the usual read-then-write of a page costs one walk.  Superpages are cached as 4 KiB
pieces, remembered by superpage so ``sfence.vma addr`` drops all of them.

Code is found through a separate execute TLB (physical page of a virtual page, per
fetch MMU index) used by the vCPU loop and the translator, never by translated code.

All of these (and the hart's jump cache) exist once per *address space*, a
``TLBContext`` per address space key (RISC-V: satp): a satp write switches sets
instead of flushing, and ``sfence.vma`` with an ASID flushes only the sets of that ASID.

What is guest-specific - the page walk, physical memory protection, the faults, which
regime an MPRV-style access uses - the target supplies per vCPU as a ``GuestMMU``.

With the native backend each context also has a ``native`` part
(backend/x86_64/memory_softmmu.NativeContext): the TLB generated code reads and the
native jump cache.  Every fill and flush here reaches it too.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Callable
from typing import Protocol

from pemu.accel.tcg import counters
from pemu.accel.tcg.backend.python import PythonBackend, _sign_extend_expr, struct_accessors
from pemu.accel.tcg.backend.x86_64.host_atomics import host_atomics
from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, MASK, Block, Helper, MemOp
from pemu.accel.tcg.page_filter import PageFilter
from pemu.memory.address_space import AddressSpace, RAMBlock

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

# kinds of access (what a fault is raised for)
ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC = 0, 1, 2
# permission bits of a translation
PERM_R, PERM_W, PERM_X = 1, 2, 4
PERM_ALL = PERM_R | PERM_W | PERM_X
# a translation's perms may also say that the mapping is global: the same in every
# address space (RISC-V's G bit), so code on it may be found across address spaces
PERM_GLOBAL = 8

N_MMU = 4  # MMU indexes (the target's privilege/translation regimes) per TLB set
MMU_DYNAMIC = -1  # the regime is known only at access time: GuestMMU.data_index() says
TLB_LIMIT = 8192  # entries per dict before it is simply cleared
MAX_CONTEXTS = 32  # address spaces whose TLBs are kept; least recently used go first


class GuestMMU(Protocol):
    """What the softmmu asks the target about one vCPU's address translation.

    An *MMU index* (0 .. N_MMU-1) names a translation regime (RISC-V: U, S, S with
    SUM, M); the block flags fix it at translation time (``TCGTarget.mmu_index``).
    An *address space key* names the page tables in use (RISC-V: satp); each key has
    its own TLB set, so switching address spaces flushes nothing.
    """

    def space_key(self) -> int:
        """The address space in use now."""

    def space_asid(self, key: int) -> int:
        """The ASID an address space key is tagged with (for ASID-selective flushes)."""

    def translate(self, vaddr: int, access: int, idx: int) -> tuple[int, int, int]:
        """(paddr, PERM_* bits, page shift) of ``vaddr`` under MMU index ``idx``; raises
        the guest's page fault."""

    def allows(self, paddr: int, size: int, perm: int, idx: int) -> bool:
        """Physical memory protection: may ``idx`` access ``paddr`` for ``perm``?  False
        also for addresses beyond the guest's physical address space."""

    def page_allows(self, page: int, perm: int, idx: int) -> bool:
        """The same for the whole page (only such pages enter a TLB)."""

    def access_fault(self, access: int, vaddr: int) -> BaseException:
        """The guest exception for an access that translation allowed but protection or
        the physical address map refused."""

    def data_index(self) -> int:
        """The MMU index of an MMU_DYNAMIC access, from the vCPU's state now."""

    # Optional (a target without them never has its TLB refilled natively): what the
    # native backend's page walker (backend/x86_64/page_walk.py: RISC-V Sv39/48/57
    # tables, common cases only) needs.
    #
    # def native_walk_root(self, key: int) -> tuple[int, int] | None:
    #     """(levels, root table address) of address space ``key`` for the native
    #     walker, or None where it must not walk (Bare, two-stage spaces)."""
    #
    # def native_walk_ranges(self) -> tuple[tuple[int, int], ...]:
    #     """Physical [lo, hi) ranges whose whole pages protection lets every
    #     translated regime read and write (PMP for S and U); the rest is Python's."""


Watcher = Callable[[int, int, int], None]  # (paddr, size, value) after a store
# (vaddr, size, ACCESS_*) before an access to a watched virtual page: may raise the
# guest's exception (debug triggers)
DataWatch = Callable[[int, int, int], None]


def _page_flush_probe(env: object, vaddr: int) -> int:
    return 1  # Python flushes: a backend without the machine code always says so


# ``probe(vaddr)``: 0 when the flush of ``vaddr``'s page is done (no cache of the hart
# held it, or only native data TLB entries, which it dropped), 1 when the target must
# call its flush.  The native backend runs it as machine code that reads the hart's
# page filter (page_filter.py, backend/x86_64/page_walk.py); anywhere else it is
# always 1.  Not pure: it changes the caches, and its answer changes with them.
PAGE_FLUSH_PROBE = Helper("softmmu_page_flush_probe", _page_flush_probe,
                          flags=CALL_SIDE_EFFECTS, needs_env=True)


class TLBContext:
    """The caches of one address space (one key, RISC-V: satp): TLBs and jump cache.

    ``jump_cache`` (flags -> pc -> block function) belongs to the hart loop; it is kept
    here because its entries are valid exactly as long as the execute TLB's are.
    """

    __slots__ = ("key", "read_tlb", "write_tlb", "exec_tlb", "superpages",
                 "superpage_shifts", "jump_cache", "jump_pages", "native", "present",
                 "filter", "held")

    def __init__(self, key: int, native: object | None = None,
                 page_filter: PageFilter | None = None) -> None:
        self.key = key
        # the hart's page filter (page_filter.py): every page Python enters in
        # ``present`` or ``jump_pages`` and every superpage group is marked in it
        self.filter = page_filter
        self.read_tlb: list[dict[int, int]] = [{} for _ in range(N_MMU)]
        self.write_tlb: list[dict[int, int]] = [{} for _ in range(N_MMU)]
        self.exec_tlb: list[dict[int, int]] = [{} for _ in range(N_MMU)]  # fetch index
        self.superpages: dict[tuple[int, int], list[int]] = {}
        self.superpage_shifts: set[int] = set()  # the sizes ``superpages`` holds
        self.jump_cache: dict[int, dict[int, Callable]] = {}
        self.jump_pages: dict[int, set[int]] = {}  # vpn -> pcs cached from it
        self.native = native
        # every vpn that any TLB of this context (dicts or native) may hold: a flush of
        # a page reaches every context (Linux flushes without an ASID about 10 k times
        # per boot, with tens of contexts cached), and most contexts never held it
        self.present: set[int] = set()
        # the pages this context holds in the page filter (PageFilter.hold): those
        # Python entered and the native walker's code pages, once each
        self.held: set[int] = set()

    def hold(self, vpn: int) -> None:
        """Python's structures of this context now hold page ``vpn`` (the filter's
        byte is set as the entry is made)."""
        if self.filter is not None and vpn not in self.held:
            self.held.add(vpn)
            self.filter.hold(vpn)

    def release_all(self) -> None:
        """This context holds nothing any more (cleared, or dropped).  Only after the
        fill log of the context in use was absorbed (PageFilter: a native code fill
        not yet counted)."""
        if self.filter is not None:
            release = self.filter.release
            for vpn in self.held:
                release(vpn)
        self.held.clear()

    def clear(self) -> None:
        """Empty every dict in place: translated code and the hart loop hold them."""
        for tlbs in (self.read_tlb, self.write_tlb, self.exec_tlb):
            for t in tlbs:
                t.clear()
        self.release_all()
        self.superpages.clear()
        self.superpage_shifts.clear()
        self.present.clear()
        self.clear_jump_cache()
        if self.native is not None:
            self.native.clear()

    def clear_jump_cache(self) -> None:
        for jc in self.jump_cache.values():
            jc.clear()
        self.jump_pages.clear()
        if self.native is not None:
            self.native.clear_jump_cache()

    def absorb_native_fills(self) -> None:
        """Learn what the native walker filled (its fill log, data and code TLB
        fills): the pages are present, superpage pieces are remembered, as
        ``SoftMMU._fill`` does for its own; code pages enter the execute TLB."""
        if self.native is None:
            return
        fills = self.native.take_fills(self.exec_tlb)
        if counters.ENABLED and fills:
            counters.count("tlb:native walker fills", len(fills))
        code_pages = self.native.code.flags_of
        for fill in fills:
            vpn = fill >> PAGE_SHIFT
            self.present.add(vpn)  # (the walker marked the page filter itself)
            if vpn in code_pages:  # a code fill: the walker set its Python byte
                self.hold(vpn)
            shift = fill & PAGE_MASK
            if shift > PAGE_SHIFT:
                self.add_superpage_piece(shift, fill & ~PAGE_MASK, vpn)

    def add_present(self, vpn: int) -> None:
        """The page ``vpn`` may now be in a TLB (a fill)."""
        self.present.add(vpn)
        self.hold(vpn)

    def remember_pc(self, vpn: int, pc: int) -> None:
        """A jump cache holds the block at ``pc``, whose code is on page ``vpn``."""
        self.jump_pages.setdefault(vpn, set()).add(pc)
        self.hold(vpn)

    def holds(self, vaddr: int) -> bool:
        """Would ``flush_page(vaddr)`` find anything (the fill log absorbed)?"""
        vpn = vaddr >> PAGE_SHIFT
        if vpn in self.present or vpn in self.jump_pages:
            return True
        return any((shift, vaddr >> shift) in self.superpages
                   for shift in self.superpage_shifts)

    def flush_page(self, vaddr: int) -> bool:
        """Every entry of ``vaddr``'s mapping goes; whether it held any.  The fill log
        must have been absorbed (only the context in use is filled natively; SoftMMU
        absorbs it before a page flush and when it switches away from it)."""
        found = False
        vpns = [vaddr >> PAGE_SHIFT]
        for shift in self.superpage_shifts:
            group = self.superpages.pop((shift, vaddr >> shift), None)
            if group:
                vpns.extend(group)
                found = True
        present = self.present
        for vpn in vpns:
            if vpn not in present and vpn not in self.jump_pages:
                continue  # this address space never held the page (most do not)
            found = True
            present.discard(vpn)
            for tlbs in (self.read_tlb, self.write_tlb, self.exec_tlb):
                for t in tlbs:
                    t.pop(vpn, None)
            self.forget_code_page(vpn)
            if self.native is not None:
                self.native.flush_pages((vpn,))
            if vpn in self.held:
                self.held.discard(vpn)
                self.filter.release(vpn)  # type: ignore[union-attr]
        return found

    def forget_code_page(self, vpn: int) -> None:
        """The jump-cache entries of the pcs on page ``vpn`` go (its code changed)."""
        pcs = self.jump_pages.pop(vpn, None)
        if pcs:
            for jc in self.jump_cache.values():
                for pc in pcs:
                    jc.pop(pc, None)
            if self.native is not None:
                self.native.forget_pcs(pcs)

    def add_superpage_piece(self, shift: int, vaddr: int, vpn: int) -> None:
        """Remember that the 4 KiB page ``vpn`` came from a ``1 << shift`` superpage."""
        self.superpages.setdefault((shift, vaddr >> shift), []).append(vpn)
        self.superpage_shifts.add(shift)
        if self.filter is not None:
            self.filter.mark(shift, vaddr >> shift)


class SoftMMU:
    """Address translation for one hart, with its TLBs."""

    def __init__(self, guest: GuestMMU, space: AddressSpace, dram: RAMBlock,
                 watched: dict[int, Watcher] | None = None) -> None:
        self.guest = guest
        self.space = space
        self.dram = dram
        self.dram_base = dram.base
        self.dram_end = dram.base + dram.size
        self._dram_view = dram.view
        self._u64 = struct.Struct("<Q")
        self.watched: dict[int, Watcher] = watched if watched is not None else {}
        # virtual pages the target watches (debug triggers): never in a TLB, so every
        # access to them reaches ``data_watch`` on the slow path
        self.watch_vpns: frozenset[int] = frozenset()
        self.data_watch: DataWatch | None = None
        self.on_switch: Callable[[TLBContext], None] | None = None
        # makes the native part of each new context (set before any context is made)
        self.native_factory: Callable[[], object] | None = None
        self.slow_accesses = 0  # translated loads/stores that missed the inline TLB
        self.contexts: dict[int, TLBContext] = {}
        # pages whose execute translation is global (PERM_GLOBAL), in any context, and
        # the 4 KiB pieces of global superpages: code on them may be found across
        # address spaces (the hart's global jump cache), until a flush that reaches
        # global mappings (any but an ASID-selective one) calls ``on_global_flush``
        # with the pages (None: all)
        self.global_exec: set[int] = set()
        self.global_superpages: dict[tuple[int, int], list[int]] = {}
        self.on_global_flush: Callable[[list[int] | None], None] | None = None
        # the native walker's map of usable DRAM pages (1 byte each), and what it was
        # last computed from (refresh_native_walk)
        self._walk_map: ctypes.Array | None = None
        self._walk_count = ctypes.c_uint64(0)  # the native walker's refills
        self._fetch_walk_count = ctypes.c_uint64(0)  # its code TLB refills
        self._walk_basis: tuple | None = None
        # which pages any cache here may hold, for native page flushes (native only)
        self.page_filter: PageFilter | None = None
        self._native_flush_count = ctypes.c_uint64(0)  # the probe's no-op flushes
        self.ctx = self._context(guest.space_key())
        self._bind(self.ctx)

    # -- address-space contexts ------------------------------------------------------------
    def enable_native(self, factory: Callable[[], object]) -> None:
        """Give every context a native part made by ``factory`` (the native backend)."""
        self.native_factory = factory
        self.page_filter = PageFilter(MAX_CONTEXTS)
        self.contexts.clear()
        if hasattr(self.guest, "native_walk_root"):
            self._walk_map = (ctypes.c_uint8 * (self.dram.size >> PAGE_SHIFT))()
            self.refresh_native_walk()
        self._bind(self._context(self.guest.space_key()))

    def _context(self, key: int) -> TLBContext:
        ctx = self.contexts.get(key)
        if ctx is None:
            if len(self.contexts) >= MAX_CONTEXTS:
                self._drop_context(next(iter(self.contexts)))  # the least recently used
            native = self.native_factory() if self.native_factory is not None else None
            page_filter = self.page_filter
            if native is not None and page_filter is not None:
                native.set_filter(page_filter.address,
                                  ctypes.addressof(self._native_flush_count),
                                  page_filter.contexts_address)
            if native is not None and self._walk_map is not None:
                walk = self.guest.native_walk_root(key)  # type: ignore[attr-defined]
                if walk is not None:
                    native.set_walk(walk[0], walk[1], self.dram_base, self.dram.size,
                                    ctypes.addressof(self._walk_map),
                                    ctypes.addressof(self._walk_count),
                                    ctypes.addressof(self._fetch_walk_count))
            ctx = self.contexts[key] = TLBContext(key, native, page_filter)
            self._publish_contexts()
        return ctx

    def _drop_context(self, key: int) -> None:
        """Forget the address space ``key`` (not the one in use)."""
        current = getattr(self, "ctx", None)
        if current is not None:
            current.absorb_native_fills()  # (before any release: PageFilter)
        self.contexts.pop(key).release_all()

    def _publish_contexts(self) -> None:
        """Tell the native flush probe which native TLBs the address spaces have now
        (after every change of ``contexts``)."""
        if self.page_filter is not None:
            self.page_filter.publish([(ctx.native.tlb_address, ctx.native)
                                      for ctx in self.contexts.values()
                                      if ctx.native is not None])

    @property
    def native_walks(self) -> int:
        """Inline TLB misses the native page walker refilled (they never reach
        ``missed_load``/``missed_store``, nor ``slow_accesses``)."""
        return self._walk_count.value

    @property
    def native_page_flushes(self) -> int:
        """Page flushes the native probe did (PAGE_FLUSH_PROBE: nothing was cached, or
        only native data entries; they never reach ``flush_page``)."""
        return self._native_flush_count.value

    @property
    def native_fetch_walks(self) -> int:
        """Code TLB misses of the native dispatcher that the native walker refilled
        (they never reach ``exec_page``)."""
        return self._fetch_walk_count.value

    def refresh_native_walk(self) -> None:
        """Recompute which DRAM pages the native walker may read PTEs from and fill
        entries for: those protection (PMP) grants to every regime for reads and
        writes, no watcher is on, while no dirty logging and no debug trigger needs
        every access or fill to pass Python.  Every change of those is followed by a
        flush of everything, which calls this; it recomputes only what changed."""
        page_map = self._walk_map
        if page_map is None:
            return
        usable = self.dram.dirty is None and not self.watch_vpns
        ranges = self.guest.native_walk_ranges() if usable else ()  # type: ignore[attr-defined]
        basis = (ranges, tuple(self.watched))
        if basis == self._walk_basis:
            return
        self._walk_basis = basis
        ctypes.memset(page_map, 0, len(page_map))
        base, end, at = self.dram_base, self.dram_end, ctypes.addressof(page_map)
        for lo, hi in ranges:
            first = (max(lo, base) - base + PAGE_MASK) >> PAGE_SHIFT  # whole pages only
            last = (min(hi, end) - base) >> PAGE_SHIFT
            if last > first:
                ctypes.memset(at + first, 1, last - first)
        for ppn in self.watched:
            if base <= ppn << PAGE_SHIFT < end:
                page_map[((ppn << PAGE_SHIFT) - base) >> PAGE_SHIFT] = 0

    def _bind(self, ctx: TLBContext) -> None:
        previous = getattr(self, "ctx", None)
        if previous is not None:  # its native fills are known before it is left
            previous.absorb_native_fills()
        self.ctx = ctx
        self.read_tlb = ctx.read_tlb
        self.write_tlb = ctx.write_tlb
        self.exec_tlb = ctx.exec_tlb
        if self.on_switch is not None:
            self.on_switch(ctx)

    def switch(self) -> None:
        """The address space changed: use its caches, flushing nothing.

        The TLB is tagged by the whole key (RISC-V: satp's mode, ASID and root), which
        is stricter than an ASID tag: a stale entry is only ever used where the
        architecture allows it, because a guest must fence before reusing an ASID.
        """
        key = self.guest.space_key()
        if self.ctx.key != key:
            ctx = self.contexts.pop(key, None)
            if counters.ENABLED:
                counters.count("tlb:switch to a new space" if ctx is None
                               else "tlb:switch to a known space")
            if ctx is None:
                self._bind(self._context(key))
            else:
                self.contexts[key] = ctx  # most recently used last: evicted last
                self._bind(ctx)

    # -- flushing -----------------------------------------------------------------
    def flush_all(self) -> None:
        """Every address space's entries go (sfence.vma x0, x0; PMP or MXR changes)."""
        if counters.ENABLED:
            counters.count(f"tlb:flush all ({counters.caller_name()})")
        self.contexts.clear()
        self.ctx.clear()
        self.contexts[self.ctx.key] = self.ctx
        self.forget_global()
        self.refresh_native_walk()
        self._publish_contexts()
        if self.page_filter is not None:
            self.page_filter.clear()  # nothing is cached any more

    def forget_global(self) -> None:
        """No page is known to be global any more, and code found by that goes (a
        flush of everything; RISC-V: a change of satp.MODE, which needs no fence)."""
        if self.page_filter is not None:
            self.ctx.absorb_native_fills()  # (before any release: PageFilter)
            for vpn in self.global_exec:
                self.page_filter.release(vpn)
        self.global_exec.clear()
        self.global_superpages.clear()
        if self.on_global_flush is not None:
            self.on_global_flush(None)

    def flush_asid(self, asid: int) -> None:
        """sfence.vma x0, rs2: the address spaces tagged ``asid`` (globals go too)."""
        if counters.ENABLED:
            counters.count("tlb:flush asid")
        self.ctx.absorb_native_fills()  # (before any release: PageFilter)
        for key, ctx in list(self.contexts.items()):
            if self.guest.space_asid(key) == asid:
                if ctx is self.ctx:
                    ctx.clear()
                else:
                    self._drop_context(key)
        self._publish_contexts()

    def flush_spaces(self, selects: Callable[[int], bool], vaddr: int | None = None) -> None:
        """The address spaces whose key ``selects`` accepts: all their entries, or only
        ``vaddr``'s (RISC-V's hfence: the guests' spaces go, the host's stay).  Code
        known through a global page goes as with flush_all/flush_page, since those
        spaces' global mappings are fenced too."""
        if counters.ENABLED:
            counters.count("tlb:flush spaces" if vaddr is None else "tlb:flush spaces page")
        self.ctx.absorb_native_fills()
        for key, ctx in list(self.contexts.items()):
            if not selects(key):
                continue
            if vaddr is not None:
                ctx.flush_page(vaddr)
            elif ctx is self.ctx:
                ctx.clear()
            else:
                self._drop_context(key)
        self._publish_contexts()
        if vaddr is None:
            self.forget_global()
        elif self.global_exec:
            self._flush_global_page(vaddr)

    def flush_page(self, vaddr: int, asid: int | None = None) -> None:
        """sfence.vma with an address: every cached piece of its mapping goes.

        With an ASID only that address space is flushed: the spec leaves global
        mappings of other address spaces alone in that case.
        """
        if counters.ENABLED:
            counters.count("tlb:flush page" if asid is None else "tlb:flush page of asid")
        self.ctx.absorb_native_fills()
        page_filter = self.page_filter
        if counters.ENABLED and page_filter is not None:
            counters.count("tlb:flush page: nothing cached" if not self._holds(vaddr)
                           else "tlb:flush page: cached in this space"
                           if self.ctx.holds(vaddr) else "tlb:flush page: cached elsewhere")
        found = asid is None and self._holds_global(vaddr)
        for key, ctx in self.contexts.items():
            if asid is None or self.guest.space_asid(key) == asid:
                found = ctx.flush_page(vaddr) or found
        if asid is None and self.global_exec:
            self._flush_global_page(vaddr)
        # Python was asked for a page nothing held: a superpage byte of the filter is
        # stale (the Python bytes are exact), and so many of these rebuild them (the
        # other address spaces asked only after a flush that found nothing in its own)
        if (page_filter is not None and not found
                and (asid is None or not self._holds(vaddr))
                and page_filter.note_stale_hit()):
            self.rebuild_page_filter()

    def _holds(self, vaddr: int) -> bool:
        """Does any cache hold something a flush of ``vaddr``'s page drops?"""
        if any(ctx.holds(vaddr) for ctx in self.contexts.values()):
            return True
        return self._holds_global(vaddr)

    def _holds_global(self, vaddr: int) -> bool:
        """Is ``vaddr``'s page known as a global execute page (or a piece of one)?"""
        if vaddr >> PAGE_SHIFT in self.global_exec:
            return True
        shifts = {shift for shift, _ in self.global_superpages}
        return any((shift, vaddr >> shift) in self.global_superpages for shift in shifts)

    def rebuild_page_filter(self) -> None:
        """Mark only what the caches hold now (page_filter.py): the filter's stale
        bytes (pages flushed since they were marked) go."""
        page_filter = self.page_filter
        if page_filter is None:
            return
        if counters.ENABLED:
            counters.count("tlb:page filter rebuilt")
        self.ctx.absorb_native_fills()  # its native fills are in no set until then
        contexts = list(self.contexts.values())
        for ctx in contexts:  # (what each holds, whichever way it came in)
            held = ctx.held
            for tlbs in (ctx.read_tlb, ctx.write_tlb, ctx.exec_tlb):
                for t in tlbs:
                    held.update(t)
            held.update(ctx.jump_pages)
            if ctx.native is not None:
                held.update(ctx.native.code.flags_of)
        python_pages = [vpn for ctx in contexts for vpn in ctx.held]
        python_pages += self.global_exec
        superpages = [key for ctx in contexts for key in ctx.superpages]
        superpages += self.global_superpages
        page_filter.rebuild(python_pages, superpages)

    def _flush_global_page(self, vaddr: int) -> None:
        vpns = [vaddr >> PAGE_SHIFT]
        for shift in {shift for shift, _ in self.global_superpages}:
            vpns.extend(self.global_superpages.pop((shift, vaddr >> shift), ()))
        for vpn in vpns:
            if vpn in self.global_exec:
                self.global_exec.discard(vpn)
                if self.page_filter is not None:
                    self.page_filter.release(vpn)
        if self.on_global_flush is not None:
            self.on_global_flush(vpns)

    def flush_jump_caches(self) -> None:
        """Translated code was dropped: forget every pc -> function shortcut."""
        if counters.ENABLED:
            counters.count("tlb:jump caches flushed")
        for ctx in self.contexts.values():
            ctx.clear_jump_cache()
        if self.on_global_flush is not None:
            self.on_global_flush(None)

    def watch_data(self, vpns: frozenset[int], check: DataWatch | None) -> None:
        """Send every access to the virtual pages ``vpns`` through ``check`` first; the
        caller flushes the TLBs that may still hold them."""
        self.watch_vpns = vpns
        self.data_watch = check

    # -- translation ------------------------------------------------------------------
    def translate(self, vaddr: int, access: int, idx: int) -> tuple[int, int, int]:
        """(paddr, perms, page shift) of ``vaddr``; raises the guest's page fault."""
        return self.guest.translate(vaddr, access, idx)

    def _fill(self, idx: int, vaddr: int, paddr: int, perms: int, shift: int) -> None:
        page = paddr & ~PAGE_MASK
        vpn = vaddr >> PAGE_SHIFT
        if (not self.dram_base <= page < self.dram_end or page >> PAGE_SHIFT in self.watched
                or vpn in self.watch_vpns):
            return
        addend = page - self.dram_base - (vpn << PAGE_SHIFT)
        guest = self.guest
        readable = bool(perms & PERM_R) and guest.page_allows(page, PERM_R, idx)
        writable = bool(perms & PERM_W) and guest.page_allows(page, PERM_W, idx)
        if readable:
            t = self.read_tlb[idx]
            if len(t) >= TLB_LIMIT:
                t.clear()
            t[vpn] = addend
        if writable:
            t = self.write_tlb[idx]
            if len(t) >= TLB_LIMIT:
                t.clear()
            t[vpn] = addend
            dirty = self.dram.dirty
            if dirty is not None:
                # Dirty logging: every store through this entry lands on this page, and
                # a harvest flushes the TLBs, so the next store after it comes here again.
                dirty.add((page - self.dram_base) >> PAGE_SHIFT)
        if readable or writable:
            self.ctx.add_present(vpn)
            native = self.ctx.native
            if native is not None:
                native.fill(idx, vpn, addend, readable, writable)
            if shift > PAGE_SHIFT:
                self.ctx.add_superpage_piece(shift, vaddr, vpn)

    def _data_paddr(self, vaddr: int, size: int, access: int, idx: int) -> int:
        if idx == MMU_DYNAMIC:
            idx = self.guest.data_index()
        # A TLB hit first: helpers (atomics) and MPRV accesses come here every time.
        tlb = self.write_tlb[idx] if access == ACCESS_WRITE else self.read_tlb[idx]
        addend = tlb.get(vaddr >> PAGE_SHIFT)
        if addend is not None:
            native = self.ctx.native
            if native is not None:  # the direct-mapped native TLB lost it to a conflict
                write = access == ACCESS_WRITE
                native.fill(idx, vaddr >> PAGE_SHIFT, addend, not write, write)
            return vaddr + addend + self.dram_base
        if self.data_watch is not None and vaddr >> PAGE_SHIFT in self.watch_vpns:
            self.data_watch(vaddr, size, access)
        guest = self.guest
        paddr, perms, shift = guest.translate(vaddr, access, idx)
        perm = PERM_W if access == ACCESS_WRITE else PERM_R
        if not guest.allows(paddr, size, perm, idx):
            raise guest.access_fault(access, vaddr)
        if access != ACCESS_WRITE and self.dram.dirty is not None:
            perms &= ~PERM_W  # logging: a read must not make the page count as written
        self._fill(idx, vaddr, paddr, perms, shift)
        return paddr

    # -- data accesses (slow path) --------------------------------------------------------
    def missed_load(self, vaddr: int, size: int, idx: int, for_store: bool = False) -> int:
        """A translated load that missed the inline TLB (counted for -d stats);
        ``for_store``: the read half of an AMO or SC (store permission, store faults)."""
        self.slow_accesses += 1
        self.ctx.absorb_native_fills()  # a full fill log sends the walker's misses here
        return self.load(vaddr, size, idx, ACCESS_WRITE if for_store else ACCESS_READ)

    def missed_store(self, vaddr: int, size: int, value: int, idx: int) -> None:
        self.slow_accesses += 1
        self.ctx.absorb_native_fills()
        self.store(vaddr, size, value, idx)

    def load(self, vaddr: int, size: int, idx: int, access: int = ACCESS_READ) -> int:
        vaddr &= MASK64
        if (vaddr & PAGE_MASK) + size > PAGE_SIZE:
            value = 0
            for i in range(size):  # crosses a page: byte by byte, each translated
                value |= self.load((vaddr + i) & MASK64, 1, idx, access) << (8 * i)
            return value
        paddr = self._data_paddr(vaddr, size, access, idx)
        off = paddr - self.dram_base
        if 0 <= off <= self.dram.size - size:
            return int.from_bytes(self._dram_view[off:off + size], "little")
        return self._phys_read(paddr, size, vaddr)

    def store(self, vaddr: int, size: int, value: int, idx: int) -> None:
        vaddr &= MASK64
        value &= (1 << (8 * size)) - 1
        if (vaddr & PAGE_MASK) + size > PAGE_SIZE:
            for i in range(size):  # check both pages before writing either
                self._data_paddr((vaddr + i) & MASK64, 1, ACCESS_WRITE, idx)
            for i in range(size):
                self.store((vaddr + i) & MASK64, 1, (value >> (8 * i)) & 0xFF, idx)
            return
        paddr = self._data_paddr(vaddr, size, ACCESS_WRITE, idx)
        off = paddr - self.dram_base
        if 0 <= off <= self.dram.size - size:
            self._dram_view[off:off + size] = value.to_bytes(size, "little")
            self.dram.note_write(off, size)  # (watched pages never enter the TLB)
            watcher = self.watched.get(paddr >> PAGE_SHIFT)
            if watcher is not None:
                watcher(paddr, size, value)
            return
        self._phys_write(paddr, size, value, vaddr)

    def _ram_pieces(self, vaddr: int, size: int, access: int, idx: int
                    ) -> list[tuple[int, int]] | None:
        """(offset in DRAM, length) of each page of [vaddr, vaddr+size), translated and
        checked in order (a fault raises before anything is copied); None where a piece
        is not plain DRAM, is a watched page on a write, or has a debug trigger armed (the
        caller then goes element by element, through MMIO handlers, code-write watchers
        and triggers, so that a fault or a hit names its element)."""
        pieces = []
        end = vaddr + size
        while vaddr < end:
            length = min(end, (vaddr | PAGE_MASK) + 1) - vaddr
            if self.data_watch is not None and vaddr >> PAGE_SHIFT in self.watch_vpns:
                return None  # a debug trigger must see the element that hits it
            paddr = self._data_paddr(vaddr & MASK64, length, access, idx)
            off = paddr - self.dram_base
            if not 0 <= off <= self.dram.size - length:
                return None
            if access == ACCESS_WRITE and paddr >> PAGE_SHIFT in self.watched:
                return None
            pieces.append((off, length))
            vaddr += length
        return pieces

    def read_bytes(self, vaddr: int, size: int, idx: int) -> bytes | None:
        """A run of guest memory in one copy per page (vector unit-stride loads);
        None where it is not all DRAM."""
        pieces = self._ram_pieces(vaddr, size, ACCESS_READ, idx)
        if pieces is None:
            return None
        view = self._dram_view
        return b"".join(view[off:off + length] for off, length in pieces)

    def write_bytes(self, vaddr: int, data: bytes, idx: int) -> bool:
        """``data`` to guest memory in one copy per page, every page checked first;
        False (nothing written) where it is not all unwatched DRAM."""
        pieces = self._ram_pieces(vaddr, len(data), ACCESS_WRITE, idx)
        if pieces is None:
            return False
        view, at = self._dram_view, 0
        for off, length in pieces:
            view[off:off + length] = data[at:at + length]
            at += length
            self.dram.note_write(off, length)
        return True

    def compare_exchange(self, vaddr: int, size: int, expected: int, new: int,
                         idx: int = MMU_DYNAMIC) -> int:
        """The store half of an atomic read-modify-write (MTTCG): store ``new`` if
        memory still holds ``expected``; returns what memory held.  On RAM it is one
        host ``lock cmpxchg``, atomic against other harts' generated code; elsewhere
        (MMIO) the caller's big lock is what orders it.  ``vaddr`` is aligned."""
        mask = (1 << (8 * size)) - 1
        expected &= mask
        paddr = self._data_paddr(vaddr & MASK64, size, ACCESS_WRITE, idx)
        off = paddr - self.dram_base
        if not 0 <= off <= self.dram.size - size:
            old = self._phys_read(paddr, size, vaddr)
            if old == expected:
                self._phys_write(paddr, size, new & mask, vaddr)
            return old
        old = host_atomics().cmpxchg(self.dram.host_addr + off, size, expected, new)
        if old == expected:
            self.dram.note_write(off, size)
            watcher = self.watched.get(paddr >> PAGE_SHIFT)
            if watcher is not None:
                watcher(paddr, size, new & mask)
        return old

    def _phys_read(self, paddr: int, size: int, vaddr: int) -> int:
        region = self.space.find(paddr, size)
        if region is None:
            raise self.guest.access_fault(ACCESS_READ, vaddr)
        off = paddr - region.base
        if isinstance(region, RAMBlock):
            return int.from_bytes(region.view[off:off + size], "little")
        try:
            return region.handler.mmio_read(off, size) & ((1 << (8 * size)) - 1)
        except Exception as e:  # noqa: BLE001 - a device bug must not kill the VM
            print(f"pemu: {region.name}: error reading +0x{off:x}: {e}", file=sys.stderr)
            return 0

    def _phys_write(self, paddr: int, size: int, value: int, vaddr: int) -> None:
        region = self.space.find(paddr, size)
        if region is None:
            raise self.guest.access_fault(ACCESS_WRITE, vaddr)
        off = paddr - region.base
        if isinstance(region, RAMBlock):
            if not region.read_only:
                region.view[off:off + size] = value.to_bytes(size, "little")
                region.note_write(off, size)
            return
        try:
            region.handler.mmio_write(off, size, value)
        except Exception as e:  # noqa: BLE001
            print(f"pemu: {region.name}: error writing +0x{off:x}: {e}", file=sys.stderr)

    # -- instruction fetch ------------------------------------------------------------------
    def note_code_page(self, vaddr: int, idx: int, flags: int) -> None:
        """The vCPU runs code at ``vaddr`` under block ``flags`` (fetch MMU index
        ``idx``): let the native dispatcher translate its page itself from now on
        (NativeContext.fill_code), for as long as the execute TLB holds the page."""
        native = self.ctx.native
        if native is None:
            return
        vpn = vaddr >> PAGE_SHIFT
        page = self.exec_tlb[idx].get(vpn)
        if page is not None:
            native.fill_code(vpn, flags, page)

    def exec_page(self, vaddr: int, idx: int) -> int:
        """Physical address of the page holding the code at ``vaddr`` (fetch rules);
        ``idx``: the fetch's MMU index (``TCGTarget.fetch_index`` of the block flags)."""
        vpn = vaddr >> PAGE_SHIFT
        tlb = self.exec_tlb[idx]
        page = tlb.get(vpn)
        if page is not None:
            return page
        self.ctx.absorb_native_fills()  # the dispatcher's fetch walk may have found it
        page = tlb.get(vpn)
        if page is not None:
            return page
        guest = self.guest
        paddr, perms, shift = guest.translate(vaddr, ACCESS_EXEC, idx)
        region = self.space.find(paddr, 2)
        if not guest.allows(paddr, 2, PERM_X, idx) or not isinstance(region, RAMBlock):
            raise guest.access_fault(ACCESS_EXEC, vaddr)
        page = paddr & ~PAGE_MASK
        if guest.page_allows(page, PERM_X, idx) and region.contains(page, PAGE_SIZE):
            tlb[vpn] = page
            self.ctx.add_present(vpn)
            if shift > PAGE_SHIFT:
                self.ctx.add_superpage_piece(shift, vaddr, vpn)
            if perms & PERM_GLOBAL and vpn not in self.global_exec:
                self.global_exec.add(vpn)  # a holder of its own (PageFilter)
                if self.page_filter is not None:
                    self.page_filter.hold(vpn)
                if shift > PAGE_SHIFT:
                    self.global_superpages.setdefault((shift, vaddr >> shift), []).append(vpn)
        return page


class VirtualMemory:
    """``env.mem`` for the frontend's atomic helpers: virtual accesses of the hart.

    LR/SC and AMOs translate with the hart's current data privilege (MPRV applied).
    """

    def __init__(self, mmu: SoftMMU, lock: object) -> None:
        self.mmu = mmu
        self.lock = lock

    def load_slow(self, addr: int, size: int) -> int:
        return self.mmu.load(addr, size, MMU_DYNAMIC)

    def store_slow(self, addr: int, size: int, value: int) -> None:
        self.mmu.store(addr, size, value, MMU_DYNAMIC)

    def load_bytes(self, addr: int, size: int) -> bytes | None:
        return self.mmu.read_bytes(addr, size, MMU_DYNAMIC)

    def store_bytes(self, addr: int, data: bytes) -> bool:
        return self.mmu.write_bytes(addr, data, MMU_DYNAMIC)

    def load_for_store(self, addr: int, size: int) -> int:
        """The read half of an AMO or SC: store permission, store faults."""
        return self.mmu.load(addr, size, MMU_DYNAMIC, ACCESS_WRITE)

    def cmpxchg(self, addr: int, size: int, expected: int, new: int) -> int:
        return self.mmu.compare_exchange(addr, size, expected, new)


# -- code generation ----------------------------------------------------------------------



def _load_slow(env: object, addr: int, size: int, idx: int) -> int:
    return env.mmu.missed_load(addr, size, idx)  # type: ignore[attr-defined]


def _load_for_store_slow(env: object, addr: int, size: int, idx: int) -> int:
    return env.mmu.missed_load(addr, size, idx, True)  # type: ignore[attr-defined]


def _store_slow(env: object, addr: int, size: int, value: int, idx: int) -> None:
    env.mmu.missed_store(addr, size, value, idx)  # type: ignore[attr-defined]


class SoftmmuCodegen:
    """Inline TLB lookups for guest loads and stores (the python backend's memory)."""

    def __init__(self, dram: RAMBlock) -> None:
        self.dram = dram
        self.idx = MMU_DYNAMIC  # set per block by SoftmmuBackend.compile

    def namespace(self) -> dict[str, object]:
        # D: the code-write marks of DRAM's pages (memory/code_writes.py), which every
        # inline store sets for fence.i
        return {"M": self.dram.view, "D": self.dram.track_code_writes().marks,
                "LD": _load_slow, "LDW": _load_for_store_slow,
                "ST": _store_slow, **struct_accessors()}

    @staticmethod
    def _check(addr: str, size: int) -> str:
        check = "_h is not None"
        if size > 1:
            check += f" and {addr} & 4095 <= {PAGE_SIZE - size}"
        return check

    def load(self, dst: str, addr: str, memop: MemOp, bits: int) -> list[str]:
        size, idx = memop.size, self.idx
        slow = f"{'LDW' if memop.for_store else 'LD'}(env, {addr}, {size}, {idx})"
        if memop.signed:
            slow = _sign_extend_expr(slow, size, bits)
            fast = f"I{size}(M, {addr} + _h)[0] & {MASK[bits]:#x}"
        else:
            fast = f"U{size}(M, {addr} + _h)[0]"
        if idx == MMU_DYNAMIC:
            return [f"{dst} = {slow}"]
        tlb = "W" if memop.for_store else "R"  # an AMO's read needs write permission
        return [f"_h = env.{tlb}{idx}.get({addr} >> 12); "
                f"{dst} = {fast} if {self._check(addr, size)} else {slow}"]

    def store(self, value: str, addr: str, memop: MemOp) -> list[str]:
        size, idx = memop.size, self.idx
        v = value if size == 8 else f"{value} & {(1 << size * 8) - 1:#x}"
        slow = f"ST(env, {addr}, {size}, {value}, {idx})"
        if idx == MMU_DYNAMIC:
            return [slow]
        return [f"_h = env.W{idx}.get({addr} >> 12)",
                f"if {self._check(addr, size)}: "
                f"_h += {addr}; P{size}(M, _h, {v}); D[_h >> 12] = 1",
                f"else: {slow}"]


class SoftmmuBackend(PythonBackend):
    """The python backend with the softmmu's memory code, one MMU index per block."""

    def __init__(self, dram: RAMBlock, pc_slot: int, mmu_index: Callable[[int], int]
                 ) -> None:
        """``mmu_index``: block flags -> the MMU index of its data accesses."""
        self.codegen = SoftmmuCodegen(dram)
        self._mmu_index = mmu_index
        super().__init__(self.codegen, pc_slot)

    def compile(self, block: Block):  # -> CompiledBlock
        self.codegen.idx = self._mmu_index(block.flags)
        return super().compile(block)


__all__ = ["GuestMMU", "SoftMMU", "SoftmmuBackend", "VirtualMemory", "PERM_X",
           "ACCESS_EXEC"]
