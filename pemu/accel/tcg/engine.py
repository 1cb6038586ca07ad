"""The TCG execution engine: translation-block cache and the CPU execution loop.

``TCGEngine`` owns what all vCPUs (or guest threads) share: the translator, the
backend, the cache of translated blocks keyed by (pc, flags), and the page index
used to drop blocks when the guest writes to code.  ``TCGCPU.run`` executes one
vCPU: look up the block for the current pc, translate on a miss, call it, repeat,
until an exception leaves translated code or an exit is requested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.accel.tcg.backend import x86_64
from pemu.accel.tcg.backend.python import PythonBackend, UserMemoryCodegen
from pemu.accel.tcg.backend.x86_64.runtime import NativeBackend
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.preinstall import PreinstalledBlocks
from pemu.accel.tcg.target import TCGTarget
from pemu.accel.tcg.tb_cache import (
    TWO_PAGES_KEY_FLAG,
    Entry,
    TranslationCache,
    open_cache,
    page_digest,
)
from pemu.accel.tcg.translator import BlockTranslator

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# Blocks translated one instruction each, for breakpoints: a separate cache key.
DEBUG_SINGLE_INSN_FLAG = 1 << 62
MAX_INSN_BYTES = 4  # the user-mode targets' longest instruction (RISC-V, A64)


class DebugStop(Exception):
    """Translated code stopped for the debugger (breakpoint); state is precise."""

    def __init__(self, reason: str, addr: int) -> None:
        super().__init__(f"{reason} at 0x{addr:x}")
        self.reason = reason
        self.addr = addr


@dataclass(eq=False)
class TranslationBlock:
    pc: int
    flags: int
    size: int
    n_insns: int
    fn: Callable[[memoryview, object], int]
    pages: tuple[int, ...]
    source: str = field(repr=False, default="")


class TBCache:
    """Translated blocks by (flags, pc), and by the guest pages their code lies on.

    The blocks of a preinstalled group (preinstall.py: flags 0, all on one page) are
    kept as their group's dict, by page, not entered one by one: a program forked
    from the binfmt server links hundreds of groups (gcc's cc1: 1,300 pages, 54,000
    blocks), and entering each block in the dicts below wrote a reference count into
    every block record, a copy-on-write page fault per page of records shared with
    the server, for blocks most of which never run."""

    def __init__(self) -> None:
        self.by_flags: dict[int, dict[int, Callable]] = {}
        self.blocks: dict[tuple[int, int], TranslationBlock] = {}
        self.by_page: dict[int, list[TranslationBlock]] = {}
        self.groups: dict[int, dict[int, TranslationBlock]] = {}  # page -> pc -> block
        self.lock = threading.RLock()

    def table(self, flags: int) -> dict[int, Callable]:
        """The pc -> function dict for one flags value (what the python backend's exec
        loop consults; the native backend, the only one with preinstalled groups,
        finds blocks through its jump cache and ``get``)."""
        t = self.by_flags.get(flags)
        if t is None:
            with self.lock:
                t = self.by_flags.setdefault(flags, {})
        return t

    def get(self, flags: int, pc: int) -> TranslationBlock | None:
        tb = self.blocks.get((flags, pc))
        if tb is None and not flags:
            group = self.groups.get(pc >> PAGE_SHIFT)
            if group is not None:
                tb = group.get(pc)
        return tb

    def on_page(self, page: int) -> list[TranslationBlock]:
        """The blocks with code on ``page``."""
        tbs = self.by_page.get(page, [])
        group = self.groups.get(page)
        return tbs if group is None else [*tbs, *group.values()]

    def pages(self) -> set[int]:
        return set(self.by_page).union(self.groups)

    def insert(self, tb: TranslationBlock) -> None:
        with self.lock:
            self.blocks[(tb.flags, tb.pc)] = tb
            self.table(tb.flags)[tb.pc] = tb.fn
            for page in tb.pages:
                self.by_page.setdefault(page, []).append(tb)

    def insert_group(self, page: int, tbs: dict[int, TranslationBlock]) -> None:
        """Blocks with flags 0 that lie on ``page`` only, by pc (a preinstalled page's:
        preinstall.py), kept as they are."""
        with self.lock:
            self.groups[page] = tbs

    def invalidate_page(self, page: int) -> bool:
        """Drop every block with code on ``page``; True if there were any."""
        with self.lock:
            tbs = self.by_page.pop(page, None)
            group = self.groups.pop(page, None)
            if not tbs:
                return bool(group)
            for tb in tbs:
                if self.blocks.get((tb.flags, tb.pc)) is tb:
                    del self.blocks[(tb.flags, tb.pc)]
                    self.by_flags[tb.flags].pop(tb.pc, None)
                for other in tb.pages:
                    if other != page and other in self.by_page:
                        self.by_page[other] = [t for t in self.by_page[other] if t is not tb]
            return True

    def flush(self) -> list[int]:
        with self.lock:
            pages = list(self.pages())
            for t in self.by_flags.values():
                t.clear()
            self.blocks.clear()
            self.by_page.clear()
            self.groups.clear()
            return pages

    def __len__(self) -> int:
        return len(self.blocks) + sum(len(g) for g in self.groups.values())


BACKENDS = ("python", "native")


def resolve_backend(name: str) -> str:
    """``auto`` is native on x86-64 Linux hosts and python elsewhere."""
    if name == "auto":
        return "native" if x86_64.host_supported() else "python"
    if name not in BACKENDS:
        raise ValueError(f"TCG backend '{name}' is not available (known: {', '.join(BACKENDS)}"
                         ", auto)")
    if name == "native":
        if not x86_64.host_supported():
            raise ValueError("TCG backend 'native' needs an x86-64 Linux host")
    return name


class TCGEngine:
    """Translation for Linux user mode: one guest address space, shared by threads."""

    def __init__(self, mem: object, target: TCGTarget, backend: str = "python",
                 log: TCGLog | None = None, max_insns: int = 256,
                 keep_translations: bool = False) -> None:
        """``keep_translations``: use the translation cache kept across processes
        (a program's process; not an engine made for a test or a tool)."""
        self.mem = mem
        self.target = target
        self.layout = target.layout
        self.log = log or TCGLog()
        self.translator = BlockTranslator(target, self.log, max_insns)
        self.backend_name = resolve_backend(backend)
        pc_slot = self.layout.pc
        # the native backend runs the fast loop itself (runtime.NativeBackend.run): debug
        # execution and single steps keep the Python loops below, calling one block each
        self.native_run: Callable[[TCGCPU], None] | None = None
        # native code of earlier processes (tb_cache.py): a program's second start, and
        # every process of a distribution sharing a library, skips its translation
        self.tb_cache: TranslationCache | None = None
        # blocks of that cache installed before this process started (``preinstall``:
        # the binfmt server's, inherited by the programs it forks), linked a page at a
        # time when the guest first runs code there
        self.preinstalled: PreinstalledBlocks | None = None
        if self.backend_name == "native":
            self.backend = NativeBackend(self, self.layout)
            self.native_run = self.backend.run
            if keep_translations:
                self.tb_cache = open_cache(self.backend, self.log, (
                    "user", len(mem.readable), max_insns, target.name, target.config))
            if self.tb_cache is not None:
                self.preinstalled = PreinstalledBlocks(
                    self.backend, lambda pc, n_insns, fn, page: TranslationBlock(
                        pc, 0, 0, n_insns, fn, (page,)))
        else:
            self.backend = PythonBackend(UserMemoryCodegen(mem), pc_slot)
        # one-instruction replays with every access checked (see UserMemoryCodegen)
        self.slow_backend = PythonBackend(UserMemoryCodegen(mem, always_slow=True), pc_slot)
        self.cache = TBCache()
        self.translate_lock = threading.Lock()
        self.stats = {"translated": 0, "invalidated_pages": 0, "flushes": 0}
        # guest pcs where execution stops with DebugStop (the gdb stub's Z0 breakpoints)
        self.breakpoints: set[int] = set()
        mem.on_code_write = self.invalidate_page

    def use_log(self, log: TCGLog) -> None:
        """Log to ``log`` from now on (an engine prepared before the program's options
        were known: warm_start.py; never one whose items change translation)."""
        self.log = log
        self.translator.log = log
        log.use_target(self.target.disassemble, self.target.dump_registers)

    # -- translation ---------------------------------------------------------------
    def translate(self, pc: int, flags: int, max_insns: int | None = None,
                  slow_memory: bool = False) -> TranslationBlock:
        """Translate (or find) the block at pc.  A block asked with ``max_insns`` or
        ``slow_memory`` is a one-off: it is not cached."""
        with self.translate_lock:
            existing = self.cache.get(flags, pc)
            if existing is not None and max_insns is None and not slow_memory:
                return existing
            if flags & DEBUG_SINGLE_INSN_FLAG:
                max_insns = 1
            backend = self.slow_backend if slow_memory else self.backend
            cache = self.tb_cache if max_insns is None and not slow_memory and not flags \
                & DEBUG_SINGLE_INSN_FLAG else None
            tb = self._from_cache(cache, pc, flags) if cache is not None else None
            if tb is None:
                t = self.translator.translate(backend, pc, flags & ~DEBUG_SINGLE_INSN_FLAG,
                                              self.mem.fetch, max_insns)
                block = t.block
                first = pc >> PAGE_SHIFT
                last = (pc + max(block.guest_size, 1) - 1) >> PAGE_SHIFT
                pages = tuple(range(first, last + 1))
                tb = TranslationBlock(pc, flags, block.guest_size, block.n_insns, t.fn,
                                      pages, t.source)
                self.stats["translated"] += 1
                if self.tb_cache is not None and backend is self.backend:
                    gen, t.fn.generated = t.fn.generated, None
                    if cache is not None and len(pages) == 1:
                        cache.put(flags, pc, self._page_digest(pc), gen, block.n_insns)
                    elif cache is not None and len(pages) == 2:
                        cache.put(flags | TWO_PAGES_KEY_FLAG, pc, self._page_digest(pc, 2),
                                  gen, block.n_insns)
            pages = tb.pages
            if not slow_memory and (max_insns is None or flags & DEBUG_SINGLE_INSN_FLAG):
                for page in pages:
                    self.mem.mark_code_page(page)
                self.cache.insert(tb)
            return tb

    def save_translations(self) -> None:
        """Write new translations to the cache kept across processes (call it before
        os._exit or execve, which skip atexit)."""
        if self.tb_cache is not None:
            self.tb_cache.save()

    def _page_digest(self, pc: int, pages: int = 1) -> bytes:
        """The digest of the bytes of pc's page, or of it and the next (mapped and
        executable: just fetched)."""
        start = pc & ~(PAGE_SIZE - 1)
        return page_digest(self.mem.mem[start:start + pages * PAGE_SIZE])

    def _from_cache(self, cache: TranslationCache, pc: int, flags: int
                    ) -> TranslationBlock | None:
        """The block of an earlier process, if one was made from these same bytes."""
        try:
            self.mem.fetch(pc, 2)  # the guest's own fault if pc is not executable
        except Exception:
            return None  # translating raises it precisely
        if self.preinstalled is not None and not flags \
                and pc >> PAGE_SHIFT in self.preinstalled.groups:
            tb = self._link_preinstalled(pc)
            if tb is not None:
                return tb
        pages = (pc >> PAGE_SHIFT,)
        hit = cache.get(flags, pc, self._page_digest(pc))
        if hit is None and self._may_run_onto_next_page(pc):
            pages = (pc >> PAGE_SHIFT, (pc >> PAGE_SHIFT) + 1)
            hit = cache.get(flags | TWO_PAGES_KEY_FLAG, pc, self._page_digest(pc, 2))
        if hit is None:
            return None
        entry, fixups = hit
        fn = self.backend.install_cached(entry, fixups, pc, flags)
        self.stats["cached"] = self.stats.get("cached", 0) + 1
        return TranslationBlock(pc, flags, 0, entry[6], fn, pages)

    def _may_run_onto_next_page(self, pc: int) -> bool:
        """A block at pc could reach the next page, and that page is executable (its
        bytes are part of such a block's key)."""
        if (pc & (PAGE_SIZE - 1)) + self.translator.max_insns * MAX_INSN_BYTES <= PAGE_SIZE:
            return False
        try:
            self.mem.fetch((pc | (PAGE_SIZE - 1)) + 1, 2)
        except Exception:
            return False
        return True

    def _link_preinstalled(self, pc: int) -> TranslationBlock | None:
        """The first miss on pc's page: link the preinstalled blocks made from the
        bytes it holds now (preinstall.py), all of them; the one at pc is returned
        (the caller enters it in the page index, as any block it returns)."""
        page = pc >> PAGE_SHIFT
        if any(t.pc >> PAGE_SHIFT == page for t in self.cache.on_page(page)):
            # blocks of this page were linked already: keys would clash; leave it
            self.preinstalled.groups.pop(page, None)
            return None
        group = self.preinstalled.take_page(page, lambda: self._page_digest(pc))
        if group is None:
            return None
        self.mem.mark_code_page(page)
        self.cache.insert_group(page, group.tbs)
        self.stats["preinstalled"] = self.stats.get("preinstalled", 0) + len(group.tbs)
        return group.tbs.get(pc)

    def preinstall(self, blocks: dict[bytes, Entry]) -> int:
        """Put blocks of the translation cache (``TranslationCache.read_all``) in the
        code buffer now, before any guest runs, for the processes forked from this
        one (preinstall.py).  Returns how many were installed."""
        if self.preinstalled is None:
            return 0
        return self.preinstalled.install(blocks)

    # -- invalidation ------------------------------------------------------------------
    def invalidate_page(self, page: int) -> None:
        if self.backend_name == "native":  # unchain the blocks before they are dropped
            self.backend.invalidate(self.cache.on_page(page))
        if self.cache.invalidate_page(page):
            self.stats["invalidated_pages"] += 1
        self.mem.clear_code_page(page)

    def invalidate_range(self, addr: int, length: int) -> None:
        if length <= 0:
            return
        first, last = addr >> PAGE_SHIFT, (addr + length - 1) >> PAGE_SHIFT
        # only pages with code matter (an munmap of a library's data, or of a whole
        # stack, would otherwise visit thousands of pages in Python)
        with self.cache.lock:
            code = set(self.mem.code_pages).union(self.cache.pages())
        if last - first + 1 > len(code):
            pages = sorted(p for p in code if first <= p <= last)
        else:
            pages = [p for p in range(first, last + 1) if p in code]
        for page in pages:
            self.invalidate_page(page)

    def flush(self) -> None:
        self.stats["flushes"] += 1
        if self.backend_name == "native":
            self.backend.flush()
        for page in self.cache.flush():
            self.mem.clear_code_page(page)

    def all_stats(self) -> dict[str, float]:
        """The engine's counters and the backend's (translation time, exits, helper calls)."""
        return {**self.stats, **getattr(self.backend, "stats", {})}

    # -- vCPUs ---------------------------------------------------------------------
    def create_cpu(self) -> TCGCPU:
        return TCGCPU(self)


class TCGCPU:
    """One guest thread executing translated code."""

    def __init__(self, engine: TCGEngine) -> None:
        self.engine = engine
        self.mem = engine.mem
        self.state = engine.target.new_state()
        self.skip_breakpoint_once = False
        # slot numbers, resolved once: the loops below index the state block with them
        self.pc_slot = engine.layout.pc
        self.exit_slot = engine.layout.exit_request
        # the block flags this thread's code runs with: 0 unless the target gives user
        # mode a mode of its own (RISC-V: pointer masking after a prctl); they change
        # only in a system call, so each run() reads them once
        self.flags_slot = engine.layout.tb_flags

    def request_exit(self) -> None:
        """Make run() return at the next block boundary (callable from any thread)."""
        self.state.slots[self.exit_slot] = 1

    def flush_icache(self) -> None:
        """fence.i: stores to code pages already invalidated their blocks; be thorough."""
        self.engine.flush()

    def run(self) -> None:
        """Execute until an exception leaves translated code or an exit is requested."""
        S = self.state.slots
        engine = self.engine
        if engine.log.wants_exec or engine.breakpoints:
            return self._run_debug()
        if engine.native_run is not None:
            return engine.native_run(self)
        PC, EXIT = self.pc_slot, self.exit_slot
        flags = S[self.flags_slot]
        table = engine.cache.table(flags)
        get = table.get
        pc = S[PC]
        while not S[EXIT]:
            fn = get(pc)
            if fn is None:
                S[PC] = pc
                fn = engine.translate(pc, flags).fn
            try:
                pc = fn(S, self)
            except IndexError:
                pc = self._replay_checked()
        S[PC] = pc
        S[EXIT] = 0

    def _replay_checked(self) -> int:
        """Re-run the instruction at the pc slot with every memory access checked.

        Fast-path code raises IndexError for an address beyond the guest address
        space; the checked replay raises the precise guest fault instead.
        """
        S = self.state.slots
        tb = self.engine.translate(S[self.pc_slot], S[self.flags_slot], max_insns=1,
                                   slow_memory=True)
        return tb.fn(S, self)

    def _run_debug(self) -> None:
        """The slow loop: logs block execution and stops at breakpoints.

        With breakpoints set, blocks are one instruction each so that every guest
        pc is checked.  ``skip_breakpoint_once`` (set by a debugger resuming from a
        breakpoint) lets the first instruction run without stopping again.
        """
        S = self.state.slots
        engine = self.engine
        PC, EXIT = self.pc_slot, self.exit_slot
        pc = S[PC]
        first = self.skip_breakpoint_once
        self.skip_breakpoint_once = False
        while not S[EXIT]:
            bps = engine.breakpoints
            if bps and pc in bps and not first:
                S[PC] = pc
                raise DebugStop("breakpoint", pc)
            first = False
            flags = (DEBUG_SINGLE_INSN_FLAG if bps else 0) | S[self.flags_slot]
            tb = engine.cache.get(flags, pc)
            if tb is None:
                S[PC] = pc
                tb = engine.translate(pc, flags)
            engine.log.block_executed(tb, self.state)
            try:
                pc = tb.fn(S, self)
            except IndexError:
                pc = self._replay_checked()
        S[PC] = pc
        S[EXIT] = 0

    def step(self) -> None:
        """Execute exactly one guest instruction (single-step for gdb)."""
        S = self.state.slots
        PC = self.pc_slot
        tb = self.engine.translate(S[PC], S[self.flags_slot], max_insns=1)
        S[PC] = tb.fn(S, self)
