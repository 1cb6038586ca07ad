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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns

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
from pemu.target.riscv.priv import MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW, NEVER_NS, PrivState
from pemu.target.riscv.translate import translate_block

MAX_TBS = 60_000  # translated blocks kept before the whole cache is dropped
TIMER_CHECK_BLOCKS = 128  # blocks between two looks at the host clock for stimecmp


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
                 max_insns: int = 256) -> None:
        self.space = space
        self.dram = dram
        self.log = log or TCGLog()
        self.max_insns = max_insns
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
        start = time.perf_counter()
        priv = flags & 3
        vpn = pc >> PAGE_SHIFT
        pages = [page >> PAGE_SHIFT]
        read = self._read_code
        mmu = hart.mmu

        def fetch(addr: int, size: int) -> int:
            if addr >> PAGE_SHIFT == vpn:
                return read(page | (addr & PAGE_MASK), size)
            other = mmu.exec_page(addr, priv)  # the second half of a straddling insn
            if other >> PAGE_SHIFT not in pages:
                pages.append(other >> PAGE_SHIFT)
            return read(other | (addr & PAGE_MASK), size)

        block = translate_block(pc, flags, fetch, max_insns=self.max_insns)
        self.log.block_translated_ir(block, "op")
        optimize(block)
        self.log.block_translated_ir(block, "op_opt")
        compiled = self.backend.compile(block)
        tb = SystemTB(pc, flags, tuple(pages), block.n_insns, compiled.fn, compiled.source)
        if len(self.tbs) >= MAX_TBS:
            self.flush()
        if len(pages) == 1:  # a block straddling two pages lives only in jump caches
            self.tbs[(flags, pc, page)] = tb
        for ppn in pages:
            self.by_page.setdefault(ppn, []).append(tb)
            if ppn not in self.snapshots:
                self.snapshots[ppn] = self._page_bytes(ppn)
        self.stats["translated"] += 1
        self.stats["translate_s"] += time.perf_counter() - start
        return tb

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

    def flush(self) -> None:
        self.stats["flushes"] += 1
        self.tbs.clear()
        self.by_page.clear()
        self.snapshots.clear()
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
        self.mem = VirtualMemory(self.mmu, space.lock)
        self._bind_context(self.mmu.ctx)
        self.should_stop: Callable[[], bool] = lambda: False
        self.count_insns = False
        self.insns = 0
        self._insns_of: dict[Callable, int] = {}
        translator.harts.append(self)

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

    def reset(self, pc: int) -> None:
        for i in range(rv.N_SLOTS):
            self.slots[i] = 0
        self.slots[rv.RES_ADDR] = rv.NO_RESERVATION
        self.ps.reset()
        self.pmp.reset()
        self.mmu.switch()
        self.tlb_flush_all()
        self.slots[rv.PC] = pc

    # -- execution -------------------------------------------------------------------------
    def _find(self, pc: int, flags: int, jc: dict[int, Callable]) -> Callable:
        tb = self.translator.lookup(self, pc, flags)
        jc[pc] = tb.fn
        self._insns_of[tb.fn] = tb.n_insns
        for ppn_vpn in {pc >> PAGE_SHIFT, (pc + 2) >> PAGE_SHIFT}:
            self._jump_pages.setdefault(ppn_vpn, []).append(pc)
        return tb.fn

    def run(self) -> None:
        """Run until ``should_stop()`` is true at an exit request, or WFI parks the hart."""
        S = self.slots
        ps = self.ps
        while True:
            if S[rv.EXIT_REQUEST]:
                S[rv.EXIT_REQUEST] = 0
                if self.should_stop():
                    return
                irq = ps.pending_interrupt()
                if irq is not None:
                    ps.take_trap(irq, 0, interrupt=True)
                elif ps.waiting:
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
        for hart in harts:
            hart.should_stop = self._should_stop

    def _should_stop(self) -> bool:
        if self._yield:
            self._yield = False
            return True
        return self.stopping

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
                hart.run()
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
        self._timer.start()


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
