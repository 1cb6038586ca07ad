"""The native backend's runtime: dispatcher, helper callbacks, chaining, the CPU loop.

Python enters generated code once per trip through ``enter(state, ctx, target)``, a
ctypes function pointer (ctypes releases the GIL for the call, so guest threads run
their translated code in parallel; helper callbacks take the GIL back).  The native
dispatcher looks the pc slot up in a direct-mapped jump cache (pc -> block entry,
checked against the pc and flags tags in front of the entry) and jumps there; direct
exits (``goto_pc``) are patched to jump straight to their successor once it exists.
Which jump cache is used is per CPU (a state slot holds its address): user mode has
one for all threads, system mode one per address space (see softmmu.TLBContext).

Blocks are chained by *key*: user mode keys a block by its pc; system mode by
(flags, pc, physical page), and an exit is chained only to a block on the same guest
page as its own, because only then does running the source prove the mapping of the
target (other exits go through the dispatcher, which checks the current jump cache).

System mode has a second level behind the jump caches (QEMU's helper_lookup_tb_ptr
and tb_htable): the pc's page goes through a *code TLB* (virtual page and flags ->
physical page: the address space's, memory_softmmu.NativeContext, then the vCPU's for
global pages, GlobalJumpCache; Python fills them, and every flush of the execute TLB
reaches them) and (flags, pc, physical page) is looked up in ``code_table``, a hash
table of every linked block on one page that Python keeps (entries set by ``link``,
dropped with the blocks).  A hit is checked against tags in front of the block
(physical page, flags, pc: an entry is one aligned word, so a vCPU reading it while
Python writes it under the lock sees the old block or the new one, and a dropped
block's pc tag never matches), entered into the jump cache of the code TLB that hit
and jumped to: a block found again after its jump cache entry was evicted or flushed
costs a few dozen instructions instead of a trip through Python.  Python does not
learn the pcs entered that way, so dropping a page's code TLB entries also empties
the jump cache slots its pcs can occupy (memory_softmmu.CodeTLB.forget).

Python is re-entered only when it must act:

  EXIT_MISS  no block for the pc in the jump caches or the code table: translate,
             link, enter again
  EXIT_EXC   a helper or memory slow path raised: re-raise it (state is precise)
  EXIT_REQ   exit_request was set (signals, other threads, the monitor)
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import struct
import threading
import time
import weakref
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pemu.accel.tcg import counters
from pemu.accel.tcg.ir import Block, Helper
from pemu.accel.tcg.target import StateLayout

from . import encoder as x
from . import sse_fp
from .codebuf import CodeBuffer, CodeBufferFull
from .codegen import PC_TAG, SSE_TABLE, Codegen, GeneratedBlock, Targets, link_fixups
from .disas import disassemble
from .encoder import R11, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP, Mem
from .memory_user import UserMemory
from .regalloc import ALLOCATABLE, CALLEE_SAVED, FRAME_CTX, FRAME_SIZE, TooManyTemps
from .signal_wakeup import WAKEUP

if TYPE_CHECKING:
    from pemu.accel.tcg.big_lock import BigLock

EXIT_MISS = 0
EXIT_EXC = 1
EXIT_REQ = 2

JC_BITS = 16  # user mode: one jump cache per process
JC_FLAGS_MIX = 0x155  # flags * this, xored into the index: a pc run under two flags
#                       values (S-mode code with and without SUM) keeps both entries
CODE_TABLE_BITS = 18  # system mode's hash table of blocks (2 MiB; Debian boots ~160 k)
CODE_PAGE_MIX = 0x2545F491  # physical page number * this, xored into its index
# A code TLB (system mode: memory_softmmu.NativeContext holds one per address space,
# GlobalJumpCache one for global pages): direct-mapped by (virtual page, flags), each
# entry four words: virtual page address (all ones: none), flags, physical page, unused
CODE_TLB_BITS = 12  # 4096 pages: Debian's boot runs code from ~3 k kernel pages
CODE_ENTRY_WORDS, CODE_ENTRY_SHIFT = 4, 5
CODE_TLB_WORDS = CODE_ENTRY_WORDS << CODE_TLB_BITS
CODE_VPAGE, CODE_FLAGS, CODE_PAGE = 0, 1, 2
CODE_FLAGS_MIX = 0x9E37  # flags * this, xored into the page number: the entry's index
BLOCK_PREFIX = 16  # system mode: bytes before a block's tags (its physical page tag)
DEFAULT_CODE_SIZE = 64 << 20
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
# chains a forked process leaves unpatched in code it shares with its parent, before
# it copies its code buffer to patch them all (see NativeBackend._chain), and its exits
# from generated code meanwhile: a program that runs long is worth the copy (its
# cross-page jumps chained again), one of a build's many short ones is not: the copy
# (the binfmt server's preinstalled blocks, tens of megabytes, and the faults on the
# new pages) cost a `gcc -c` of a small file 15 % of its CPU time, where gcc's cc1
# leaves Python about 4,700 times unchained against 3,700 times chained
MAX_DEFERRED_CHAINS = 1 << 15
MAX_EXITS_DEFERRING = 8192
DEAD_TAG = MASK64  # no guest pc: a poisoned tag never matches

_ENTER = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def code_tlb_index(vpn: int, flags: int) -> int:
    """The code TLB entry of (virtual page, flags): the dispatcher computes the same."""
    return (vpn ^ (flags * CODE_FLAGS_MIX)) & ((1 << CODE_TLB_BITS) - 1)


@dataclass(eq=False)
class CompiledNative:
    fn: NativeTB
    source: str


@dataclass(eq=False, slots=True)
class NativeTB:
    """One block in the code buffer; calling it runs exactly this block (step/debug).
    (Slots: a warm boot makes 170 k of them, installing cached blocks.)"""

    runtime: NativeBackend = field(repr=False)
    pc: int
    offset: int  # of the flags and pc tags in the buffer
    entry: int  # buffer offset of the entry (exit-request check)
    body: int  # buffer offset just after it
    size: int
    # tuples where nothing changes them: a tuple of ints leaves the cyclic collector's
    # lists, a list never does (a warm boot keeps 170 k blocks)
    exit_fields: tuple[int, ...] = field(repr=False)  # buffer offsets of goto_pc rel32s
    exit_pcs: tuple[int, ...] = field(repr=False)
    chained: list[NativeTB | None] = field(default_factory=list, repr=False)
    # the exits chained to this block (None until the first: most blocks have none)
    incoming: list[tuple[NativeTB, int]] | None = field(default=None, repr=False)
    linked: bool = False
    dead: bool = False
    generation: int = 0
    flags: int = 0
    key: object = None  # what chaining finds this block by (None: never a chain target)
    exit_keys: Sequence[object] = field(default=(), repr=False)  # None: unchainable
    # system mode: the physical page the block's code is on (None: it lies on two
    # pages, or user mode), its key in the code table
    code_page: int | None = None
    # the code before linking, until the translation cache has taken it (tb_cache)
    generated: GeneratedBlock | None = field(default=None, repr=False)

    def __call__(self, S: memoryview, env: object) -> int:
        return self.runtime.run_one(self, env)


class NativeBackend:
    """IR -> x86-64 for one engine, plus everything the generated code runs against."""

    name = "native"

    def __init__(self, engine: object, layout: StateLayout,
                 code_size: int = DEFAULT_CODE_SIZE, memory: object | None = None,
                 jc_bits: int = JC_BITS, one_thread: bool = False) -> None:
        """``layout``: the guest's state slots (pc: where the next pc is looked up and
        a trap leaves its pc; exit request; dispatcher flags and jump cache).

        ``memory``: how generated code reaches guest memory (UserMemory by default,
        memory_softmmu.SoftmmuMemory in system mode); ``jc_bits``: jump cache size;
        ``one_thread``: only one thread ever runs this backend's code (system mode runs
        all harts on one), so a code-buffer reset needs no rendezvous with others.
        """
        self.engine = engine
        self.pc_slot = layout.pc
        self.exit_slot = layout.exit_request
        self.flags_slot = layout.tb_flags
        self.jump_cache_slot = layout.native_jump_cache
        self.global_jc_slot = layout.native_global_jump_cache
        self.native_tlb_slot = layout.native_tlb
        self.jc_pc_shift = layout.jc_pc_shift
        self.lock = threading.RLock()
        self.tls = threading.local()
        self.jc_bits = jc_bits
        self.one_thread = one_thread
        # MTTCG: the machine's big lock (mttcg.BigLock).  A vCPU thread holds it while
        # it runs Python and gives it up inside generated code; helper callbacks take
        # it back, so Python never runs for two vCPUs at once.
        self.bql: BigLock | None = None
        self.jump_cache = self.new_jump_cache()
        # the second level (system mode): where the dispatcher finds the code TLB of
        # the address space in use (bytes into the TLB its slot points at)
        code_tlb = getattr(memory, "code_tlb_offset", None)
        self.code_tlb_offset: int | None = code_tlb
        self.code_table = ((ctypes.c_uint64 * (1 << CODE_TABLE_BITS))()
                           if code_tlb is not None else None)
        self.block_prefix = BLOCK_PREFIX if code_tlb is not None else 0
        self.keep_generated = False  # set by a translation cache that stores new code
        self._callbacks: dict[tuple[int, int], tuple[Helper, object, int]] = {}
        self.memory = memory if memory is not None else UserMemory(
            engine.mem, self.callback_address, self.jump_cache_slot)
        self.by_key: dict[object, NativeTB] = {}
        # linked preinstalled groups (link_group), by page: found by ``_keyed`` as if
        # they were in by_key, without a reference-count write into each record (a
        # copy-on-write fault per page of them in a program the binfmt server forked)
        self.linked_groups: dict[int, dict[int, NativeTB]] = {}
        self.flags_seen: set[int] = set()  # of blocks ever put in a jump cache
        self.pending: dict[object, list[tuple[NativeTB, int]]] = {}
        # chains link_group left unpatched while the buffer was shared with a forked
        # process (CodeBuffer.freeze): patched at the first write that copies it anyway
        self._deferred_chains: list[tuple[NativeTB, int, NativeTB]] = []
        # the exits out of their page of preinstalled groups linked while their code is
        # shared with the parent (``link_group``): chained only if the buffer is thawed
        self._lazy_outside: list[dict[int, list[tuple[NativeTB, int]]]] = []
        self._lazy_exits = 0  # how many keys those hold (counted as deferred chains)
        self._exits_deferring = 0  # exits from generated code with chains deferred
        self.tbs: list[NativeTB] = []  # live in the buffer (for a full reset)
        self.generation = 0
        self.stats = {"exits_miss": 0, "exits_exc": 0, "exits_req": 0, "helper_calls": 0,
                      "translate_seconds": 0.0, "code_resets": 0, "chained": 0,
                      "code_copies": 0}
        # MTTCG entry gate: each vCPU flags itself (``_native_busy``) while inside
        # generated code; a code-buffer reset raises ``_resetting`` and waits until no
        # flag is up.  Only the slow paths (a reset pending) touch the condition.
        self._native_cond = threading.Condition()
        self._resetting = False
        self._cpus: weakref.WeakSet = weakref.WeakSet()
        head = self._build_dispatcher()  # at the start of the buffer, before any block
        self.buf = CodeBuffer(code_size, head_size=-(-len(head) // 4096) * 4096)
        self.buf.write(0, head)
        self.targets = Targets(self.lookup_off, self.exc_exit_off, self.req_exit_off,
                               self.pc_slot, self.exit_slot, self.callback_address,
                               self.thunks)
        self.enter = _ENTER(self.buf.exec_address(self.enter_off))
        ref = weakref.ref(self)
        os.register_at_fork(before=lambda: _before_fork(ref),
                            after_in_parent=lambda: _after_fork_in_parent(ref),
                            after_in_child=lambda: _after_fork_in_child(ref))

    # -- dispatcher -------------------------------------------------------------------
    def _build_dispatcher(self) -> bytes:
        a = x.Assembler()
        saved = (RBP, RBX, R12, R13, R14, R15)
        self.enter_off = a.pos()
        for r in saved:
            a.push(r)
        a.alu_ri(x.SUB, 64, RSP, FRAME_SIZE)
        a.mov_rr(64, RBP, RDI)
        a.store(8, Mem(RSP, FRAME_CTX), RSI)
        self.memory.emit_entry(a)  # registers the memory code relies on (r12, r13, r15)
        lookup = x.Label()
        a.test_rr(64, RDX, RDX)
        a.jcc(x.CC_E, lookup)
        a.jmp_r(RDX)
        # lookup: jump_cache[(pc >> jc_pc_shift ^ flags * mix) & mask] -> entry, valid
        # if both tags match
        a.align(16)
        a.bind(lookup)
        self.lookup_off = a.pos()
        miss, done = x.Label(), x.Label()
        a.load(64, RAX, Mem(RBP, 8 * self.pc_slot))
        a.mov_rr(32, RCX, RAX)
        a.shift_ri(x.SHR, 32, RCX, self.jc_pc_shift)
        a.load(64, R11, Mem(RBP, 8 * self.flags_slot))
        a.imul_rri(32, R11, R11, JC_FLAGS_MIX)
        a.alu_rr(x.XOR, 32, RCX, R11)
        a.alu_ri(x.AND, 32, RCX, (1 << self.jc_bits) - 1)
        probe_global = self.global_jc_slot is not None
        local_miss = x.Label() if probe_global else miss
        if probe_global:
            a.mov_rr(32, RDX, RCX)  # the index again for the global jump cache
        a.load(64, R11, Mem(RBP, 8 * self.jump_cache_slot))
        self._emit_jc_probe(a, local_miss)
        second = x.Label() if self.code_table is not None else miss
        if probe_global:
            # a miss in this address space's jump cache: the blocks on global pages
            a.bind(local_miss)
            a.load(64, R11, Mem(RBP, 8 * self.global_jc_slot))
            a.test_rr(64, R11, R11)
            a.jcc(x.CC_E, second)
            a.mov_rr(32, RCX, RDX)
            a.load(64, RAX, Mem(RBP, 8 * self.pc_slot))
            self._emit_jc_probe(a, second)
        if self.code_table is not None:
            a.bind(second)
            self._emit_second_level(a, miss)
        a.bind(miss)
        a.mov_ri(RAX, EXIT_MISS)
        a.bind(done)
        a.alu_ri(x.ADD, 64, RSP, FRAME_SIZE)
        for r in reversed(saved):
            a.pop(r)
        a.ret()
        self.exc_exit_off = a.pos()
        a.mov_ri(RAX, EXIT_EXC)
        a.jmp(done)
        self.req_exit_off = a.pos()
        a.mov_ri(RAX, EXIT_REQ)
        a.jmp(done)
        self.thunks = self._build_memory_thunks(a)
        code = a.finish()
        return code

    def _emit_jc_probe(self, a: x.Assembler, miss: x.Label) -> None:
        """Jump to the entry in slot rcx of the jump cache at r11 if its tags are the
        pc (in rax) and the flags slot; else fall to ``miss``."""
        a.load(64, RCX, Mem(R11, 0, RCX, 8))
        a.test_rr(64, RCX, RCX)
        a.jcc(x.CC_E, miss)
        a.alu_rm(x.CMP, 64, RAX, Mem(RCX, -8))
        a.jcc(x.CC_NE, miss)
        a.load(64, RAX, Mem(RBP, 8 * self.flags_slot))
        a.alu_rm(x.CMP, 64, RAX, Mem(RCX, -16))
        a.jcc(x.CC_NE, miss)
        a.jmp_r(RCX)

    def _emit_second_level(self, a: x.Assembler, miss: x.Label) -> None:
        """After the jump caches missed: the address space's code TLB, then the
        vCPU's code TLB of global pages, then the code table; a block found goes into
        the jump cache of the code TLB that hit and is jumped to, else ``miss``."""
        flags = Mem(RBP, 8 * self.flags_slot)
        # rcx = the code TLB entry's offset: ((vpn ^ flags * mix) % entries) * 32
        a.load(64, RAX, Mem(RBP, 8 * self.pc_slot))
        a.mov_rr(64, RCX, RAX)
        a.shift_ri(x.SHR, 64, RCX, 12)
        a.load(64, R11, flags)
        a.imul_rri(32, R11, R11, CODE_FLAGS_MIX)
        a.alu_rr(x.XOR, 32, RCX, R11)
        a.alu_ri(x.AND, 32, RCX, (1 << CODE_TLB_BITS) - 1)
        a.shift_ri(x.SHL, 32, RCX, CODE_ENTRY_SHIFT)
        a.mov_rr(64, RDX, RAX)
        a.alu_ri(x.AND, 64, RDX, -4096)

        def probe(table: int, offset: int, other: x.Label) -> None:
            """rsi = the physical page if the entry at rdi + offset + rcx has the pc's
            page (rdx) and the flags slot as its tags, else jump to ``other``."""
            entry = functools.partial(Mem, table, index=RCX)
            a.alu_rm(x.CMP, 64, RDX, entry(offset + 8 * CODE_VPAGE))
            a.jcc(x.CC_NE, other)
            a.load(64, R11, flags)
            a.alu_rm(x.CMP, 64, R11, entry(offset + 8 * CODE_FLAGS))
            a.jcc(x.CC_NE, other)
            a.load(64, RSI, entry(offset + 8 * CODE_PAGE))

        found, refill = x.Label(), x.Label()
        global_tlb = x.Label() if self.global_jc_slot is not None else refill
        a.load(64, RDI, Mem(RBP, 8 * self.native_tlb_slot))
        probe(RDI, self.code_tlb_offset, global_tlb)
        a.load(64, RDI, Mem(RBP, 8 * self.jump_cache_slot))  # the jump cache to fill
        a.jmp(found)
        if self.global_jc_slot is not None:
            # global pages: the code TLB right after the vCPU's global jump cache
            a.bind(global_tlb)
            a.load(64, RDI, Mem(RBP, 8 * self.global_jc_slot))
            a.test_rr(64, RDI, RDI)
            a.jcc(x.CC_E, refill)
            probe(RDI, 8 << self.jc_bits, refill)
            a.jmp(found)
        # neither knows the page: the memory model may walk the page table for it
        # (a new address space's first jump to each code page) and fill the
        # address space's code TLB
        a.bind(refill)
        self.memory.emit_code_refill(a, flags, Mem(RBP, 8 * self.jump_cache_slot), found,
                                     miss)
        a.bind(found)
        # rcx = code_table[(pc >> shift ^ ppn * mix ^ flags * mix) % size]
        a.mov_rr(64, RCX, RSI)
        a.shift_ri(x.SHR, 64, RCX, 12)
        a.imul_rri(32, RCX, RCX, CODE_PAGE_MIX)
        a.mov_rr(32, R11, RAX)
        a.shift_ri(x.SHR, 32, R11, self.jc_pc_shift)
        a.alu_rr(x.XOR, 32, RCX, R11)
        a.load(64, RDX, flags)
        a.imul_rri(32, RDX, RDX, JC_FLAGS_MIX)
        a.alu_rr(x.XOR, 32, RCX, RDX)
        a.alu_ri(x.AND, 32, RCX, (1 << CODE_TABLE_BITS) - 1)
        a.mov_ri(R11, ctypes.addressof(self.code_table))
        a.load(64, RCX, Mem(R11, 0, RCX, 8))
        a.test_rr(64, RCX, RCX)
        a.jcc(x.CC_E, miss)
        # the block's own tags: pc, flags, physical page
        a.alu_rm(x.CMP, 64, RAX, Mem(RCX, -8))
        a.jcc(x.CC_NE, miss)
        a.load(64, R11, flags)
        a.alu_rm(x.CMP, 64, R11, Mem(RCX, -16))
        a.jcc(x.CC_NE, miss)
        a.alu_rm(x.CMP, 64, RSI, Mem(RCX, -24))  # the word before the tags
        a.jcc(x.CC_NE, miss)
        # found: into the jump cache at rdi (rdx: flags * mix, as the lookup's index)
        a.mov_rr(32, R11, RAX)
        a.shift_ri(x.SHR, 32, R11, self.jc_pc_shift)
        a.alu_rr(x.XOR, 32, R11, RDX)
        a.alu_ri(x.AND, 32, R11, (1 << self.jc_bits) - 1)
        a.store(8, Mem(RDI, 0, R11, 8), RCX)
        a.jmp_r(RCX)

    def code_table_index(self, pc: int, flags: int, page: int) -> int:
        """The code table slot of (flags, pc, physical page): the dispatcher's hash."""
        m32 = 0xFFFF_FFFF
        h = (((page >> 12) * CODE_PAGE_MIX) & m32) ^ ((pc & m32) >> self.jc_pc_shift)
        return (h ^ ((flags * JC_FLAGS_MIX) & m32)) & ((1 << CODE_TABLE_BITS) - 1)

    def _build_memory_thunks(self, a: x.Assembler) -> dict[tuple, int]:
        """Shared slow-path calls: the memory model's key -> buffer offset.

        Called with the guest address in r11 (and a store's value in rcx), they save
        every caller-saved register the allocator uses, call the memory model's slow
        path helper as ``helper(address, size[, value])`` and return its result in
        r11.  The caller has already written dirty globals home and stored the pc,
        and checks the exception flag after the call.
        """
        saved = [r for r in ALLOCATABLE if r not in CALLEE_SAVED]
        assert len(saved) % 2 == 1  # + the return address: the call below is aligned
        thunks = {}
        self.memory.emit_routines(a)
        for key, helper, size, is_store in self.memory.slow_paths():
            a.align(16)
            thunks[key] = a.pos()
            for r in saved:
                a.push(r)
            done = x.Label()
            self.memory.emit_refill(a, key, done)  # a native TLB refill first
            a.mov_rr(64, RDI, R11)
            a.mov_ri(RSI, size)
            if is_store:
                a.mov_rr(64, RDX, RCX)
            a.mov_ri(RAX, self.callback_address(helper, 3 if is_store else 2))
            a.call_r(RAX)
            a.mov_rr(64, R11, RAX)
            a.bind(done)
            for r in reversed(saved):
                a.pop(r)
            a.ret()
        return thunks

    def new_jump_cache(self) -> ctypes.Array:
        """An empty jump cache of this backend's size (system mode: one per context)."""
        return (ctypes.c_uint64 * (1 << self.jc_bits))()

    # -- helper callbacks ---------------------------------------------------------------
    def callback_address(self, h: Helper, n_args: int) -> int:
        """A C-callable address for helper h (made once, kept alive with the backend)."""
        if h.native is not None:  # machine code already: no callback, no GIL
            return h.native()
        routine = self.memory.routine_offset(h)
        if routine is not None:  # the memory model's machine code (in the dispatcher's)
            return self.buf.exec_address(routine)
        key = (id(h), n_args)
        entry = self._callbacks.get(key)
        if entry is None:
            cfn = ctypes.CFUNCTYPE(ctypes.c_uint64, *([ctypes.c_uint64] * n_args))(
                self._make_callback(h))
            entry = (h, cfn, ctypes.cast(cfn, ctypes.c_void_p).value)
            self._callbacks[key] = entry
        return entry[2]

    def _make_callback(self, h: Helper) -> object:
        fn = h.fn
        n_out = h.n_out
        needs_env = h.needs_env
        tls = self.tls
        stats = self.stats
        backend = self

        if counters.ENABLED:  # PEMU_COUNTERS: by helper (no wrapper otherwise)
            plain, name = fn, f"helper:{h.name}"

            def fn(*args: int) -> object:
                counters.COUNTS[name] += 1
                return plain(*args)

        def callback(*args: int) -> int:
            bql = backend.bql
            if bql is None:
                return run(*args)
            bql.acquire()
            try:
                return run(*args)
            finally:
                bql.release()

        def run(*args: int) -> int:
            # Nothing may escape into native frames: a Python exception is parked on
            # the CPU and the generated code leaves through the exception exit.
            cpu = tls.cpu
            try:
                stats["helper_calls"] += 1
                r = fn(cpu, *args) if needs_env else fn(*args)
                if n_out == 0:
                    return 0
                if n_out == 2:
                    cpu._native_ctx[1] = r[1] & MASK64
                    return r[0] & MASK64
                return r & MASK64
            except BaseException as e:  # noqa: BLE001 - re-raised by the run loop
                cpu._native_exc = e
                cpu._native_ctx[0] = 1
                return 0
        return callback

    # -- translation --------------------------------------------------------------------
    def compile(self, block: Block) -> CompiledNative:
        self.memory.begin_block(block)
        try:
            gen = Codegen(block, self.targets, self.memory).generate()
        except TooManyTemps as e:
            raise RuntimeError(f"block at 0x{block.pc:x} needs too many spill slots") from e
        return self.install(gen, block.pc, block.flags)

    def layout_key(self) -> tuple:
        """Where generated code jumps outside itself: cached code is valid only in a
        process whose dispatcher and thunks lie at the same buffer offsets."""
        t = self.targets
        return (t.lookup, t.exc_exit, t.req_exit, t.pc_slot, t.exit_request_slot,
                tuple(sorted(t.thunks.items())), self.jc_bits)

    def _helper_address(self, h: Helper, n_args: int) -> int:
        """What a helper fixup's imm64 holds in this process."""
        if n_args == SSE_TABLE:
            return sse_fp.sse_op(h).table_address  # type: ignore[union-attr]
        return self.callback_address(h, n_args)

    def _allocate(self, size: int) -> int:
        """Buffer room for a block of ``size`` bytes (resets the buffer when full)."""
        # the prefix: the physical page tag (set_code_page) before the tags
        return self._allocate_span(self.block_prefix + size) + self.block_prefix

    def code_room(self) -> int:
        """Bytes the code buffer has left before its next reset."""
        return self.buf.size - self.buf.used

    def block_cost(self, code_size: int) -> int:
        """Bytes of buffer a block of ``code_size`` bytes of code takes (its prefix and
        alignment included)."""
        return self.block_prefix + code_size + 15

    def _allocate_span(self, size: int) -> int:
        """``size`` bytes of buffer, 16-aligned: one block with its prefix, or several
        (``install_cached_page``); resets the buffer when full."""
        while True:
            with self.lock:
                try:
                    return self.buf.allocate(size)
                except CodeBufferFull:
                    if self.buf.used == self.buf.head_size:
                        raise RuntimeError("a block does not fit the code buffer") from None
            self._reset_code()  # outside the lock: threads in callbacks may need it

    def _record(self, off: int, size: int, entry: int, body: int, exits: list | tuple,
                pc: int, flags: int, generated: GeneratedBlock | None) -> NativeTB:
        """The block whose code lies at ``off`` (under the lock, once its code is
        written)."""
        exit_pcs = tuple([target for _f, target in exits])
        return NativeTB(self, pc, off, off + entry, off + body, size,
                        tuple([off + f for f, _pc in exits]), exit_pcs, [None] * len(exits),
                        generation=self.generation, flags=flags, key=pc,
                        exit_keys=exit_pcs, generated=generated)

    def _place(self, code: bytes, off: int, entry: int, body: int,
               exits: list | tuple, pc: int, flags: int,
               generated: GeneratedBlock | None) -> NativeTB:
        """Write linked code at ``off`` (from ``_allocate``) and record it as a block."""
        with self.lock:
            self.buf.write(off, code)
            tb = self._record(off, len(code), entry, body, exits, pc, flags, generated)
            self.tbs.append(tb)
        return tb

    def install(self, gen: GeneratedBlock, pc: int, flags: int) -> CompiledNative:
        """Put newly generated code in the buffer as a block."""
        off = self._allocate(len(gen.code))
        tb = self._place(gen.link(off), off, gen.entry, gen.body, gen.exits, pc, flags,
                         gen if self.keep_generated else None)
        source = ""
        if self.engine.log.enabled("out_asm"):
            source = disassemble(self.buf.read(off, len(gen.code)), self.buf.exec_address(off),
                                 skip=gen.entry)
        return CompiledNative(tb, source)

    def install_cached(self, entry: tuple, fixups: list, pc: int, flags: int,
                       relocate: bool = False) -> NativeTB:
        """A block of the translation cache (tb_cache.Entry, its helper fixups resolved
        to helpers) put in the buffer at ``pc``: ``install_cached_page`` of one block."""
        return self.install_cached_page([(entry, fixups, pc)], flags, relocate)[0]

    def install_cached_page(self, blocks: list[tuple[tuple, list, int]], flags: int,
                            relocate: bool = False, code_page: int | None = None
                            ) -> list[NativeTB]:
        """Blocks of the translation cache, ``(entry, helper fixups, pc)``, put in the
        buffer together: one allocation, one copy of all their code (helper addresses,
        dispatcher jumps and pc tags patched in a single bytearray), one lock.  A warm
        boot installs a page's cached blocks at once, 170 k of them for Debian, so the
        per-block overhead counts (no intermediate GeneratedBlock either).

        ``relocate``: the entries are position-independent code (ir.Block.pc_relative)
        maybe translated at other pcs (the caller's key keeps the offset in the page,
        on which a block's end depends): pc tag and exits' targets move to each
        ``pc``; without it each must have been translated at its ``pc`` (ValueError).
        ``code_page``: system mode, the physical page all their code lies on, which
        ``link`` makes them findable by (as ``set_code_page``)."""
        pack = struct.pack_into
        unpack = struct.unpack_from
        prefix = self.block_prefix
        page_tag = prefix and code_page is not None and self.code_table is not None
        # where each block goes, relative to the span: the layout separate
        # ``_allocate`` calls give (16-aligned, the prefix before the tags)
        starts = []
        end = 0
        for entry, _fixups, _pc in blocks:
            start = (end + 15) & ~15
            starts.append(start + prefix)
            end = start + prefix + len(entry[0])
        base = self._allocate_span(end)
        span = bytearray(end)
        view = memoryview(span)
        placed = []
        for (entry, fixups, pc), at in zip(blocks, starts, strict=True):
            code_bytes, entry_off, body, exits, ext_fixups = entry[:5]
            size = len(code_bytes)
            span[at:at + size] = code_bytes
            (old_pc,) = unpack("<Q", span, at + PC_TAG)
            if old_pc != pc & MASK64:
                if not relocate:
                    raise ValueError(f"cached block of pc {old_pc:#x} installed at {pc:#x}")
                delta = pc - old_pc
                pack("<Q", span, at + PC_TAG, pc & MASK64)
                exits = [(f, (target + delta) & MASK64) for f, target in exits]
            for f, h, n_args in fixups:
                pack("<Q", span, at + f, self._helper_address(h, n_args))
            off = base + at
            link_fixups(view[at:at + size], ext_fixups, off)
            if page_tag:
                pack("<Q", span, at - 8, code_page)
            placed.append((off, size, entry_off, body, exits, pc))
        view.release()
        with self.lock:
            self.buf.write(base, bytes(span))
            tbs = [self._record(off, size, entry_off, body, exits, pc, flags, None)
                   for off, size, entry_off, body, exits, pc in placed]
            if page_tag:
                for tb in tbs:
                    tb.code_page = code_page
            self.tbs.extend(tbs)
        return tbs

    # -- chaining and invalidation --------------------------------------------------------
    def jc_index(self, pc: int, flags: int) -> int:
        """The jump cache slot of (pc, flags): the dispatcher computes the same."""
        return ((pc >> self.jc_pc_shift) ^ (flags * JC_FLAGS_MIX)) & ((1 << self.jc_bits) - 1)

    def set_code_page(self, tb: NativeTB, page: int) -> None:
        """System mode: the block's code is all on physical ``page``; ``link`` makes
        it findable by (flags, pc, page) in the code table.  Call before linking."""
        if self.code_table is None:
            return
        tb.code_page = page
        with self.lock:
            if tb.generation == self.generation and not tb.dead:
                self.buf.write_u64(tb.offset - 8, page)

    def put_in_jump_cache(self, tb: NativeTB, jc: int) -> None:
        """Also enter a linked block into the jump cache at host address ``jc`` (system
        mode: the global one of a vCPU, for blocks on global pages)."""
        with self.lock:
            if tb.dead or tb.generation != self.generation:
                return
            self.flags_seen.add(tb.flags)
            ctypes.c_uint64.from_address(jc + 8 * self.jc_index(tb.pc, tb.flags)).value = \
                self.buf.exec_address(tb.entry)

    def link(self, tb: NativeTB, cpu: object) -> bool:
        """Make a cached block reachable from native code: the jump cache ``cpu`` uses
        now, and chains by key.  False if the block was dropped since it was looked
        up (another thread reset the buffer): the caller must translate again."""
        with self.lock:
            if tb.dead or tb.generation != self.generation:
                return False
            jc = cpu.state.slots[self.jump_cache_slot]
            self.flags_seen.add(tb.flags)
            entry = self.buf.exec_address(tb.entry)
            ctypes.c_uint64.from_address(jc + 8 * self.jc_index(tb.pc, tb.flags)).value = entry
            self._into_code_table(tb, entry)
            self._link_by_key(tb)
        return True

    def link_chains(self, tb: NativeTB) -> bool:
        """Make a block reachable by chains only (no jump cache entry): blocks of its
        page that jump to it, and it to them (system mode: the blocks of a page loaded
        together from the translation cache), and the second-level code table.  False
        if it was dropped meanwhile."""
        with self.lock:
            if tb.dead or tb.generation != self.generation:
                return False
            self._into_code_table(tb, self.buf.exec_address(tb.entry))
            self._link_by_key(tb)
        return True

    def _into_code_table(self, tb: NativeTB, entry: int) -> None:
        """System mode: where the dispatcher's second level finds ``tb`` (again after
        another block displaced it from its slot).  Under the lock."""
        if tb.code_page is not None:
            self.code_table[self.code_table_index(tb.pc, tb.flags, tb.code_page)] = entry

    def _keyed(self, key: object) -> NativeTB | None:
        """The linked block of chain key ``key`` (a pc), if any."""
        tb = self.by_key.get(key)
        if tb is None and type(key) is int:
            group = self.linked_groups.get(key >> 12)
            if group is not None:
                tb = group.get(key)
        return tb

    def _link_by_key(self, tb: NativeTB) -> None:
        """Chain ``tb`` to the blocks its exits name and those waiting for it (once)."""
        with self.lock:
            if tb.linked:
                return
            tb.linked = True
            if tb.key is not None:
                self.by_key[tb.key] = tb
            for i, key in enumerate(tb.exit_keys):
                if key is None:
                    continue
                dst = self._keyed(key)
                if dst is not None:
                    self._chain(tb, i, dst)
                else:
                    self.pending.setdefault(key, []).append((tb, i))
            if tb.key is not None:
                for src, i in self.pending.pop(tb.key, ()):
                    if not src.dead and src.chained[i] is None:
                        self._chain(src, i, tb)

    # -- blocks installed before the process started (preinstall.py) ---------------------
    def chain_within(self, group: dict[int, NativeTB], new: list[NativeTB],
                     outside: dict[int, list[tuple[NativeTB, int]]]) -> None:
        """Chain ``new`` blocks and the other blocks of ``group`` (pc -> block: blocks
        translated from the same bytes of one page, valid together or not at all) to
        each other; exits to pcs outside the group are noted in ``outside``.  Nothing
        becomes reachable: no jump cache entry, no key (``link_group`` does that)."""
        with self.lock:
            chained = self.stats["chained"]
            for tb in new:
                group[tb.pc] = tb
                tb.linked = True  # reachable once its group is linked, by chains or key
            for tb in new:
                for i, key in enumerate(tb.exit_keys):
                    dst = group.get(key) if key is not None else None
                    if dst is not None:
                        self._chain(tb, i, dst)
                    elif key is not None:
                        outside.setdefault(key, []).append((tb, i))
                for src, i in outside.pop(tb.pc, ()):
                    self._chain(src, i, tb)
            self.stats["chained"] = chained  # counted where a program runs, not here

    def group_jc_entries(self, group: dict[int, NativeTB]) -> array:
        """(jump cache index, entry address) pairs, flat, of a group (flags 0): what
        ``link_group`` writes, computed ahead in the process that forks."""
        exec_base = self.buf.exec_address(0)
        return array("Q", [v for pc, tb in group.items()
                           for v in (self.jc_index(pc, 0), exec_base + tb.entry)])

    def link_group(self, group: dict[int, NativeTB],
                   outside: dict[int, list[tuple[NativeTB, int]]], jc_entries: array) -> bool:
        """Make a chained group reachable (its page's bytes were found to be the ones
        it was translated from): jump cache entries (``group_jc_entries``), keys, and
        chains to and from the blocks already linked.  False if the group was dropped
        (a buffer reset)."""
        with self.lock:
            # a reset or a flush drops every block, and nothing else drops a block that
            # is not linked: one of the group tells for all (the others are not even
            # touched here: each is a copy-on-write page fault in a forked process)
            first = next(iter(group.values()), None)
            if first is None or first.dead or first.generation != self.generation:
                return False
            jc = memoryview(self.jump_cache).cast("B").cast("Q")
            for index, address in zip(jc_entries[::2], jc_entries[1::2], strict=True):
                jc[index] = address
            self.flags_seen.add(0)
            chain = self._chain  # in a forked process, mostly deferred (see _chain)
            self.linked_groups[first.pc >> 12] = group
            pending = self.pending
            if outside and self.buf.frozen_at(first.offset):
                # the group's code is shared with the parent since a fork: its chains
                # would only be deferred (_chain), and looking at its exits now writes
                # a reference count into every record they name, shared with the
                # parent too (a copy-on-write fault per page of them, most of what
                # linking cost a short program): they wait for a thaw, if one comes;
                # an exit goes through the jump cache meanwhile
                self._lazy_outside.append(outside)
                self._lazy_exits += len(outside)
                if self._lazy_exits + len(self._deferred_chains) >= MAX_DEFERRED_CHAINS:
                    self._thawed()
            else:
                self._link_outside(outside)
            # linked blocks waiting for these: found from the smaller side (the group's
            # keys are records shared with the parent: each one read is a refcount
            # written, where a lookup into the group writes nothing)
            waiting = ([pc for pc in pending if pc in group] if len(pending) < len(group)
                       else pending.keys() & group.keys())
            for pc in waiting:
                tb = group[pc]
                for src, i in pending.pop(pc):
                    if not src.dead and src.chained[i] is None:
                        chain(src, i, tb)
        return True

    def _link_outside(self, outside: dict[int, list[tuple[NativeTB, int]]]) -> None:
        """Chain a linked group's exits out of its page (pc -> [(block, exit)]) to the
        blocks linked at those pcs, or leave them waiting for them (lock held)."""
        keyed = self._keyed
        pending = self.pending
        for key, sources in outside.items():
            dst = keyed(key)
            if dst is None or dst.dead:
                pending.setdefault(key, []).extend(sources)
            else:
                for src, i in sources:
                    if not src.dead and src.chained[i] is None:
                        self._chain(src, i, dst)

    def _thawed(self) -> None:
        """Before old code is written (lock held): a private copy of the buffer if it
        is shared since a fork, and the chains deferred meanwhile patched now."""
        self.buf.thaw()
        self.stats["code_copies"] = self.buf.copies
        self._exits_deferring = 0
        deferred, self._deferred_chains = self._deferred_chains, []
        lazy, self._lazy_outside = self._lazy_outside, []
        self._lazy_exits = 0
        for src, i, dst in deferred:
            if (not src.dead and not dst.dead and src.chained[i] is None
                    and src.generation == dst.generation == self.generation):
                self._chain(src, i, dst)
        for outside in lazy:
            self._link_outside(outside)

    def _chain(self, src: NativeTB, i: int, dst: NativeTB) -> None:
        if self.buf.frozen_at(src.exit_fields[i]):
            # code shared with the parent since a fork: patching it would copy the
            # whole buffer (megabytes, in the binfmt server's children), which a short
            # program (a shell's /bin/true) never needs; the exit goes through the
            # jump cache meanwhile, which finds the block as well
            if len(self._deferred_chains) < MAX_DEFERRED_CHAINS:
                self._deferred_chains.append((src, i, dst))
                return
            self._thawed()
        self.buf.patch_rel32(src.exit_fields[i], dst.entry)
        src.chained[i] = dst
        if dst.incoming is None:
            dst.incoming = []
        dst.incoming.append((src, i))
        self.stats["chained"] += 1

    def invalidate(self, tbs: list[object]) -> None:
        """Blocks whose guest code changed: unreachable from now on (their code stays
        in the buffer until the next reset, so a thread still inside one is safe)."""
        with self.lock:
            for t in tbs:
                tb = getattr(t, "fn", t)
                if not isinstance(tb, NativeTB) or tb.dead:
                    continue
                tb.dead = True
                if tb.generation != self.generation:
                    continue
                if self.buf.frozen_at(tb.offset):
                    self._thawed()
                self.buf.write_u64(tb.offset + 8, DEAD_TAG)  # no jump cache hits it now
                if tb.code_page is not None:  # (the tag alone would do: tidiness)
                    i = self.code_table_index(tb.pc, tb.flags, tb.code_page)
                    if self.code_table[i] == self.buf.exec_address(tb.entry):
                        self.code_table[i] = 0
                if tb.key is not None and self.by_key.get(tb.key) is tb:
                    del self.by_key[tb.key]
                group = self.linked_groups.get(tb.pc >> 12)
                if group is not None and group.get(tb.key) is tb:
                    del group[tb.key]
                for src, i in tb.incoming or ():
                    if src.chained[i] is tb:
                        if self.buf.frozen_at(src.exit_fields[i]):
                            self._thawed()
                        self.buf.patch_rel32(src.exit_fields[i], src.exit_fields[i] + 4)
                        src.chained[i] = None
                        if not src.dead:
                            self.pending.setdefault(tb.key, []).append((src, i))
                tb.incoming = None

    def flush(self) -> None:
        """Every block is stale (fence.i, engine flush)."""
        with self.lock:
            self.invalidate(list(self.tbs))
            self.tbs = [tb for tb in self.tbs if not tb.dead]
            self.linked_groups.clear()
            self.pending.clear()
            self._deferred_chains = []
            self._lazy_outside = []
            self._lazy_exits = 0
            ctypes.memset(self.jump_cache, 0, ctypes.sizeof(self.jump_cache))
            if self.code_table is not None:
                ctypes.memset(self.code_table, 0, ctypes.sizeof(self.code_table))

    def _reset_code(self) -> None:
        """The buffer is full: wait until no thread runs generated code, drop all.

        With MTTCG the caller holds the big lock, and a vCPU still inside generated
        code may be waiting for it in a helper: the lock is given up while waiting
        (new entries into generated code wait at ``_call`` meanwhile)."""
        bql = self.bql if self.bql is not None and self.bql.held() else None
        # the big lock is never taken while holding _native_cond: its waits below
        # leave the condition before the lock is taken back
        with self._native_cond:
            another = self._resetting
            if not another:
                # raised before the flags are read: see _call for the other half
                self._resetting = True
                for cpu in list(self._cpus):
                    cpu.request_exit()
        if another:  # another vCPU resets the buffer: wait for it, then the caller retries
            with _released(bql), self._native_cond:
                while self._resetting:
                    self._native_cond.wait(0.01)
            return
        with _released(bql), self._native_cond:
            while self._any_in_native():
                self._native_cond.wait(0.01)
        with self._native_cond:
            try:
                self.engine.flush()  # logical: the engine calls our flush()
                self.flush()
                self.tbs.clear()
                self.by_key.clear()
                self.linked_groups.clear()
                self.generation += 1
                self.buf.reset()
                self.stats["code_resets"] += 1
            finally:
                self._resetting = False
                self._native_cond.notify_all()

    def _any_in_native(self) -> bool:
        try:
            cpus = list(self._cpus)
        except RuntimeError:  # a thread attached a new vCPU meanwhile: ask again
            return True
        return any(getattr(cpu, "_native_busy", False) for cpu in cpus)

    # -- running ----------------------------------------------------------------------------
    def _context(self, cpu: object) -> ctypes.Array:
        ctx = getattr(cpu, "_native_ctx", None)
        if ctx is None:
            ctx = (ctypes.c_uint64 * 4)()
            cpu._native_ctx = ctx
            cpu._native_exc = None
            self._cpus.add(cpu)
            self.memory.attach_cpu(cpu, self)
        return ctx

    def _call(self, cpu: object, target: int) -> int:
        ctx = self._context(cpu)
        self.tls.cpu = cpu
        if self.one_thread:  # nobody else can be inside generated code during a reset
            return self.enter(cpu.state.address, ctypes.addressof(ctx), target)
        bql = self.bql
        if bql is not None and not bql.held():
            bql = None
        # Dekker with _reset_code: the flag goes up before _resetting is read, and
        # _resetting goes up before the flags are read; each is one attribute store
        # or load, ordered by the GIL, so either this entry sees the reset and backs
        # off, or the reset sees the flag and waits.  Only this vCPU's thread writes
        # its flag, so no lock is needed on the way in or out.
        cpu._native_busy = True
        if self._resetting:
            self._wait_for_reset(cpu, bql)
        if bql is not None:  # generated code runs without the big lock
            bql.release()  # (no context manager: this runs at every exit)
        try:
            return self.enter(cpu.state.address, ctypes.addressof(ctx), target)
        finally:
            cpu._native_busy = False
            if self._resetting:
                with self._native_cond:
                    self._native_cond.notify_all()
            if bql is not None:
                bql.acquire()

    def _wait_for_reset(self, cpu: object, bql: BigLock | None) -> None:
        """Slow path of ``_call``: a code-buffer reset is pending; step back out of
        the gate until it is done (the big lock given up meanwhile: the resetter may
        need it), then go in again."""
        cond = self._native_cond
        while True:
            cpu._native_busy = False
            with _released(bql), cond:
                cond.notify_all()
                while self._resetting:
                    cond.wait()
            cpu._native_busy = True
            if not self._resetting:
                return

    def call(self, cpu: object) -> int:
        """Run ``cpu`` from its pc slot until an exit; returns the EXIT_* code."""
        return self._call(cpu, 0)

    def take_pending(self, cpu: object) -> BaseException:
        """The exception a helper raised in the last run (after EXIT_EXC)."""
        exc = cpu._native_exc
        cpu._native_exc = None
        cpu._native_ctx[0] = 0
        self.stats["exits_exc"] += 1
        if exc is None:
            return RuntimeError("native code reported an exception but none was stored")
        return exc

    def _raise_pending(self, cpu: object) -> None:
        raise self.take_pending(cpu)

    def run(self, cpu: object) -> None:
        """Run until an exception leaves translated code or an exit is requested."""
        engine = self.engine
        S = cpu.state.slots
        stats = self.stats
        exit_slot = self.exit_slot
        if threading.current_thread() is threading.main_thread():
            WAKEUP.enter_main(cpu)  # host signals interrupt chained code (signal_wakeup.py)
        while not S[exit_slot]:
            if self._deferred_chains or self._lazy_outside:
                self._exits_deferring += 1
                if self._exits_deferring > MAX_EXITS_DEFERRING:
                    with self.lock:
                        self._thawed()
            code = self._call(cpu, 0)
            if code == EXIT_MISS:
                stats["exits_miss"] += 1
                t0 = time.thread_time()  # CPU time: the shared hosts' wall clock is noise
                tb = engine.translate(S[self.pc_slot], S[self.flags_slot])
                stats["translate_seconds"] += time.thread_time() - t0
                self.link(tb.fn, cpu)
            elif code == EXIT_EXC:
                self._raise_pending(cpu)
            else:
                stats["exits_req"] += 1
        S[exit_slot] = 0

    def run_one(self, tb: NativeTB, cpu: object) -> int:
        """Execute just this block (single-step, -d exec): exit_request stops the next."""
        S = cpu.state.slots
        exit_slot = self.exit_slot
        old = S[exit_slot]
        S[exit_slot] = 1
        try:
            code = self._call(cpu, self.buf.exec_address(tb.body))
        finally:
            S[exit_slot] = old
        if code == EXIT_EXC:
            self._raise_pending(cpu)
        return S[self.pc_slot]


