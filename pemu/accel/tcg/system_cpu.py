"""System-mode TCG: translated blocks keyed by physical page, and the hart loop.

Translated code depends on the guest pc (auipc and branch targets are constants), on
the bytes at the pc's *physical* address, and on the block flags (privilege, SUM,
MPRV).  ``SystemTranslator`` keys blocks by ``(flags, pc, physical page)``, so a
change of address space or privilege never runs a stale block, and the same kernel
code is shared by every process.  Each hart keeps a *jump cache* per flags value, pc
-> function, valid as long as its execute TLB entry is: it lives in the softmmu's
per-address-space ``TLBContext``, so ``sfence.vma`` drops it together with the TLB and
a satp write switches to the jump cache of the new address space.

Self-modifying code: RISC-V requires ``fence.i`` before modified code is executed, so
stores never check for code.  Instead the translator snapshots every page it
translates from, and ``fence.i`` compares the snapshots with memory and drops blocks
of pages that changed, whoever changed them (a CPU store or device DMA).

``RiscvHart.run`` executes until the machine asks it to stop or yield, or WFI parks
it; ``Machine.run_harts`` runs all harts round-robin on the calling thread and
sleeps, without spinning, while every hart waits for an interrupt.

Two backends: ``python`` (blocks are Python functions the hart loop calls one after
another) and ``native`` (x86-64 code that chains block to block and returns to the
hart loop only on a jump-cache miss, an exception or an exit request; see
backend/x86_64/memory_softmmu.py for its TLB).  Generated code never looks at the host
clock, so with the native backend a ``DeadlineKicker`` thread requests the exit when
a hart's Sstc timer is due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns

from pemu import threads
from pemu.accel.tcg.engine import resolve_backend
from pemu.accel.tcg.ir import (
    CALL_READS_STATE,
    CALL_SIDE_EFFECTS,
    CALL_WRITES_STATE,
    Const,
    Helper,
)
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.optimize import optimize
from pemu.accel.tcg.softmmu import (
    ASID_MASK,
    MMU_M,
    MMU_S,
    MMU_S_SUM,
    MMU_U,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    SoftMMU,
    SoftmmuBackend,
    TLBContext,
    VirtualMemory,
)
from pemu.memory.address_space import AddressSpace, RAMBlock
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv import insn_system
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.cpu_state import RiscvCPUState
from pemu.target.riscv.csr_system import register_system_csrs
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.mmu import PMP, PRV_M, PRV_S, PRV_U
from pemu.target.riscv.priv import (
    MIP_STIP,
    MSTATUS_TSR,
    MSTATUS_TVM,
    MSTATUS_TW,
    NEVER_NS,
    PrivState,
)
from pemu.target.riscv.translate import translate_block

# -accel tcg,tb-size=N: the translation cache, in MiB.  Debian's guest boot translates
# about 160 k distinct blocks; with 64 MiB the cache was dropped three times and the boot
# took 40 % longer.  Only the code pages actually written take host memory.
DEFAULT_TB_SIZE_MIB = 512
BLOCKS_PER_MIB = 512  # blocks kept per MiB of tb-size before the whole cache is dropped
TIMER_CHECK_BLOCKS = 128  # blocks between two looks at the host clock for stimecmp
DEFAULT_BACKEND = "auto"  # -accel tcg,backend=python|native|auto: native on x86-64
NATIVE_JC_BITS = 15  # native jump cache entries per address space: 32768 (256 KiB)


@dataclass(eq=False)
class SystemTB:
    pc: int
    flags: int
    pages: tuple[int, ...]  # physical page numbers the code lies on
    n_insns: int
    fn: Callable
    source: str = field(repr=False, default="")


class SystemTranslator:
    """Translated code shared by the harts of one machine."""

    def __init__(self, space: AddressSpace, dram: RAMBlock, log: TCGLog | None = None,
                 max_insns: int = 256, backend: str = "python",
                 tb_size_mib: int = DEFAULT_TB_SIZE_MIB) -> None:
        """``tb_size_mib`` bounds the cache as QEMU's ``tb-size`` does: the native code
        buffer has that many MiB, and at most ``BLOCKS_PER_MIB`` blocks per MiB are
        kept (the python backend's bound); past either, every block is dropped."""
        self.space = space
        self.dram = dram
        self.log = log or TCGLog()
        self.max_insns = max_insns
        self.max_tbs = tb_size_mib * BLOCKS_PER_MIB
        self.backend_name = resolve_backend(backend)  # ValueError: unknown or unsupported
        self.native = self.backend_name == "native"
        if self.native:
            from pemu.accel.tcg.backend.x86_64.memory_softmmu import SoftmmuMemory
            from pemu.accel.tcg.backend.x86_64.runtime import NativeBackend

            self.backend = NativeBackend(self, code_size=tb_size_mib << 20,
                                         memory=SoftmmuMemory(), pc_slot=rv.PC,
                                         jc_bits=NATIVE_JC_BITS, one_thread=True)
        else:
            self.backend = SoftmmuBackend(dram)
        self.tbs: dict[tuple[int, int, int], SystemTB] = {}
        self.by_page: dict[int, list[SystemTB]] = {}
        self.snapshots: dict[int, bytes] = {}
        self.harts: list[RiscvHart] = []
        self.stats = {"translated": 0, "translate_s": 0.0, "invalidated_pages": 0,
                      "flushes": 0}

    def _page_bytes(self, ppn: int) -> bytes:
        region = self.space.find(ppn << PAGE_SHIFT, PAGE_SIZE)
        if not isinstance(region, RAMBlock):
            return b""
        off = (ppn << PAGE_SHIFT) - region.base
        return bytes(region.view[off:off + PAGE_SIZE])

    def _read_code(self, paddr: int, size: int) -> int:
        region = self.space.find(paddr, size)
        if not isinstance(region, RAMBlock):
            raise RiscvTrap(1, paddr)  # instruction access fault
        off = paddr - region.base
        return int.from_bytes(region.view[off:off + size], "little")

    def lookup(self, hart: RiscvHart, pc: int, flags: int) -> SystemTB:
        """The block for ``pc`` under ``flags``; translates on a miss (may raise a trap)."""
        priv = flags & 3
        page = hart.mmu.exec_page(pc, priv)
        tb = self.tbs.get((flags, pc, page))
        if tb is None:
            tb = self.translate(hart, pc, flags, page)
        return tb

    def translate(self, hart: RiscvHart, pc: int, flags: int, page: int) -> SystemTB:
        # Make room first: a flush after compiling would drop (with the native
        # backend: poison) the very block the hart is about to run.
        if len(self.tbs) >= self.max_tbs:
            self.flush()
        start = time.thread_time()  # CPU time: the shared hosts' wall clock is noise
        priv = flags & 3
        vpn = pc >> PAGE_SHIFT
        pages = [page >> PAGE_SHIFT]
        read = self._read_code
        mmu = hart.mmu
        region = self.space.find(page, PAGE_SIZE)
        # the block's own page straight from its RAM (no region search per instruction)
        view = region.view if isinstance(region, RAMBlock) else None
        page_off = page - region.base if view is not None else 0

        def fetch(addr: int, size: int) -> int:
            if addr >> PAGE_SHIFT == vpn:
                off = addr & PAGE_MASK
                if view is not None and off + size <= PAGE_SIZE:
                    return int.from_bytes(view[page_off + off:page_off + off + size],
                                          "little")
                return read(page | off, size)
            other = mmu.exec_page(addr, priv)  # the second half of a straddling insn
            if other >> PAGE_SHIFT not in pages:
                pages.append(other >> PAGE_SHIFT)
            return read(other | (addr & PAGE_MASK), size)

        # one thread runs every hart: atomics need no lock and are inlined
        block = translate_block(pc, flags, fetch, max_insns=self.max_insns,
                                inline_atomics=True)
        if self.log.enabled("in_asm"):
            self.log.guest_code(pc, b"".join(fetch(pc + i, 2).to_bytes(2, "little")
                                             for i in range(0, block.guest_size, 2)))
        self.log.block_translated_ir(block, "op")
        optimize(block)
        self.log.block_translated_ir(block, "op_opt")
        compiled = self.backend.compile(block)
        if self.native:
            self._set_chain_keys(compiled.fn, flags, pc, page, len(pages) == 1)
        tb = SystemTB(pc, flags, tuple(pages), block.n_insns, compiled.fn, compiled.source)
        if len(pages) == 1:  # a block straddling two pages lives only in jump caches
            self.tbs[(flags, pc, page)] = tb
        for ppn in pages:
            self.by_page.setdefault(ppn, []).append(tb)
            if ppn not in self.snapshots:
                self.snapshots[ppn] = self._page_bytes(ppn)
        self.stats["translated"] += 1
        self.stats["translate_s"] += time.thread_time() - start
        return tb

    @staticmethod
    def _set_chain_keys(ntb: object, flags: int, pc: int, page: int, one_page: bool) -> None:
        """Native chaining: an exit may jump straight to a block on its own guest page
        (running the source proves that page's mapping), found by (flags, pc, physical
        page); exits to other pages go through the dispatcher's jump cache, which is
        per address space.  A block straddling two pages is never a chain target."""
        ntb.key = (flags, pc, page) if one_page else None
        vpn = pc >> PAGE_SHIFT
        ntb.exit_keys = [(flags, target, page) if target >> PAGE_SHIFT == vpn else None
                         for target in ntb.exit_pcs]

    # -- invalidation -------------------------------------------------------------------
    def sync_code(self) -> None:
        """fence.i: drop the blocks of every page whose bytes changed since translation."""
        changed = [ppn for ppn, snap in self.snapshots.items()
                   if self._page_bytes(ppn) != snap]
        if not changed:
            return
        for ppn in changed:
            self.invalidate_page(ppn)
        for hart in self.harts:
            hart.flush_jump_cache()

    def invalidate_page(self, ppn: int) -> None:
        self.snapshots.pop(ppn, None)
        tbs = self.by_page.pop(ppn, None)
        if not tbs:
            return
        self.stats["invalidated_pages"] += 1
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
        if self.native:
            self.backend.flush()
        for hart in self.harts:
            hart.flush_jump_cache()


class RiscvHart:
    """One hart in system mode; it is the ``env`` translated code and helpers get."""

    def __init__(self, hartid: int, translator: SystemTranslator, space: AddressSpace,
                 now: Callable[[], int], wakeup: threading.Event) -> None:
        register_system_csrs()
        self.hartid = hartid
        self.translator = translator
        self.state = RiscvCPUState()
        self.slots = self.state.slots
        self.ps = PrivState(hartid, self.slots, now)
        self.ps.wakeup = wakeup
        self.pmp = PMP(on_change=self.tlb_flush_all)
        self.mmu = SoftMMU(self.ps, self.pmp, space, translator.dram)
        self.mmu.on_switch = self._bind_context
        if translator.native:
            self._enable_native(translator)
        self.mem = VirtualMemory(self.mmu, space.lock)
        self._bind_context(self.mmu.ctx)
        self.should_stop: Callable[[], bool] = lambda: False
        self.count_insns = False
        self.insns = 0
        self._insns_of: dict[Callable, int] = {}
        translator.harts.append(self)

    def _enable_native(self, translator: SystemTranslator) -> None:
        from pemu.accel.tcg.backend.x86_64.memory_softmmu import NativeContext

        backend = translator.backend
        host = translator.dram.host_addr
        self.mmu.enable_native(lambda: NativeContext(backend, host))

    def request_exit(self) -> None:
        """Leave translated code at the next block entry (any thread)."""
        self.ps.kick()

    # -- hooks used by CSRs and helpers ----------------------------------------------------
    def tlb_flush_all(self) -> None:
        self.mmu.flush_all()

    def flush_icache(self) -> None:
        self.translator.sync_code()

    def flush_jump_cache(self) -> None:
        self.mmu.flush_jump_caches()

    def _bind_context(self, ctx: TLBContext) -> None:
        """A new address space is current: rebind what translated code and run() use."""
        # the TLB dicts translated code reads, by MMU index
        self.R0, self.R1, self.R2, self.R3 = (ctx.read_tlb[i] for i in
                                              (MMU_U, MMU_S, MMU_S_SUM, MMU_M))
        self.W0, self.W1, self.W2, self.W3 = (ctx.write_tlb[i] for i in
                                              (MMU_U, MMU_S, MMU_S_SUM, MMU_M))
        self.jump_cache = ctx.jump_cache
        self._jump_pages = ctx.jump_pages
        native = ctx.native
        if native is not None:  # what the native dispatcher and memory code read
            self.slots[rv.NATIVE_JUMP_CACHE] = native.jc_address
            self.slots[rv.NATIVE_TLB] = native.tlb_address

    def reset(self, pc: int) -> None:
        for i in range(rv.N_SLOTS):
            self.slots[i] = 0
        self.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        self.ps.reset()
        self.pmp.reset()
        self.mmu.switch()
        self.tlb_flush_all()
        self._bind_context(self.mmu.ctx)  # the native slots were zeroed above
        self.slots[rv.PC] = pc

    # -- execution -------------------------------------------------------------------------
    def _find(self, pc: int, flags: int, jc: dict[int, Callable]) -> Callable:
        tb = self.translator.lookup(self, pc, flags)
        jc[pc] = tb.fn
        self._insns_of[tb.fn] = tb.n_insns
        self._remember_page(pc)
        return tb.fn

    def _remember_page(self, pc: int) -> None:
        """sfence.vma of pc's page (or the next, for a straddling insn) must forget pc."""
        for vpn in {pc >> PAGE_SHIFT, (pc + 2) >> PAGE_SHIFT}:
            self._jump_pages.setdefault(vpn, set()).add(pc)

    def _handle_exit_request(self) -> bool:
        """At a block boundary with exit_request set: False if the loop must return."""
        ps = self.ps
        if self.should_stop():
            # exit_request stays set: the request may also have been an interrupt for
            # this hart, which must be looked at when it runs again
            return False
        self.slots[rv.EXIT_REQUEST] = 0
        irq = ps.pending_interrupt()
        if irq is not None:
            ps.take_trap(irq, 0, interrupt=True)
        elif ps.waiting:
            return False
        return True

    def run(self) -> None:
        """Run until ``should_stop()`` is true at an exit request, or WFI parks the hart."""
        if self.translator.native and not self.count_insns:
            self._run_native()
            return
        S = self.slots
        ps = self.ps
        while True:
            if S[rv.EXIT_REQUEST] and not self._handle_exit_request():
                return
            flags = ps.block_flags()
            jc = self.jump_cache.get(flags)
            if jc is None:
                jc = self.jump_cache[flags] = {}
            get = jc.get
            pc = S[rv.PC]
            try:
                if self.count_insns:
                    self._run_counting(pc, flags, jc)
                    continue
                deadline = ps.timer_deadline_ns
                budget = TIMER_CHECK_BLOCKS
                while not S[rv.EXIT_REQUEST]:
                    fn = get(pc)
                    if fn is None:
                        S[rv.PC] = pc
                        fn = self._find(pc, flags, jc)
                    pc = fn(S, self)
                    budget -= 1
                    if not budget:
                        # The S-mode timer (Sstc) is polled here rather than armed on
                        # another thread: waking a host thread per guest tick costs
                        # more than this check.
                        budget = TIMER_CHECK_BLOCKS
                        if monotonic_ns() >= deadline:
                            S[rv.EXIT_REQUEST] = 1
                S[rv.PC] = pc
            except RiscvTrap as trap:
                ps.take_trap(trap.cause, trap.tval)

    def _run_native(self) -> None:
        """The same loop with the native backend: generated code runs block to block
        and comes back only for a jump-cache miss, an exception or an exit request."""
        from pemu.accel.tcg.backend.x86_64.runtime import EXIT_EXC, EXIT_MISS
        from pemu.accel.tcg.backend.x86_64.signal_wakeup import WAKEUP

        S = self.slots
        ps = self.ps
        backend = self.translator.backend
        stats = backend.stats
        if threading.current_thread() is threading.main_thread():
            WAKEUP.enter_main(self)  # SIGINT/SIGTERM reach Python while code is chained
        while True:
            if S[rv.EXIT_REQUEST] and not self._handle_exit_request():
                return
            flags = ps.block_flags()
            S[rv.TB_FLAGS] = flags
            try:
                code = backend.call(self)
                if code == EXIT_MISS:
                    stats["exits_miss"] += 1
                    if S[rv.EXIT_REQUEST]:
                        continue  # e.g. after xRET: the flags are stale, look again
                    pc = S[rv.PC]
                    tb = self.translator.lookup(self, pc, flags)
                    if not backend.link(tb.fn, self):
                        # one thread runs every hart: a cached block is never dead
                        raise RuntimeError(f"translated block at 0x{pc:x} was dropped "
                                           "while still cached")
                    self._remember_page(pc)
                elif code == EXIT_EXC:
                    raise backend.take_pending(self)
                else:
                    stats["exits_req"] += 1
            except RiscvTrap as trap:
                ps.take_trap(trap.cause, trap.tval)

    def _run_counting(self, pc: int, flags: int, jc: dict[int, Callable]) -> None:
        """The same loop, also counting guest instructions (for benchmarks)."""
        S = self.slots
        get = jc.get
        insns_of = self._insns_of
        n = 0
        deadline = self.ps.timer_deadline_ns
        try:
            while not S[rv.EXIT_REQUEST]:
                fn = get(pc)
                if fn is None:
                    S[rv.PC] = pc
                    fn = self._find(pc, flags, jc)
                n += insns_of[fn]
                pc = fn(S, self)
                if not n & 63 and monotonic_ns() >= deadline:
                    S[rv.EXIT_REQUEST] = 1
            S[rv.PC] = pc
        finally:
            self.insns += n

    def interrupt_ready(self) -> bool:
        """WFI may resume: some interrupt is pending and enabled in mie."""
        return bool(self.ps.mip() & self.ps.mie)


class DeadlineKicker:
    """A thread that asks harts to leave native code when their Sstc timer is due.

    The python hart loop polls the clock every few blocks; chained native code never
    does, so this thread polls for it, without the GIL while it waits.  A deadline is
    kicked until the interrupt is really pending (the deadline is rounded to host
    nanoseconds), then left alone: a guest with interrupts masked is not kicked again,
    and unmasking them is a CSR write, which ends the block by itself.
    """

    MAX_WAIT_S = 0.01
    MIN_WAIT_S = 0.0002

    def __init__(self, harts: list[RiscvHart]) -> None:
        self.harts = harts
        self._done = threading.Event()
        self._kicked: dict[int, int] = {}  # hartid -> the deadline already delivered
        self._thread = threads.start_daemon(self._run, name="pemu-timer-kicker")

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _pending_deadlines(self) -> list[tuple[RiscvHart, int]]:
        return [(h, h.ps.timer_deadline_ns) for h in self.harts
                if h.ps.timer_deadline_ns != NEVER_NS and h.ps.sstc_enabled
                and self._kicked.get(h.hartid) != h.ps.timer_deadline_ns]

    def _run(self) -> None:
        wait = self.MAX_WAIT_S
        while not self._done.wait(wait):
            now = monotonic_ns()
            wait = self.MAX_WAIT_S
            for hart, deadline in self._pending_deadlines():
                if now >= deadline:
                    if hart.ps.mip() & MIP_STIP:
                        self._kicked[hart.hartid] = deadline
                    hart.request_exit()
                    wait = self.MIN_WAIT_S
                else:
                    wait = min(wait, max(self.MIN_WAIT_S, (deadline - now) / 1e9))


class Machine:
    """Runs a set of harts on one thread, round-robin, until ``stop`` is called."""

    QUANTUM_S = 0.005

    def __init__(self, harts: list[RiscvHart], wakeup: threading.Event,
                 next_deadline: Callable[[], float | None]) -> None:
        self.harts = harts
        self.wakeup = wakeup
        self.next_deadline = next_deadline  # host monotonic time of the next timer event
        self.stopping = False
        self._yield = False
        self._timer: threading.Timer | None = None
        self._current: RiscvHart | None = None  # the hart running now (several harts)
        for hart in harts:
            hart.should_stop = self._should_stop
            if len(harts) > 1:
                hart.ps.on_line_raised = self._line_raised

    def _should_stop(self) -> bool:
        if self._yield:
            self._yield = False
            return True
        return self.stopping

    def _line_raised(self, ps: PrivState) -> None:
        """An interrupt line of some hart rose (an IPI, a device): if that hart is not
        the one running, end the running hart's turn.  A hart that sends an IPI
        usually waits for the answer (remote fences, smp_call_function), so the
        target must run now, not at the end of the quantum."""
        current = self._current
        if current is not None and current.ps is not ps:
            self._yield = True
            current.ps.request_exit()

    def stop(self) -> None:
        self.stopping = True
        for hart in self.harts:
            hart.ps.kick()
        self.wakeup.set()

    @staticmethod
    def _stimecmp_deadline(hart: RiscvHart) -> float | None:
        ps = hart.ps
        if not ps.sstc_enabled or ps.timer_deadline_ns == NEVER_NS:
            return None
        return time.monotonic() + (ps.timer_deadline_ns - monotonic_ns()) / 1e9

    def _sleep(self) -> None:
        """All harts wait for interrupts: block until a line rises or a timer is due."""
        deadlines = [d for d in [self.next_deadline()]
                     + [self._stimecmp_deadline(h) for h in self.harts] if d is not None]
        timeout = 1.0
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        if timeout > 0:
            self.wakeup.wait(timeout)

    def run_harts(self) -> None:
        native = bool(self.harts) and self.harts[0].translator.native
        kicker = DeadlineKicker(self.harts) if native else None
        try:
            self._run_harts()
        finally:
            if kicker is not None:
                kicker.stop()

    def _run_harts(self) -> None:
        multi = len(self.harts) > 1
        while not self.stopping:
            ran = False
            self.wakeup.clear()
            for hart in self.harts:
                if self.stopping:
                    return
                if hart.ps.waiting:
                    if not hart.interrupt_ready():
                        continue
                    hart.ps.waiting = False
                    hart.slots[rv.EXIT_REQUEST] = 1
                ran = True
                if multi:
                    self._arm_quantum(hart)
                    self._current = hart
                hart.run()
                self._current = None
            if not ran:
                self._sleep()

    def _arm_quantum(self, hart: RiscvHart) -> None:
        def expire() -> None:
            self._yield = True
            hart.slots[rv.EXIT_REQUEST] = 1

        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.QUANTUM_S, expire)
        self._timer.daemon = True
        threads.start(self._timer)


