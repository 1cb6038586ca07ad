"""Guest loads and stores in system mode: the softmmu TLB lookup, inline.

Each address space (softmmu.TLBContext) has a ``NativeContext``: a direct-mapped TLB
per MMU index, each set with a victim entry, and a jump cache, as native arrays.  A
TLB entry is four words::

    read tag   guest page address whose loads may use the entry (all ones: none)
    write tag  the same for stores
    addend     host address = guest virtual address + addend
    mark       host address of the page's code-write mark (memory/code_writes.py):
               a store that hits the entry sets it, so that fence.i compares the
               page with its code snapshot (so an entry is 32 bytes, its offset a shift)

A load of ``size`` bytes hits when ``(addr + size - 1) & ~4095`` equals the read tag of
``addr``'s entry: one compare checks that the access lies in that page, so only
page-crossing accesses fall to the slow path with everything else (MMIO, pages PMP
splits, MPRV).  Misaligned accesses inside a page hit, as on the python backend and
in the slow path (neither traps them): an aligned-only check sent every unaligned
load of Linux's arm64 zlib and memcpy through Python (7 M of them unpacking
Debian's initramfs).  The slow path is the python softmmu (``SoftMMU.load``/``store``): it
walks the page table, checks PMP, raises the guest's fault, and refills both its own
dict TLB and this one through ``SoftMMU._fill``, so the two always hold the same
translations and every flush reaches both.

The victim entries: with only the direct-mapped table, two hot pages whose page
numbers are equal mod 1024 (4 MiB apart: a stack and a heap, where the guest's ASLR
puts them) evict each other at every other access, each eviction a Python refill
(~1.5 us): lean RISC-V boots ran 3-7x longer, with 8-36 M inline TLB misses, when that
happened.  So ``fill`` moves the entry it replaces into its set's victim entry, and
an access that misses the main entry checks the victim entry, out of line, before it
calls Python (a hit there costs a few instructions, no swap: QEMU's victim TLB has 8
entries and swaps, for the same reason).  The victim entries lie after all the main
tables, in the same array, so the inline check and its cache footprint are what they
were.  Every flush reaches both.

The TLB of the address space in use is found through a state slot, reloaded at each
access: a satp write inside a block switches it for the rest of that block.

The code TLB: after the victim entries, the same array holds a direct-mapped table the
runtime's dispatcher reads when its jump caches miss (runtime.py, "second level"):
(virtual page, block flags) -> the physical page its code is fetched from, a copy of
the softmmu's execute TLB (``SoftMMU.exec_tlb``) for the pairs the vCPU loop has
found code under.  With it the dispatcher finds a block that is already translated
without Python, and enters it into the jump cache of this address space.  Python
does not know the pcs entered that way, so dropping a code TLB entry (a page flush)
also empties the jump cache's slots that pcs of that page can occupy under those
flags (a run of 4096 >> jc_pc_shift slots: other pages' entries there are lost too,
and found again by the same lookup).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Block, Const, Helper
from pemu.accel.tcg.softmmu import MMU_DYNAMIC, N_MMU, PAGE_FLUSH_PROBE, PAGE_SHIFT

from . import encoder as x
from .encoder import R11, RBP, RCX, Mem
from .memory_common import FOUND, SLOW, VICTIM, GuestMemoryCodegen
from .page_walk import (
    FETCH_INDEX_MASK,
    LOG_CODE,
    LOG_ENTRIES,
    W_CONTEXTS,
    W_DRAM_BASE,
    W_DRAM_SIZE,
    W_FETCH_STATS,
    W_FILTER,
    W_FLUSH_STATS,
    W_HOST,
    W_LEVELS,
    W_LOG,
    W_LOG_COUNT,
    W_MAP,
    W_MARKS,
    W_ROOT,
    W_STATS,
    W_TOP_SHIFT,
    W_VA_SHIFT,
    WALK_WORDS,
    CodeTLBGeometry,
    TLBGeometry,
    emit_code_refill,
    emit_flush_probe,
    emit_refill,
    emit_walker,
)
from .runtime import (
    CODE_ENTRY_WORDS,
    CODE_FLAGS,
    CODE_PAGE,
    CODE_TLB_WORDS,
    CODE_VPAGE,
    code_tlb_index,
)

TLB_BITS = 10
TLB_ENTRIES = 1 << TLB_BITS
ENTRY_WORDS = 4
ENTRY_SHIFT = 5  # 32-byte entries
TABLE_BYTES = TLB_ENTRIES << ENTRY_SHIFT  # one MMU index
MAIN_WORDS = N_MMU * TLB_ENTRIES * ENTRY_WORDS  # then as many for the victim entries
VICTIM_BYTES = MAIN_WORDS * 8  # from an entry to its set's victim entry
READ_TAG, WRITE_TAG, ADDEND, MARK = 0, 1, 2, 3
# the code TLB (its entries: runtime.py), after the victim entries
CODE_TLB_OFFSET = 2 * MAIN_WORDS * 8  # bytes from the TLB's start
# the native page walker's block (page_walk.py), after the code TLB
WALK_FIRST = 2 * MAIN_WORDS + CODE_TLB_WORDS  # its first word
NO_PAGE = 0xFFFF_FFFF_FFFF_FFFF  # never equal to a masked address (bits 3..11 are 0)
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
PAGE_SIZE = 1 << PAGE_SHIFT


class NativeContext:
    """The native caches of one address space: TLB tables and jump cache."""

    def __init__(self, backend: object, host_delta: int, marks: int = 0) -> None:
        """``marks``: the host address of DRAM's code-write marks, one byte per page
        (memory/code_writes.py; 0 only where no store runs: tests of the tables)."""
        self.tlb = (ctypes.c_uint64 * (WALK_FIRST + WALK_WORDS))()
        ctypes.memset(self.tlb, 0xFF, 8 * WALK_FIRST)
        self.tlb_address = ctypes.addressof(self.tlb)
        self._marks = marks
        self.tlb[WALK_FIRST + W_MARKS] = marks  # the walker's fills set MARK too
        self._backend = backend  # the runtime: jump cache geometry
        self.jump_cache = backend.new_jump_cache()
        self.jc_address = ctypes.addressof(self.jump_cache)
        self._host_delta = host_delta  # DRAM view offset -> host address
        self.code = CodeTLB(self.tlb, 2 * MAIN_WORDS, self.jc_address, backend)

    @staticmethod
    def _slot(idx: int, vpn: int) -> int:
        return (idx * TLB_ENTRIES + (vpn & (TLB_ENTRIES - 1))) * ENTRY_WORDS

    def fill(self, idx: int, vpn: int, addend: int, read: bool, write: bool) -> None:
        """The page ``vpn`` maps to DRAM view offset ``vaddr + addend``; the page the
        main entry held before moves to the victim entry."""
        t = self.tlb
        i = self._slot(idx, vpn)
        v = i + MAIN_WORDS
        tag = (vpn << PAGE_SHIFT) & MASK64
        if t[i + READ_TAG] != tag and t[i + WRITE_TAG] != tag:  # another page's slot
            if t[v + READ_TAG] == tag or t[v + WRITE_TAG] == tag:
                # the page is the victim: swap, so that its other permission is kept
                for w in (READ_TAG, WRITE_TAG, ADDEND, MARK):
                    t[i + w], t[v + w] = t[v + w], t[i + w]
            else:
                for w in (READ_TAG, WRITE_TAG, ADDEND, MARK):
                    t[v + w] = t[i + w]
                t[i + READ_TAG] = t[i + WRITE_TAG] = NO_PAGE
        if read:
            t[i + READ_TAG] = tag
        if write:
            t[i + WRITE_TAG] = tag
        t[i + ADDEND] = (addend + self._host_delta) & MASK64
        t[i + MARK] = self._marks + (((addend + tag) & MASK64) >> PAGE_SHIFT)

    def flush_pages(self, vpns: Iterable[int]) -> None:
        t = self.tlb
        for vpn in vpns:
            tag = (vpn << PAGE_SHIFT) & MASK64
            for idx in range(N_MMU):
                main = self._slot(idx, vpn)
                for i in (main, main + MAIN_WORDS):
                    if t[i + READ_TAG] == tag or t[i + WRITE_TAG] == tag:
                        t[i + READ_TAG] = t[i + WRITE_TAG] = NO_PAGE
            self.code.forget(vpn)

    def fill_code(self, vpn: int, flags: int, page: int) -> None:
        """Code at virtual page ``vpn`` under ``flags`` is fetched from physical
        ``page``, as long as the execute TLB says so (every flush of it reaches this)."""
        self.code.fill(vpn, flags, page)

    def set_walk(self, levels: int, root: int, dram_base: int, dram_size: int,
                 page_map: int, stats: int, fetch_stats: int) -> None:
        """Let the native walker (page_walk.py) refill this address space's TLB and
        code TLB: ``levels`` of page tables (0: never) from physical ``root``;
        ``page_map``: the host address of the hart's map of usable DRAM pages;
        ``stats``, ``fetch_stats``: of the hart's 64-bit counts of native refills
        (data, code)."""
        t, w = self.tlb, WALK_FIRST
        t[w + W_LEVELS] = levels
        if not levels:
            return
        t[w + W_VA_SHIFT] = PAGE_SHIFT + 9 * levels - 1
        t[w + W_TOP_SHIFT] = PAGE_SHIFT + 9 * (levels - 1)
        t[w + W_ROOT] = root
        t[w + W_DRAM_BASE] = dram_base
        t[w + W_DRAM_SIZE] = dram_size
        t[w + W_HOST] = self._host_delta
        t[w + W_MAP] = page_map
        t[w + W_STATS] = stats
        t[w + W_FETCH_STATS] = fetch_stats

    def set_filter(self, page_filter: int, flush_stats: int, contexts: int) -> None:
        """The host addresses of the hart's page filter (accel/tcg/page_filter.py),
        which the native walker marks and the flush probe reads, of its 64-bit count of
        page flushes the probe did, and of its list of native TLBs (the probe's
        flushes reach them all)."""
        self.tlb[WALK_FIRST + W_FILTER] = page_filter
        self.tlb[WALK_FIRST + W_FLUSH_STATS] = flush_stats
        self.tlb[WALK_FIRST + W_CONTEXTS] = contexts

    def take_fills(self, exec_tlb: list[dict[int, int]] | None = None) -> list[int]:
        """What the native walker filled since the last call: ``page | shift`` each.
        Its code TLB fills (logged with LOG_CODE and then their flags) are noted in
        the code TLB's ``flags_of`` here, as ``CodeTLB.fill`` does, so that a flush
        of the page empties the jump cache slots its pcs may hold, and go into
        ``exec_tlb`` (the context's execute TLB, by fetch index) as
        ``SoftMMU.exec_page`` records a page: a block not translated yet, which
        sends the dispatcher to Python after the fill, needs no second walk."""
        t = self.tlb
        n = t[WALK_FIRST + W_LOG_COUNT]
        if not n:
            return []
        first = WALK_FIRST + W_LOG
        fills = t[first:first + min(n, LOG_ENTRIES)]
        t[WALK_FIRST + W_LOG_COUNT] = 0
        if not any(fill & LOG_CODE for fill in fills):
            return fills
        pages = []
        flags_of = self.code.flags_of
        words = iter(fills)
        for fill in words:
            if fill & LOG_CODE:
                fill &= ~LOG_CODE
                vpn, flags = fill >> PAGE_SHIFT, next(words)
                flags_of.setdefault(vpn, set()).add(flags)
                if exec_tlb is not None:
                    page = self.code.page_of(vpn, flags)
                    if page is not None:  # (else a later fill took its entry)
                        exec_tlb[flags & FETCH_INDEX_MASK][vpn] = page
            pages.append(fill)
        return pages

    def clear(self) -> None:
        ctypes.memset(self.tlb, 0xFF, 8 * WALK_FIRST)
        self.tlb[WALK_FIRST + W_LOG_COUNT] = 0
        self.code.forget_all()
        self.clear_jump_cache()

    def clear_jump_cache(self) -> None:
        ctypes.memset(self.jump_cache, 0, ctypes.sizeof(self.jump_cache))

    def forget_pcs(self, pcs: Iterable[int]) -> None:
        """Empty the jump cache slots of these pcs, under every flags value in use."""
        _forget_pcs(self.jump_cache, self._backend, pcs)


class CodeTLB:
    """A code TLB (module docstring) in ``array`` from word ``first``, and the jump
    cache at host address ``jc`` that the dispatcher fills from what it finds there.

    One thread (its vCPU's, in Python) fills and flushes it; another thread's flush
    of the jump caches (fence.i) never touches it, so no reader sees a half-written
    entry.  ``flags_of`` (vpn -> the flags values filled under) says which jump cache
    slots a page's pcs may occupy: dropping a page empties them all."""

    def __init__(self, array: ctypes.Array, first: int, jc: int, backend: object) -> None:
        self._t = array
        self._first = first
        self._jc = jc
        self._backend = backend
        self.flags_of: dict[int, set[int]] = {}

    def fill(self, vpn: int, flags: int, page: int) -> None:
        t = self._t
        i = self._first + code_tlb_index(vpn, flags) * CODE_ENTRY_WORDS
        tag = (vpn << PAGE_SHIFT) & MASK64
        flags &= MASK64
        if t[i + CODE_VPAGE] == tag and t[i + CODE_FLAGS] == flags and t[i + CODE_PAGE] == page:
            return  # most calls (a miss of a block just translated on a known page)
        t[i + CODE_VPAGE] = tag
        t[i + CODE_FLAGS] = flags
        t[i + CODE_PAGE] = page
        self.flags_of.setdefault(vpn, set()).add(flags)

    def page_of(self, vpn: int, flags: int) -> int | None:
        """The physical page the entry of (``vpn``, ``flags``) holds, if it does."""
        t = self._t
        i = self._first + code_tlb_index(vpn, flags) * CODE_ENTRY_WORDS
        if t[i + CODE_VPAGE] == (vpn << PAGE_SHIFT) & MASK64 and t[i + CODE_FLAGS] == flags:
            return t[i + CODE_PAGE]
        return None

    def forget(self, vpn: int) -> None:
        """Page ``vpn``'s entries go, and every jump cache slot its pcs may hold."""
        filled = self.flags_of.pop(vpn, None)
        if not filled:  # most flushed pages never held code
            return
        t = self._t
        backend = self._backend
        run = 1 << (PAGE_SHIFT - backend.jc_pc_shift)
        for flags in filled:
            i = self._first + code_tlb_index(vpn, flags) * CODE_ENTRY_WORDS
            if t[i + CODE_VPAGE] == (vpn << PAGE_SHIFT) & MASK64 and t[i + CODE_FLAGS] == flags:
                t[i + CODE_VPAGE] = NO_PAGE
            start = backend.jc_index(vpn << PAGE_SHIFT, flags) & ~(run - 1)
            ctypes.memset(self._jc + 8 * start, 0, 8 * run)

    def forget_all(self) -> None:
        """Every entry goes (the owner empties its jump cache itself)."""
        ctypes.memset(ctypes.addressof(self._t) + 8 * self._first, 0xFF, 8 * CODE_TLB_WORDS)
        self.flags_of.clear()


class GlobalJumpCache:
    """A vCPU's second native jump cache: blocks on global pages (the same mapping in
    every address space), which the dispatcher finds after a miss in the jump cache of
    the address space in use.  ``pcs`` (vpn -> pcs entered) lets a page flush forget
    just that page's blocks."""

    def __init__(self, backend: object) -> None:
        self._backend = backend
        # the jump cache, then the code TLB of global pages (the dispatcher finds it
        # right after the jump cache), probed after the address space's own: a kernel
        # page found in one address space is found in every other one
        n = 1 << backend.jc_bits
        self.jump_cache = (ctypes.c_uint64 * (n + CODE_TLB_WORDS))()
        self._jc_bytes = 8 * n
        ctypes.memset(ctypes.addressof(self.jump_cache) + self._jc_bytes, 0xFF,
                      8 * CODE_TLB_WORDS)
        self.address = ctypes.addressof(self.jump_cache)
        self.pcs: dict[int, set[int]] = {}
        self.code = CodeTLB(self.jump_cache, n, self.address, backend)

    def add(self, tb: object, vpn: int, flags: int, page: int) -> None:
        """A block on global page ``vpn`` (code at physical ``page``), run under
        ``flags``: into this jump cache, and its page into the code TLB."""
        self._backend.put_in_jump_cache(tb, self.address)
        self.pcs.setdefault(vpn, set()).add(tb.pc)
        self.code.fill(vpn, flags, page)

    def forget(self, vpns: Iterable[int] | None) -> None:
        """Drop the blocks of these pages (None: all)."""
        if vpns is None:
            self.code.forget_all()
            ctypes.memset(self.jump_cache, 0, self._jc_bytes)
            self.pcs.clear()
            return
        for vpn in vpns:
            self.code.forget(vpn)
            pcs = self.pcs.pop(vpn, None)
            if pcs:
                _forget_pcs(self.jump_cache, self._backend, pcs)


def _forget_pcs(jc: ctypes.Array, backend: object, pcs: Iterable[int]) -> None:
    index = backend.jc_index
    flags_seen = tuple(backend.flags_seen)
    for pc in pcs:
        for flags in flags_seen:
            jc[index(pc, flags)] = 0


def _load_helper(idx: int) -> Helper:
    def load(env: object, addr: int, size: int) -> int:
        return env.mmu.missed_load(addr, size, idx)  # type: ignore[attr-defined]
    return Helper(f"softmmu_load_mmu{idx}", load, flags=CALL_SIDE_EFFECTS, needs_env=True)


def _load_for_store_helper(idx: int) -> Helper:
    def load(env: object, addr: int, size: int) -> int:
        return env.mmu.missed_load(addr, size, idx, True)  # type: ignore[attr-defined]
    return Helper(f"softmmu_load_for_store_mmu{idx}", load, flags=CALL_SIDE_EFFECTS,
                  needs_env=True)


def _store_helper(idx: int) -> Helper:
    def store(env: object, addr: int, size: int, value: int) -> None:
        env.mmu.missed_store(addr, size, value, idx)  # type: ignore[attr-defined]
    return Helper(f"softmmu_store_mmu{idx}", store, flags=CALL_SIDE_EFFECTS, n_out=0,
                  needs_env=True)


MMU_INDICES = (MMU_DYNAMIC, *range(N_MMU))


class SoftmmuMemory(GuestMemoryCodegen):
    """The system-mode memory model of the native backend (one MMU index per block)."""

    def __init__(self, tlb_slot: int, mmu_index: Callable[[int], int]) -> None:
        """``tlb_slot``: the state slot holding the TLB in use (``NativeContext``);
        ``mmu_index``: block flags -> the MMU index of its data accesses."""
        super().__init__()
        self._tlb_slot = tlb_slot
        self._mmu_index = mmu_index
        self.idx = MMU_DYNAMIC  # set per block by begin_block
        self._walker = x.Label()  # the native page walker (emit_routines)
        self._routines: dict[str, int] = {}  # helper name -> offset of its routine
        # where the dispatcher finds the code TLB: bytes into the TLB in use
        self.code_tlb_offset = CODE_TLB_OFFSET
        self._loads = {idx: _load_helper(idx) for idx in MMU_INDICES}
        self._loads_for_store = {idx: _load_for_store_helper(idx) for idx in MMU_INDICES}
        self._stores = {idx: _store_helper(idx) for idx in MMU_INDICES}

    # -- the runtime's interface ------------------------------------------------------
    def emit_entry(self, a: x.Assembler) -> None:
        """Nothing is kept in registers: the TLB in use is read from its slot."""

    def _walk_geometry(self) -> TLBGeometry:
        """This TLB's layout, as the native page walker needs it."""
        return TLBGeometry(
            tlb_slot=self._tlb_slot, entry_shift=ENTRY_SHIFT, entries=TLB_ENTRIES,
            table_bytes=TABLE_BYTES, victim_bytes=VICTIM_BYTES, read_tag=8 * READ_TAG,
            write_tag=8 * WRITE_TAG, addend=8 * ADDEND, mark=8 * MARK,
            walk_offset=8 * WALK_FIRST,
            tables=N_MMU)

    def emit_routines(self, a: x.Assembler) -> None:
        """The native page walker, once, before the thunks that call it, and the page
        flush probe (PAGE_FLUSH_PROBE's machine code)."""
        emit_walker(a, self._walk_geometry(), self._walker)
        probe = x.Label()
        emit_flush_probe(a, self._walk_geometry(), probe)
        assert probe.pos is not None  # bound by emit_flush_probe
        self._routines[PAGE_FLUSH_PROBE.name] = probe.pos

    def routine_offset(self, helper: Helper) -> int | None:
        """Where in the dispatcher's code the machine code of ``helper`` lies, if this
        memory model emitted one (emit_routines)."""
        return self._routines.get(helper.name)

    def emit_refill(self, a: x.Assembler, key: tuple, done: x.Label) -> None:
        """A thunk's native refill before its Python call (page_walk.emit_refill):
        the MMU indexes that translate (not M, not one known only at access time)."""
        kind, size, idx = key
        if idx in (0, 1, 2):
            emit_refill(a, self._walker, self._walk_geometry(), idx, size, kind, done)

    def emit_code_refill(self, a: x.Assembler, flags: Mem, jump_cache: Mem,
                         found: x.Label, miss: x.Label) -> None:
        """The dispatcher's code TLB refill: a native fetch walk (page_walk.py)."""
        emit_code_refill(a, self._walker, self._walk_geometry(),
                         CodeTLBGeometry(CODE_TLB_OFFSET, 8 * CODE_VPAGE, 8 * CODE_FLAGS,
                                         8 * CODE_PAGE),
                         flags, jump_cache, found, miss)

    def slow_paths(self) -> list[tuple[tuple, Helper, int, bool]]:
        paths = []
        for idx in MMU_INDICES:
            for size in (1, 2, 4, 8):
                paths.append((("ld", size, idx), self._loads[idx], size, False))
                paths.append((("ldw", size, idx), self._loads_for_store[idx], size, False))
                paths.append((("st", size, idx), self._stores[idx], size, True))
        return paths

    def begin_block(self, block: Block) -> None:
        self.idx = self._mmu_index(block.flags)

    def attach_cpu(self, cpu: object, backend: object) -> None:
        """Harts point their slots at their current context themselves."""

    marks_stores = True  # rcx: the page's code-write mark, from the entry

    def emit_store_done(self, a: x.Assembler) -> None:
        """The store landed: set its page's code-write mark (after it, so that a
        fence on another thread that sees the mark sees the bytes: code_writes.py)."""
        a.store_imm(1, Mem(RCX, 0), 1)

    # -- code generation ----------------------------------------------------------------
    def address(self, cg: object, v: object) -> int:
        if isinstance(v, Const):  # rcx and r11 are the lookup's scratch registers
            r = cg.ra.pick()
            cg.ra.locked.add(r)
            cg.asm.mov_ri(r, v.value)
            return r
        return cg.ra.use(v)

    def thunk_key(self, kind: str, size: int) -> tuple:
        return (kind, size, self.idx)

    def access_key(self) -> object:
        """The block's MMU index: which table the lookup reads (or none)."""
        return self.idx

    def assemble_fast_path(self, a: x.Assembler, labels: list[x.Label], addr: int,
                           size: int, store: bool) -> Mem | None:
        if self.idx == MMU_DYNAMIC:
            return None
        self._assemble_lookup(a, labels[VICTIM], addr, size, self.idx, store)
        a.bind(labels[FOUND])
        return Mem(R11, 0, addr)

    def assemble_cold(self, a: x.Assembler, labels: list[x.Label], addr: int, size: int,
                      store: bool) -> None:
        """The victim entry's check, out of line: r11 and rcx are as the main entry's
        compare left them."""
        if self.idx == MMU_DYNAMIC:
            return
        victim = self.idx * TABLE_BYTES + VICTIM_BYTES
        tag = victim + 8 * (WRITE_TAG if store else READ_TAG)
        a.bind(labels[VICTIM])
        a.alu_rm(x.CMP, 64, RCX, Mem(R11, tag))
        a.jcc(x.CC_NE, labels[SLOW])
        if store:
            _load_mark(a, victim)
        a.load(64, R11, Mem(R11, victim + 8 * ADDEND))
        a.jmp(labels[FOUND])

    def _assemble_lookup(self, a: x.Assembler, slow: x.Label, addr: int, size: int,
                         idx: int, store: bool) -> None:
        """Leaves the entry's host addend in r11, or jumps to ``slow`` with r11 the
        entry's address less the table's offset and rcx the tag it did not match."""
        table = idx * TABLE_BYTES
        # r11 = &tlb[idx][(addr >> 12) % entries]
        a.mov_rr(64, R11, addr)
        a.shift_ri(x.SHR, 64, R11, PAGE_SHIFT - ENTRY_SHIFT)
        a.alu_ri(x.AND, 32, R11, (TLB_ENTRIES - 1) << ENTRY_SHIFT)
        a.alu_rm(x.ADD, 64, R11, Mem(RBP, 8 * self._tlb_slot))
        # rcx = the page of the access's last byte: another page than addr's if it
        # crosses one
        if size > 1:
            a.lea(RCX, Mem(addr, size - 1))
        else:
            a.mov_rr(64, RCX, addr)
        a.alu_ri(x.AND, 64, RCX, -PAGE_SIZE)
        a.alu_rm(x.CMP, 64, RCX, Mem(R11, table + 8 * (WRITE_TAG if store else READ_TAG)))
        a.jcc(x.CC_NE, slow)
        if store:
            _load_mark(a, table)
        a.load(64, R11, Mem(R11, table + 8 * ADDEND))


def _load_mark(a: x.Assembler, entry: int) -> None:
    """A store hit the entry at r11 + ``entry``: rcx (the compared tag, free again) =
    the address of its page's code-write mark, which ``emit_store_done`` sets after
    the store.  Two instructions on a line the compare just read, where QEMU keeps
    code pages out of the write TLB instead: taking them out again after each fence
    needs every TLB searched for the page (tens of address spaces of 8 k entries each
    per hart), which costs more than the compares this saves."""
    a.load(64, RCX, Mem(R11, entry + 8 * MARK))


__all__ = ["SoftmmuMemory", "NativeContext", "TLB_ENTRIES"]