@contextlib.contextmanager
def _released(bql: BigLock | None) -> Iterator[None]:
    """Give up the big lock (if held) for the body: generated code and waits."""
    if bql is None:
        yield
        return
    bql.release()
    try:
        yield
    finally:
        bql.acquire()


def _before_fork(ref: weakref.ref) -> None:
    """The child gets the code buffer as it is at the fork: no thread installs, links
    or unlinks a block until the fork is done (the lock is held across it), and from
    then on neither side writes the shared pages (see CodeBuffer.freeze)."""
    backend = ref()
    if backend is not None:
        backend.lock.acquire()
        backend.buf.freeze()


def _after_fork_in_parent(ref: weakref.ref) -> None:
    backend = ref()
    if backend is not None:
        backend.lock.release()


def _after_fork_in_child(ref: weakref.ref) -> None:
    backend = ref()
    if backend is not None:
        backend.buf.freeze()
        # the parent's threads are gone: none of them is inside generated code
        for cpu in list(backend._cpus):
            cpu._native_busy = False
        backend._native_cond = threading.Condition()
        backend.lock = threading.RLock()


__all__ = ["NativeBackend", "NativeTB", "EXIT_MISS", "EXIT_EXC", "EXIT_REQ", "RDX", "RSI",
           "RDI", "RCX"]