# -- privileged instructions (registered into the frontend's SYSTEM table) -----------------

MRET = 0x3020_0073
SRET = 0x1020_0073
WFI = 0x1050_0073
# xRET reads and writes the pc slot's neighbours (exit request): sync all globals around it
_XRET_FLAGS = CALL_SIDE_EFFECTS | CALL_READS_STATE | CALL_WRITES_STATE


def _mret(env: RiscvHart) -> int:
    return env.ps.mret()  # the vCPU loop re-derives the block flags after the kick


def _sret(env: RiscvHart, insn: int) -> int:
    ps = env.ps
    if ps.priv == PRV_S and ps.mstatus & MSTATUS_TSR:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    return ps.sret()


def _kick_after(fn: Callable[..., int]) -> Callable[..., int]:
    def wrapped(env: RiscvHart, *args: int) -> int:
        result = fn(env, *args)
        env.ps.request_exit()
        env.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        return result
    return wrapped


def _wfi(env: RiscvHart, insn: int) -> None:
    ps = env.ps
    if ps.priv < PRV_M and ps.mstatus & MSTATUS_TW:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    ps.waiting = True
    ps.request_exit()


SFENCE_ADDR, SFENCE_ASID = 1, 2  # which of rs1/rs2 an sfence.vma names (not x0)


