"""System-mode TCG: translated blocks keyed by physical page, and the vCPU loop.

Translated code depends on the guest pc (pc-relative constants, branch targets), on
the bytes at the pc's *physical* address, and on the block flags (the target's
privilege and translation state).  ``SystemTranslator`` keys blocks by ``(flags, pc,
physical page)``, so a change of address space or privilege never runs a stale block,
and the same kernel code is shared by every process.  Each vCPU keeps a *jump cache*
per flags value, pc -> function, valid as long as its execute TLB entry is: it lives
in the softmmu's per-address-space ``TLBContext``, so a TLB flush drops it too and an
address-space switch selects the jump cache of the new address space.

Self-modifying code: the guest must synchronise instruction fetch after writing code
(RISC-V: ``fence.i``), so stores never check for code.  Instead the translator
snapshots every page it translates from, and ``sync_code`` compares the snapshots
with memory and drops blocks of pages that changed, whoever changed them (a CPU store
or device DMA); only pages marked as written since their last compare are compared
(memory/code_writes.py: every store marks its page, in one byte).

``SystemCPU.run`` executes until the machine asks it to stop or yield, or the vCPU
waits for an interrupt; machine.Machine runs all vCPUs round-robin on one thread.
The target subclasses ``SystemCPU`` (RISC-V: target/riscv/hart.py) and supplies what
is architectural: the block flags, interrupt and exception entry, its timer.

Two backends: ``python`` (blocks are Python functions the loop calls one after
another) and ``native`` (x86-64 code that chains block to block and returns to the
loop only on a jump-cache miss, an exception or an exit request; see
backend/x86_64/memory_softmmu.py for its TLB).  Generated code never looks at the host
clock, so with the native backend machine.DeadlineKicker requests the exit when a
vCPU's timer is due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns

from pemu.accel.tcg import counters
from pemu.accel.tcg.backend.x86_64.memory_softmmu import (
    GlobalJumpCache,
    NativeContext,
    SoftmmuMemory,
)
from pemu.accel.tcg.backend.x86_64.runtime import (
    EXIT_EXC,
    EXIT_MISS,
    CachedGroup,
    NativeBackend,
    page_chain_keys,
)
from pemu.accel.tcg.backend.x86_64.signal_wakeup import WAKEUP
from pemu.accel.tcg.big_lock import BigLock
from pemu.accel.tcg.code_snapshots import CodeSnapshots
from pemu.accel.tcg.engine import resolve_backend
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.softmmu import (
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    SoftMMU,
    SoftmmuBackend,
    TLBContext,
    VirtualMemory,
)
from pemu.accel.tcg.target import CPUState, TCGTarget
from pemu.accel.tcg.tb_cache import (
    PAGE_OFFSET_KEY_FLAG,
    SECOND_PAGE,
    TWO_PAGES_KEY_FLAG,
    TranslationCache,
    open_cache,
    page_digest,
)
from pemu.accel.tcg.translator import BlockTranslator
from pemu.memory.address_space import AddressSpace, RAMBlock

# -accel tcg,tb-size=N: the translation cache, in MiB.  Debian's guest boot translates
# about 160 k distinct blocks; with 64 MiB the cache was dropped three times and the boot
# took 40 % longer.  Only the code pages actually written take host memory.
DEFAULT_TB_SIZE_MIB = 512
BLOCKS_PER_MIB = 512  # blocks kept per MiB of tb-size before the whole cache is dropped
TIMER_CHECK_BLOCKS = 128  # blocks between two looks at the host clock for the timer
DEFAULT_BACKEND = "auto"  # -accel tcg,backend=python|native|auto: native on x86-64
NATIVE_JC_BITS = 17  # native jump cache entries per address space: 128 k (1 MiB, zeroed lazily)


@dataclass(eq=False, slots=True)  # (170 k of them in a warm Debian boot)
class SystemTB:
    pc: int
    flags: int
    pages: tuple[int, ...]  # physical page numbers the code lies on
    n_insns: int
    fn: Callable
    source: str = field(repr=False, default="")


class SystemTranslator:
    """Translated code shared by the vCPUs of one machine."""

    def __init__(self, space: AddressSpace, dram: RAMBlock, target: TCGTarget,
                 log: TCGLog | None = None, max_insns: int = 256, backend: str = "python",
                 tb_size_mib: int = DEFAULT_TB_SIZE_MIB, parallel: bool = False,
                 vcpus: int = 1) -> None:
        """``tb_size_mib`` bounds the cache as QEMU's ``tb-size`` does: the native code
        buffer has that many MiB, and at most ``BLOCKS_PER_MIB`` blocks per MiB are
        kept (the python backend's bound); past either, every block is dropped.

        ``parallel``: MTTCG (``-accel tcg,thread=multi``), each vCPU on its own host
        thread (mttcg.ParallelMachine): atomics become host compare-and-swaps, and
        Python runs under the big lock ``self.bql`` (big_lock.py).  ``vcpus``: how
        many the board makes; several without ``parallel`` take turns on one thread,
        and a target's spin-wait hint then ends a vCPU's turn
        (``TCGTarget.pause_ends_turn``)."""
        self.space = space
        self.dram = dram
        self.target = target
        self.layout = target.layout
        self.log = log or TCGLog()
        self.max_tbs = tb_size_mib * BLOCKS_PER_MIB
        # one thread runs every vCPU: atomics need no lock and are inlined; parallel
        # vCPUs: helpers finish them with a host compare-and-swap
        self.parallel = parallel
        self.pause_ends_turn = target.pause_ends_turn and vcpus > 1 and not parallel
        self.translator = BlockTranslator(target, self.log, max_insns,
                                          inline_atomics=not parallel)
        self.fetch_index = target.fetch_index
        self._fetch_fault = target.fetch_fault
        self.backend_name = resolve_backend(backend)  # ValueError: unknown or unsupported
        self.native = self.backend_name == "native"
        self.bql: BigLock | None = None
        if parallel and not self.native:
            raise ValueError("thread=multi needs the native backend (the python "
                             "backend runs every vCPU on one thread: thread=single)")
        if self.native:
            self.backend = NativeBackend(
                self, self.layout, code_size=tb_size_mib << 20,
                memory=SoftmmuMemory(self.layout.native_tlb, target.mmu_index),
                jc_bits=NATIVE_JC_BITS, one_thread=not parallel)
            if parallel:
                self.bql = self.backend.bql = BigLock()
        else:
            self.backend = SoftmmuBackend(dram, self.layout.pc, target.mmu_index)
        self.tbs: dict[tuple[int, int, int], SystemTB] = {}
        self.by_page: dict[int, list[SystemTB]] = {}
        # for fence.i: the native compare is host code, which only the native backend
        # may run (the python backend is the reference that runs anywhere); it
        # compares only DRAM pages written since their last compare
        self.snapshots = CodeSnapshots(space, native_compare=self.native, tracked=dram)
        # (flags, ppn, digest, vpn) of the pages whose cached blocks were all installed
        # at their first hit (_install_cached): per virtual page, as a program's page is
        # mapped at another address in each process
        self.pages_loaded: set[tuple[int, int, bytes, int]] = set()
        # cached pages' blocks installed together, by (flags, virtual page, physical
        # page), and by physical page number; how many of their blocks have no record
        self.groups: dict[tuple[int, int, int], CachedGroup] = {}
        self.groups_by_page: dict[int, list[CachedGroup]] = {}
        self.grouped = 0
        self.harts: list[SystemCPU] = []
        # guest pcs the frontend checks before executing (the target's debug triggers);
        # whoever changes it flushes the blocks translated before
        self.break_pcs: frozenset[int] = frozenset()
        self.stats = {"translated": 0, "translate_s": 0.0, "invalidated_pages": 0,
                      "flushes": 0}
        self.tb_cache = self._open_tb_cache(max_insns)
        # block flags -> its code may be position-independent (TCGTarget.relocatable)
        self.relocatable = target.relocatable or (lambda flags: False)

    def _open_tb_cache(self, max_insns: int) -> TranslationCache | None:
        """The native code of earlier runs (tb_cache.py)."""
        if not self.native:
            return None
        # MTTCG translates atomics and fences differently: its blocks are its own
        mttcg = ("thread=multi",) if self.parallel else ()
        # vCPUs taking turns translate a spin-wait hint differently too
        turns = ("pause-ends-turn",) if self.pause_ends_turn else ()
        return open_cache(self.backend, self.log,
                          (max_insns, self.target.name, self.target.config, *mttcg, *turns))

    def native_context_factory(self) -> Callable[[], NativeContext] | None:
        """What makes the native part of a vCPU's TLB contexts (None: python backend)."""
        if not self.native:
            return None
        backend = self.backend
        host = self.dram.host_addr
        marks = self.dram.track_code_writes().marks_address
        return lambda: NativeContext(backend, host, marks)

    def _page_bytes(self, ppn: int) -> bytes:
        return self.snapshots.page_bytes(ppn)

    def _read_code(self, paddr: int, size: int) -> int:
        region = self.space.find(paddr, size)
        if not isinstance(region, RAMBlock):
            raise self._fetch_fault(paddr)
        off = paddr - region.base
        return int.from_bytes(region.view[off:off + size], "little")

    def lookup(self, hart: SystemCPU, pc: int, flags: int) -> SystemTB:
        """The block for ``pc`` under ``flags``; translates on a miss (may raise a trap)."""
        page = hart.mmu.exec_page(pc, self.fetch_index(flags))
        tb = self.tbs.get((flags, pc, page))
        if tb is None:
            tb = self._from_group(pc, flags, page) or self.translate(hart, pc, flags, page)
        return tb

    def _from_group(self, pc: int, flags: int, page: int) -> SystemTB | None:
        """The record of a block installed with its cached page (``_install_cached``)
        and not needed as a record until now, or None."""
        group = self.groups.get((flags, pc >> PAGE_SHIFT, page))
        if group is None or pc in group.records:  # (a record is in self.tbs)
            return None
        fn = self.backend.group_record(group, pc)
        if fn is None:
            return None
        self.grouped -= 1
        tb = SystemTB(pc, flags, (page >> PAGE_SHIFT,), group.placed[group.index[pc]][7], fn)
        self.tbs[(flags, pc, page)] = tb
        self.by_page.setdefault(page >> PAGE_SHIFT, []).append(tb)
        return tb

    def translate(self, hart: SystemCPU, pc: int, flags: int, page: int,
                  max_insns: int | None = None) -> SystemTB:
        """Translate the block at ``pc`` (whose code is at physical ``page``) and cache
        it; ``max_insns``: fewer instructions than usual (the debugger's steps)."""
        # Make room first: a flush after compiling would drop (with the native
        # backend: poison) the very block the hart is about to run.
        if len(self.tbs) + self.grouped >= self.max_tbs:
            self.flush()
        start = time.thread_time()  # CPU time: the shared hosts' wall clock is noise
        region = self.space.find(page, PAGE_SIZE)
        # the block's own page straight from its RAM (no region search per instruction)
        view = region.view if isinstance(region, RAMBlock) else None
        page_off = page - region.base if view is not None else 0
        # a cached block knows nothing of break_pcs: not while any are set
        cache = (self.tb_cache if view is not None and max_insns is None
                 and not self.break_pcs else None)
        # position-independent code (user programs: ASLR) is cached by its offset in
        # the page, so it serves every address the page's bytes are mapped at
        relocatable = cache is not None and self.relocatable(flags)
        key_flags, key_pc = ((flags | PAGE_OFFSET_KEY_FLAG, pc & PAGE_MASK) if relocatable
                             else (flags, pc))
        if cache is not None:
            page_bytes = bytes(view[page_off:page_off + PAGE_SIZE])
            digest = self._page_key(page >> PAGE_SHIFT, page_bytes)
            hit = cache.get(key_flags, key_pc, digest)
            if hit is not None:
                return self._install_cached(cache, pc, flags, key_flags, page, hit, start,
                                            page_bytes, digest)
            hit = cache.get(key_flags | TWO_PAGES_KEY_FLAG, key_pc, digest)
            if hit is not None:
                tb = self._install_two_pages(hart, pc, flags, page, hit, start, page_bytes,
                                             digest, relocatable)
                if tb is not None:
                    return tb
        idx = self.fetch_index(flags)
        vpn = pc >> PAGE_SHIFT
        pages = [page >> PAGE_SHIFT]
        read = self._read_code
        mmu = hart.mmu

        def fetch(addr: int, size: int) -> int:
            if addr >> PAGE_SHIFT == vpn:
                off = addr & PAGE_MASK
                if view is not None and off + size <= PAGE_SIZE:
                    return int.from_bytes(view[page_off + off:page_off + off + size],
                                          "little")
                return read(page | off, size)
            other = mmu.exec_page(addr, idx)  # the second half of a straddling insn
            if other >> PAGE_SHIFT not in pages:
                pages.append(other >> PAGE_SHIFT)
            return read(other | (addr & PAGE_MASK), size)

        options: dict[str, object] = {"break_pcs": self.break_pcs} if self.break_pcs else {}
        if self.parallel:
            options["host_cas"] = True  # the frontend's inline host atomics (MTTCG)
        elif self.pause_ends_turn:
            options["pause_ends_turn"] = True  # vCPUs take turns: a spin-wait yields
        t = self.translator.translate(self.backend, pc, flags, fetch, max_insns,
                                      pc_relative=relocatable, **options)
        if self.native:
            self._set_chain_keys(t.fn, flags, pc, page, len(pages) == 1)
            if len(pages) == 1:
                self.backend.set_code_page(t.fn, page)
            gen, t.fn.generated = t.fn.generated, None
            if cache is not None and len(pages) == 1:
                cache.put(key_flags, key_pc, digest, gen, t.block.n_insns)
                return self._add(SystemTB(pc, flags, (pages[0],), t.block.n_insns, t.fn,
                                          t.source), page, start, page_bytes, digest)
            if cache is not None and len(pages) == 2:
                # its last instruction runs onto the next virtual page (an RVC kernel
                # ends many pages so): kept under the first page's key, with the next
                # page's digest, which must match when it is found
                second = self._current_digest(pages[1])
                if second is not None:
                    cache.put(key_flags | TWO_PAGES_KEY_FLAG, key_pc, digest, gen,
                              t.block.n_insns, second)
                return self._add(SystemTB(pc, flags, tuple(pages), t.block.n_insns, t.fn,
                                          t.source), page, start, page_bytes, digest)
        return self._add(SystemTB(pc, flags, tuple(pages), t.block.n_insns, t.fn, t.source),
                         page, start)

    def _current_digest(self, ppn: int) -> bytes | None:
        """The cache's digest of page ``ppn``'s bytes now, or None when it is not RAM."""
        page_bytes = self.snapshots.page_bytes(ppn)
        return self._page_key(ppn, page_bytes) if page_bytes else None

    def _install_two_pages(self, hart: SystemCPU, pc: int, flags: int, page: int,
                           hit: tuple, start: float, page_bytes: bytes, digest: bytes,
                           relocate: bool) -> SystemTB | None:
        """A cached block that runs onto the next virtual page, if that page is mapped
        now (the walk a translation would make there) to a page with the bytes it was
        translated from; else None (the caller translates)."""
        entry, fixups = hit
        if len(entry) <= SECOND_PAGE:
            return None
        try:
            second = hart.mmu.exec_page((pc | PAGE_MASK) + 1, self.fetch_index(flags))
        except Exception:  # not mapped: the translation ends the block before it
            return None
        if self._current_digest(second >> PAGE_SHIFT) != entry[SECOND_PAGE]:
            return None
        fn = self.backend.install_cached(entry, fixups, pc, flags, relocate)
        self._set_chain_keys(fn, flags, pc, page, False)
        self.stats["cached"] = self.stats.get("cached", 0) + 1
        return self._add(SystemTB(pc, flags, (page >> PAGE_SHIFT, second >> PAGE_SHIFT),
                                  entry[6], fn), page, start, page_bytes, digest)

    def _page_key(self, ppn: int, page_bytes: bytes) -> bytes:
        """The translation cache's digest of a page holding ``page_bytes``: the one
        remembered with its snapshot while the page still holds those bytes (a bytes
        comparison is a tenth of a digest's cost)."""
        if self.snapshots.get(ppn) == page_bytes:
            digest = self.snapshots.digest(ppn)
            if digest is None:
                digest = page_digest(page_bytes)
                self.snapshots.set_digest(ppn, digest)
            return digest
        return page_digest(page_bytes)

    def _install_cached(self, cache: TranslationCache, pc: int, flags: int,
                        key_flags: int, page: int, hit: tuple, start: float | None,
                        page_bytes: bytes, digest: bytes) -> SystemTB:
        """The block at ``pc`` from the cache (``hit``: its entry and helper fixups),
        and at the page's first hit in this virtual page its other cached blocks of
        these flags too, as one group (``NativeBackend.install_cached_group``):
        chained to each other and in the code table but in no jump cache, so that the
        guest's jumps within the page stay in generated code instead of leaving for
        Python once per block (nearly all of them run: of the 171 k blocks a warm
        Debian boot installs so, 164 k are reached when only those that run are
        installed), and without Python records but the looked-up block's until Python
        needs one (``_from_group``).  Each is exactly what translating it now would
        give (same bytes, flags, pc and version).  ``key_flags``: what the cache
        keeps them under (``flags``, or with PAGE_OFFSET_KEY_FLAG position-independent
        blocks keyed by their page offset, installed at this page's virtual
        address)."""
        relocatable = key_flags != flags
        vpn = pc >> PAGE_SHIFT
        loaded = (flags, page >> PAGE_SHIFT, digest, vpn)
        if loaded in self.pages_loaded or (flags, vpn, page) in self.groups:
            # the page is in already (the block is new to the cache, or its group was
            # given up): the block alone, with a record
            entry, fixups = hit
            fn = self.backend.install_cached(entry, fixups, pc, flags, relocatable)
            self.backend.set_code_page(fn, page)
            self._set_chain_keys(fn, flags, pc, page, True)
            self.stats["cached"] = self.stats.get("cached", 0) + 1
            return self._add(SystemTB(pc, flags, (page >> PAGE_SHIFT,), entry[6], fn), page,
                             start, page_bytes, digest)
        self.pages_loaded.add(loaded)
        blocks = []
        tbs = self.tbs
        pcs = cache.page_pcs(key_flags, digest)
        # The page's other blocks go in together only while they are a small part of
        # what the translation cache and the code buffer hold: else they would flush
        # or reset the very blocks running now, and the next page's first miss would
        # install a whole page again (tb_flush.S under -accel tb-size=1, 512 blocks,
        # pages of ~500 blocks: 4 M installs warm against 18 k translations cold).
        room = min(self.max_tbs // 4, self.max_tbs - len(tbs) - self.grouped - 1)
        code_room = self.backend.code_room() // 4
        if len(pcs) > room:
            pcs = ()
        for key_pc in pcs:
            other = (vpn << PAGE_SHIFT | key_pc & PAGE_MASK) if relocatable else key_pc
            if other == pc or other >> PAGE_SHIFT != vpn or (flags, other, page) in tbs:
                continue
            other_hit = cache.get(key_flags, key_pc, digest)
            if other_hit is not None:
                code_room -= self.backend.block_cost(len(other_hit[0][0]))
                if code_room < 0:
                    blocks = []  # (the page's blocks all or none)
                    break
                blocks.append((*other_hit, other))
        blocks.append((*hit, pc))
        group = self.backend.install_cached_group(blocks, flags, relocatable, page)
        self.groups[(flags, vpn, page)] = group
        self.groups_by_page.setdefault(page >> PAGE_SHIFT, []).append(group)
        self.grouped += len(blocks)
        self.snapshots.add(page >> PAGE_SHIFT, page_bytes, digest)
        stats = self.stats
        stats["cached"] = stats.get("cached", 0) + len(blocks)
        stats["translated"] += len(blocks)
        if counters.ENABLED:
            for entry, _fixups, block_pc in blocks:
                self._count_translation(block_pc, page, entry[6], 1)
        tb = self._from_group(pc, flags, page)
        if tb is None:  # (nothing drops a group between its install and here)
            raise RuntimeError(f"cached block at 0x{pc:x} dropped while installed")
        if start is not None:  # one CPU clock read (a system call, 1-8 us on the
            # shared hosts: as much as installing a block), from the lookup on
            stats["translate_s"] += time.thread_time() - start
        return tb

    def _add(self, tb: SystemTB, page: int, start: float | None,
             page_bytes: bytes | None = None, digest: bytes | None = None) -> SystemTB:
        """Cache a new block by its code's pages (and snapshot them, for fence.i).
        ``start``: the CPU time its translation began (None: the caller times it);
        ``page_bytes``, ``digest``: what the first page held at translation, and its
        digest, when the translation cache looked at it."""
        pages = tb.pages
        pc, flags = tb.pc, tb.flags
        if len(pages) == 1:  # a block straddling two pages lives only in jump caches
            self.tbs[(flags, pc, page)] = tb
        for ppn in pages:
            self.by_page.setdefault(ppn, []).append(tb)
            if page_bytes is not None and ppn == pages[0]:
                self.snapshots.add(ppn, page_bytes, digest)
            else:
                self.snapshots.add(ppn)
        self.stats["translated"] += 1
        if start is not None:
            self.stats["translate_s"] += time.thread_time() - start
        if counters.ENABLED:
            self._count_translation(tb.pc, page, tb.n_insns, len(pages))
        return tb

    def _count_translation(self, pc: int, page: int, n_insns: int, n_pages: int) -> None:
        """PEMU_COUNTERS: what kind of translation this was."""
        seen = self.__dict__.setdefault("_code_seen", set())
        code = (pc, page)
        counters.count("tb:translated")
        counters.count("tb:guest insns translated", n_insns)
        if code in seen:
            counters.count("tb:same code, other flags")
        seen.add(code)
        if n_pages > 1:
            counters.count("tb:over two pages")

    @staticmethod
    def _set_chain_keys(ntb: object, flags: int, pc: int, page: int, one_page: bool) -> None:
        """Native chaining by ``page_chain_keys`` (a block straddling two pages is
        never a chain target: it lives in jump caches only)."""
        key, ntb.exit_keys = page_chain_keys(flags, pc, page, ntb.exit_pcs)
        ntb.key = key if one_page else None

    # -- invalidation -------------------------------------------------------------------
    def sync_code(self) -> None:
        """fence.i: drop the blocks of every page whose bytes changed since translation."""
        changed = self.snapshots.changed()
        if not changed:
            return
        for ppn in changed:
            self.invalidate_page(ppn)
        for hart in self.harts:
            hart.flush_jump_cache()

    def invalidate_page(self, ppn: int) -> None:
        self.snapshots.pop(ppn)
        groups = self.groups_by_page.pop(ppn, None)
        for group in groups or ():
            del self.groups[(group.flags, group.vpn, group.code_page)]
            self.grouped -= len(group) - len(group.records)
            if self.native:
                self.backend.invalidate_group(group)
        tbs = self.by_page.pop(ppn, None)
        if not tbs and not groups:
            return
        self.stats["invalidated_pages"] += 1
        if not tbs:
            return
        for tb in tbs:
            key = (tb.flags, tb.pc, tb.pages[0] << PAGE_SHIFT)
            if self.tbs.get(key) is tb:
                del self.tbs[key]
        if self.native:  # unchained and poisoned: no jump or jump cache reaches them
            self.backend.invalidate(tbs)

    def flush(self) -> None:
        self.stats["flushes"] += 1
        self.tbs.clear()
        self.by_page.clear()
        self.snapshots.clear()
        self.pages_loaded.clear()
        if self.native:
            for group in self.groups.values():  # (their chains undone too)
                self.backend.invalidate_group(group)
        self.groups.clear()
        self.groups_by_page.clear()
        self.grouped = 0
        if self.native:
            self.backend.flush()
        for hart in self.harts:
            hart.flush_jump_cache()


class _NoGuestTrap(Exception):
    """Stands in for ``SystemCPU.trap_class`` until a target names its own."""


class SystemCPU:
    """One vCPU in system mode: the execution loops around translated code.

    It is the ``env`` translated code and helpers get.  A target subclasses it and
    provides, besides its own state:

    * ``block_flags()``: the flags the next block is translated and looked up with;
    * ``cpu_exec_interrupt()``: at a block boundary after an exit request, enter a
      pending interrupt; False if the vCPU must stop (it waits for an interrupt);
    * ``trap_class`` and ``do_exception(trap)``: a guest exception raised by
      translated code or a helper, and its entry (the pc slot holds the faulting pc);
    * ``timer_deadline_ns()``: host monotonic time when the vCPU's own timer fires
      (polled by the python loop), and what machine.Machine asks of a vCPU.
    """

    trap_class: type[BaseException] = _NoGuestTrap  # the target's guest exception
    # set by machine.Machine when several vCPUs take turns: ends this vCPU's turn at
    # its next exit check (a target's spin-wait hint, e.g. A64 WFE, calls it)
    end_turn: Callable[[], None] | None = None
    # a debugger resumed only other vCPUs (gdb's vCont;c:N): this one stays stopped at
    # the monitor's gate, and the round-robin passes it by, until the next pause
    held_by_debugger = False

    def __init__(self, translator: SystemTranslator, state: CPUState, mmu: SoftMMU) -> None:
        self.translator = translator
        self.state = state
        self.slots = state.slots
        layout = translator.layout
        # slot numbers, resolved once: the loops index the state block with them
        self.pc_slot = layout.pc
        self.exit_slot = layout.exit_request
        self.flags_slot = layout.tb_flags
        self._jc_slot = layout.native_jump_cache
        self._tlb_slot = layout.native_tlb
        self.mmu = mmu
        mmu.on_switch = self._bind_context
        # blocks on global pages, found by the dispatcher in every address space
        self._global_jc_slot = layout.native_global_jump_cache
        self.global_jc: GlobalJumpCache | None = None
        if translator.native and self._global_jc_slot is not None:
            self.global_jc = GlobalJumpCache(translator.backend)
            mmu.on_global_flush = self.global_jc.forget
        factory = translator.native_context_factory()
        if factory is not None:
            mmu.enable_native(factory)
        self.mem = VirtualMemory(mmu, translator.space.lock)
        self._bind_context(mmu.ctx)
        self.should_stop: Callable[[], bool] = lambda: False
        # the host thread (native id) that runs this vCPU when it has one of its own
        # (MTTCG): query-cpus-fast reports it, and libvirt pins vCPUs by it
        self.host_thread_id: int | None = None
        self.count_insns = False
        self.insns = 0
        self._insns_of: dict[Callable, int] = {}
        translator.harts.append(self)

    # -- the target's part ------------------------------------------------------------------
    def block_flags(self) -> int:
        raise NotImplementedError

    def cpu_exec_interrupt(self) -> bool:
        raise NotImplementedError

    def do_exception(self, trap: BaseException) -> None:
        raise NotImplementedError

    def timer_deadline_ns(self) -> int:
        raise NotImplementedError

    # -- hooks used by the target's CSRs and helpers -------------------------------------
    def request_exit(self) -> None:
        """Leave translated code at the next block entry (any thread)."""
        self.slots[self.exit_slot] = 1

    def flags_changed(self) -> None:
        """A helper changed what ``block_flags()`` returns (or the address space).

        The native loop's dispatcher looks blocks up by the flags slot, so updating it
        in place lets the helper's block end with a lookup (goto_ptr) and run on
        natively; the python loop holds the flags and the jump cache it started with,
        so it must be left."""
        if self.translator.native and not self.count_insns:
            self.slots[self.flags_slot] = self.block_flags()
        else:
            self.request_exit()

    def tlb_flush_all(self) -> None:
        self.mmu.flush_all()

    def detach_new_translations(self) -> Callable[[], None]:
        """This machine's translations not yet in the cache, handed to the writer this
        returns (run it on any thread), so that a process taking the guest over on this
        host (a migration destination) finds them.  Call it with the vCPUs parked."""
        cache = self.translator.tb_cache
        if cache is None:
            return lambda: None
        blocks = cache.take_new()
        return lambda: cache.write(blocks)

    def flush_icache(self) -> None:
        self.translator.sync_code()

    def flush_jump_cache(self) -> None:
        self.mmu.flush_jump_caches()

    def _bind_context(self, ctx: TLBContext) -> None:
        """A new address space is current: rebind what translated code and run() use."""
        # the TLB dicts translated code reads, by MMU index (softmmu.SoftmmuCodegen)
        self.R0, self.R1, self.R2, self.R3 = ctx.read_tlb
        self.W0, self.W1, self.W2, self.W3 = ctx.write_tlb
        self.jump_cache = ctx.jump_cache
        native = ctx.native
        if native is not None:  # what the native dispatcher and memory code read
            self.slots[self._jc_slot] = native.jc_address
            self.slots[self._tlb_slot] = native.tlb_address
            if self.global_jc is not None:
                self.slots[self._global_jc_slot] = self.global_jc.address

    # -- execution -------------------------------------------------------------------------
    def _find(self, pc: int, flags: int, jc: dict[int, Callable]) -> Callable:
        tb = self.translator.lookup(self, pc, flags)
        jc[pc] = tb.fn
        self._insns_of[tb.fn] = tb.n_insns
        self._remember_page(pc)
        return tb.fn

    def _remember_page(self, pc: int) -> None:
        """A flush of pc's page (or the next, for a straddling insn) must forget pc."""
        ctx = self.mmu.ctx
        for vpn in {pc >> PAGE_SHIFT, (pc + 2) >> PAGE_SHIFT}:
            ctx.remember_pc(vpn, pc)

    def _handle_exit_request(self) -> bool:
        """At a block boundary with exit_request set: False if the loop must return."""
        if self.should_stop():
            # exit_request stays set: the request may also have been an interrupt for
            # this vCPU, which must be looked at when it runs again
            return False
        self.slots[self.exit_slot] = 0
        return self.cpu_exec_interrupt()

    def run(self) -> None:
        """Run until ``should_stop()`` is true at an exit request, or the vCPU waits."""
        if self.translator.native and not self.count_insns:
            self._run_native()
            return
        S = self.slots
        PC, EXIT = self.pc_slot, self.exit_slot
        trap_class = self.trap_class
        while True:
            if S[EXIT] and not self._handle_exit_request():
                return
            flags = self.block_flags()
            jc = self.jump_cache.get(flags)
            if jc is None:
                jc = self.jump_cache[flags] = {}
            get = jc.get
            pc = S[PC]
            try:
                if self.count_insns:
                    self._run_counting(pc, flags, jc)
                    continue
                deadline = self.timer_deadline_ns()
                budget = TIMER_CHECK_BLOCKS
                while not S[EXIT]:
                    fn = get(pc)
                    if fn is None:
                        S[PC] = pc
                        fn = self._find(pc, flags, jc)
                    pc = fn(S, self)
                    budget -= 1
                    if not budget:
                        # The timer is polled here rather than armed on another
                        # thread: waking a host thread per guest tick costs more than
                        # this check.
                        budget = TIMER_CHECK_BLOCKS
                        if monotonic_ns() >= deadline:
                            S[EXIT] = 1
                S[PC] = pc
            except trap_class as trap:
                self.do_exception(trap)

    def _run_native(self) -> None:
        """The same loop with the native backend: generated code runs block to block
        and comes back only for a jump-cache miss, an exception or an exit request."""
        S = self.slots
        PC, EXIT, FLAGS = self.pc_slot, self.exit_slot, self.flags_slot
        trap_class = self.trap_class
        translator = self.translator
        backend = translator.backend
        stats = backend.stats
        counting = counters.ENABLED
        global_jc = self.global_jc
        global_exec = self.mmu.global_exec
        mmu = self.mmu
        fetch_index = translator.fetch_index
        if threading.current_thread() is threading.main_thread():
            WAKEUP.enter_main(self)  # SIGINT/SIGTERM reach Python while code is chained
        while True:
            if S[EXIT] and not self._handle_exit_request():
                return
            flags = self.block_flags()
            S[FLAGS] = flags
            try:
                code = backend.call(self)
                if code == EXIT_MISS:
                    stats["exits_miss"] += 1
                    if S[EXIT]:
                        if counting:
                            counters.count("exit:miss with a request pending")
                        continue  # e.g. after xRET: the flags are stale, look again
                    pc = S[PC]
                    if counting:
                        counters.count("exit:miss")
                    # a helper (xRET, a status write) may have changed the flags in
                    # place since the call began (flags_changed)
                    flags = S[FLAGS]
                    if counting:
                        self._count_miss(pc, flags)
                    tb = translator.lookup(self, pc, flags)
                    if not backend.link(tb.fn, self):
                        if translator.parallel:
                            continue  # another vCPU reset the code buffer: look again
                        # one thread runs every hart: a cached block is never dead
                        raise RuntimeError(f"translated block at 0x{pc:x} was dropped "
                                           "while still cached")
                    self._remember_page(pc)
                    if len(tb.pages) == 1:  # the dispatcher finds it again by itself
                        mmu.note_code_page(pc, fetch_index(flags), flags)
                    vpn = pc >> PAGE_SHIFT
                    if global_jc is not None and vpn in global_exec and len(tb.pages) == 1:
                        global_jc.add(tb.fn, vpn, flags, tb.pages[0] << PAGE_SHIFT)
                elif code == EXIT_EXC:
                    if counting:
                        counters.count("exit:exception")
                    raise backend.take_pending(self)
                else:
                    stats["exits_req"] += 1
                    if counting:
                        counters.count("exit:request")
            except trap_class as trap:
                self.do_exception(trap)

    def _count_miss(self, pc: int, flags: int) -> None:
        """PEMU_COUNTERS: why the native jump cache missed."""
        seen = self.__dict__.setdefault("_linked_in", {})  # (pc, flags) -> space keys
        spaces = seen.setdefault((pc, flags), set())
        key = self.mmu.ctx.key
        if not spaces:
            counters.count("miss:first run anywhere")
        elif key in spaces:
            counters.count(f"miss:again in the same space ({'USHM'[flags & 3]})")
        else:
            counters.count(f"miss:first in this space ({'USHM'[flags & 3]})")
        spaces.add(key)

    def _run_counting(self, pc: int, flags: int, jc: dict[int, Callable]) -> None:
        """The same loop, also counting guest instructions (for benchmarks)."""
        S = self.slots
        PC, EXIT = self.pc_slot, self.exit_slot
        get = jc.get
        insns_of = self._insns_of
        n = 0
        deadline = self.timer_deadline_ns()
        try:
            while not S[EXIT]:
                fn = get(pc)
                if fn is None:
                    S[PC] = pc
                    fn = self._find(pc, flags, jc)
                n += insns_of[fn]
                pc = fn(S, self)
                if not n & 63 and monotonic_ns() >= deadline:
                    S[EXIT] = 1
            S[PC] = pc
        finally:
            self.insns += n


__all__ = ["DEFAULT_BACKEND", "SystemCPU", "SystemTB", "SystemTranslator"]