def _sfence_vma(env: RiscvHart, vaddr: int, asid: int, which: int, insn: int) -> None:
    ps = env.ps
    if ps.priv == PRV_S and ps.mstatus & MSTATUS_TVM:
        raise RiscvTrap(ILLEGAL_INSN, insn)
    mmu = env.mmu
    if which & SFENCE_ASID:
        asid &= ASID_MASK
        if which & SFENCE_ADDR:
            mmu.flush_page(vaddr, asid)
        else:
            mmu.flush_asid(asid)
    elif which & SFENCE_ADDR:
        mmu.flush_page(vaddr)
    else:
        mmu.flush_all()


MRET_HELPER = Helper("mret", _kick_after(_mret), flags=_XRET_FLAGS, needs_env=True)
SRET_HELPER = Helper("sret", _kick_after(_sret), flags=_XRET_FLAGS, needs_env=True)
WFI_HELPER = Helper("wfi", _wfi, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
SFENCE_HELPER = Helper("sfence_vma", _sfence_vma, flags=CALL_SIDE_EFFECTS, n_out=0,
                       needs_env=True)


def _emit_xret(ctx: DisasContext, insn: int) -> None:
    if insn == MRET and ctx.priv == PRV_M:
        ctx.b.call(MRET_HELPER, [ctx.pc_reg], [])
    elif insn == SRET and ctx.priv >= PRV_S:
        ctx.b.call(SRET_HELPER, [ctx.pc_reg], [Const(insn)])
    elif insn == WFI and ctx.priv != PRV_U:
        ctx.b.call(WFI_HELPER, [], [Const(insn)])
        ctx.goto(ctx.next_pc)
        return
    else:
        ctx.illegal()
        return
    ctx.b.goto_ptr()
    ctx.end = True


def _emit_sfence_vma(ctx: DisasContext, insn: int) -> None:
    rs1 = (insn >> 15) & 31
    if (insn >> 7) & 31 or ctx.priv == PRV_U:
        ctx.illegal()
        return
    rs2 = (insn >> 20) & 31
    which = (SFENCE_ADDR if rs1 else 0) | (SFENCE_ASID if rs2 else 0)
    ctx.b.call(SFENCE_HELPER, [], [ctx.xr[rs1], ctx.xr[rs2], Const(which), Const(insn)])
    ctx.goto(ctx.next_pc)


def register_privileged_instructions() -> None:
    """mret/sret/wfi (same fixed bits, told apart by rs2) and sfence.vma."""
    insn_system.PRIVILEGED[0x3000_0073] = _emit_xret
    insn_system.PRIVILEGED[0x1000_0073] = _emit_xret
    insn_system.PRIVILEGED[0x1200_0073] = _emit_sfence_vma


register_privileged_instructions()

__all__ = ["SystemTranslator", "RiscvHart", "Machine", "PRV_S"]
