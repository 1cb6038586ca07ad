"""Debugging a RISC-V TCG board (``-s``, ``-S``, ``-gdb tcp::PORT``): one thread per hart.

Stopping uses the monitor's pause gate (``RiscvBoardMonitor``): the board's hart
thread waits inside it, so while GDB has the machine stopped this stub may read and
change any hart and execute instructions itself.  ``continue`` opens the gate and the
guest runs translated code at full speed, breakpoints and watchpoints included: they
are checked where the guest's debug triggers are (target/riscv/debugger_points.py),
before the instruction or the access, and a hit stops the machine from the hart's
thread.  A watchpoint stops before its access, which GDB then steps over itself.
Ctrl-C interrupts either way.
"""

from __future__ import annotations

import contextlib
import threading

from pemu import threads
from pemu.gdbstub.riscv import CORE_REGS, RiscvRegisters, memory_access, target_xml
from pemu.gdbstub.server import serve
from pemu.gdbstub.target import (
    BP_HARDWARE,
    BP_SOFTWARE,
    SIGINT,
    SIGTRAP,
    WP_ACCESS,
    WP_READ,
    WP_WRITE,
    DebugTarget,
    StopEvent,
    TargetError,
)
from pemu.memory.address_space import GuestMemoryError
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import DEBUG
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.debugger_points import DebuggerHit, DebuggerPoints, Watch
from pemu.target.riscv.exceptions import RiscvTrap

# CSRs GDB shows in "info registers csr" (name -> number); read through the hart's
# own CSR helpers so the values are exactly what the guest sees.
SYSTEM_CSRS = {
    "sstatus": 0x100, "sie": 0x104, "stvec": 0x105, "sscratch": 0x140, "sepc": 0x141,
    "scause": 0x142, "stval": 0x143, "sip": 0x144, "satp": 0x180, "mstatus": 0x300,
    "misa": 0x301, "medeleg": 0x302, "mideleg": 0x303, "mie": 0x304, "mtvec": 0x305,
    "mscratch": 0x340, "mepc": 0x341, "mcause": 0x342, "mtval": 0x343, "mip": 0x344,
    "mhartid": 0xF14,
}
_PS_FIELDS = {0x105: "stvec", 0x141: "sepc", 0x142: "scause", 0x143: "stval",
              0x180: "satp", 0x302: "medeleg", 0x303: "mideleg", 0x305: "mtvec",
              0x341: "mepc", 0x342: "mcause", 0x343: "mtval", 0x140: "sscratch",
              0x340: "mscratch"}


def _read_csr(hart, num: int) -> int | None:
    ps = hart.ps
    if num == 0xF14:
        return hart.hartid
    if num == 0x300:
        return ps.read_mstatus()
    if num == 0x100:
        return ps.read_mstatus() & 0x8000_0003_000D_E762
    if num == 0x304:
        return ps.mie
    if num == 0x104:
        return ps.mie & ps.mideleg
    if num == 0x344:
        return ps.mip()
    if num == 0x144:
        return ps.mip() & ps.mideleg
    if num == 0x301:
        return getattr(ps, "misa", 0x8000_0000_0014_112D)
    field = _PS_FIELDS.get(num)
    return getattr(ps, field, None) if field else None


class RiscvSystemTarget(DebugTarget):
    arch = "riscv64"

    def __init__(self, monitor_machine) -> None:
        super().__init__()
        self.vm = monitor_machine  # RiscvBoardMonitor: its gate stops the harts
        self.board = monitor_machine.board
        self.harts = self.board.harts
        self._xml = target_xml(SYSTEM_CSRS)
        self.regs = RiscvRegisters(csr_read=lambda state, num: _read_csr(
            self._hart_of_state(state), num))
        self.breakpoints: set[int] = set()
        self.watchpoints: set[tuple[int, int, int]] = set()
        self.stopped_hart = 0
        # shared with every hart while GDB has points; a hit reports once per continue
        self.points = DebuggerPoints(on_hit=self._on_hit)
        self._hit_lock = threading.Lock()
        self._hit_reported = True

    def _hart_of_state(self, state):
        for h in self.harts:
            if h.state is state:
                return h
        raise TargetError("unknown hart", 3)

    def _hart(self, thread: int):
        if not 1 <= thread <= len(self.harts):
            raise TargetError(f"no thread {thread}", 3)
        return self.harts[thread - 1]

    # -- description -----------------------------------------------------------------------
    def target_xml(self) -> dict[str, str]:
        return self._xml

    def threads(self) -> list[int]:
        return list(range(1, len(self.harts) + 1))

    def thread_description(self, thread: int) -> str:
        h = self._hart(thread)
        return f"CPU#{h.hartid} [{'halted' if h.ps.waiting else 'running'}]"

    # -- state -----------------------------------------------------------------------------
    def read_registers(self, thread: int) -> bytes:
        return self.regs.read_core(self._hart(thread).state)

    def write_registers(self, thread: int, data: bytes) -> None:
        self.regs.write_core(self._hart(thread).state, data[:CORE_REGS * 8])

    def read_register(self, thread: int, regno: int) -> bytes:
        return self.regs.read(self._hart(thread).state, regno)

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        self.regs.write(self._hart(thread).state, regno, value)

    def read_memory(self, thread: int, addr: int, length: int) -> bytes:
        try:
            return self.vm.read_memory(addr, length, physical=False, cpu_index=thread - 1)
        except QMPError as e:
            raise TargetError(str(e), 14) from None

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        hart = self._hart(thread)
        try:
            paddr = self.vm._virt_to_phys(hart, addr)
            self.board.space.write(paddr, data)
        except (GuestMemoryError, ValueError) as e:
            raise TargetError(str(e), 14) from None
        self.board.translator.sync_code()  # the debugger may have patched code

    # -- breakpoints -----------------------------------------------------------------------
    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        if kind in (BP_SOFTWARE, BP_HARDWARE):
            self.breakpoints.add(addr)
        elif kind in (WP_WRITE, WP_READ, WP_ACCESS):
            self.watchpoints.add((kind, addr, max(length, 1)))
        else:
            return False
        return True

    def remove_point(self, kind: int, addr: int, length: int) -> bool:
        if kind in (BP_SOFTWARE, BP_HARDWARE):
            self.breakpoints.discard(addr)
        elif kind in (WP_WRITE, WP_READ, WP_ACCESS):
            self.watchpoints.discard((kind, addr, max(length, 1)))
        else:
            return False
        return True

    def remove_all_points(self) -> None:
        self.breakpoints.clear()
        self.watchpoints.clear()

    # -- execution -------------------------------------------------------------------------
    def attached(self) -> None:
        """GDB connected: the machine stops for it, as in QEMU."""
        self.vm.stop(DEBUG)

    def _step_one(self, hart) -> tuple[int, int] | None:
        """Execute one instruction of ``hart`` on this thread; returns a watch hit.
        With MTTCG it holds the big lock, as the vCPU threads do in Python (they are
        parked, but one woken from WFI runs to its gate)."""
        bql = self.board.translator.bql
        with bql if bql is not None else contextlib.nullcontext():
            return self._step_one_locked(hart)

    def _step_one_locked(self, hart) -> tuple[int, int] | None:
        S = hart.slots
        ps = hart.ps
        hit = None
        try:
            if self.watchpoints:
                hit = self._watch_hit(hart)
            flags = ps.block_flags()
            translator = self.board.translator
            page = hart.mmu.exec_page(S[rv.PC], translator.fetch_index(flags))
            tb = translator.translate(hart, S[rv.PC], flags, page, max_insns=1)
            S[rv.PC] = tb.fn(S, hart)
        except RiscvTrap as trap:
            ps.take_trap(trap.cause, trap.tval)
        irq = ps.pending_interrupt()
        if irq is not None:
            ps.take_trap(irq, 0, interrupt=True)
        return hit

    def _watch_hit(self, hart) -> tuple[int, int] | None:
        try:
            insn = int.from_bytes(self.read_memory(hart.hartid + 1, hart.slots[rv.PC], 2),
                                  "little")
            if insn & 3 == 3:
                insn = int.from_bytes(self.read_memory(hart.hartid + 1, hart.slots[rv.PC], 4),
                                      "little")
        except TargetError:
            return None
        access = memory_access(insn, hart.state)
        if access is None:
            return None
        addr, size, reads, writes = access
        for kind, waddr, wlen in self.watchpoints:
            if addr < waddr + wlen and waddr < addr + size and (
                    (kind == WP_WRITE and writes) or (kind == WP_READ and reads)
                    or (kind == WP_ACCESS and (reads or writes))):
                return kind, waddr
        return None

    def resume(self, step_thread: int | None) -> None:
        if step_thread is not None:
            hart = self._hart(step_thread)
            hit = self._step_one(hart)
            self._report_stop(step_thread, hit)
            return
        self._run(None)

    def resume_threads(self, threads: frozenset[int]) -> None:
        for thread in threads:
            self._hart(thread)  # TargetError for a thread that is not there
        self._run(threads)

    def _run(self, threads: frozenset[int] | None) -> None:
        """Full speed for these threads (None: all); the others stay parked."""
        self._install_points()
        thread = self.stopped_hart + 1
        if (self.breakpoints or self.watchpoints) and (threads is None or thread in threads):
            # off a breakpoint first: the hart stopped on it, and would hit it again
            hart = self._hart(thread)
            if hart.slots[rv.PC] in self.breakpoints:
                hit = self._step_one(hart)
                if hit is not None or hart.slots[rv.PC] in self.breakpoints:
                    self._report_stop(thread, hit)
                    return
        with self._hit_lock:
            self._hit_reported = False
            self.points.active = bool(self.breakpoints or self.watchpoints)
        if threads is None:
            self.vm.cont()  # full speed; a hit or Ctrl-C closes the gate again
        else:
            self.vm.cont_harts(frozenset(t - 1 for t in threads))

    def _install_points(self) -> None:
        """Hand GDB's points to the harts (parked: the machine is stopped)."""
        watches = tuple(Watch(kind, addr, length, kind in (WP_READ, WP_ACCESS),
                              kind in (WP_WRITE, WP_ACCESS))
                        for kind, addr, length in sorted(self.watchpoints))
        self.points.set_points(frozenset(self.breakpoints), watches)
        for hart in self.harts:
            hart.debugger = self.points if (self.breakpoints or self.watchpoints) else None
        for hart in self.harts:
            hart.apply_triggers()

    def _on_hit(self, hart, hit: DebuggerHit) -> None:
        """On the hart's thread, before the instruction (or its access) ran: the hart
        keeps hitting it until the machine is stopped, from another thread (the stop
        waits for the harts to park, this one included)."""
        with self._hit_lock:
            if self._hit_reported:
                return
            self._hit_reported = True
            self.points.active = False
        threads.start_daemon(self._stop_at_hit, hart, hit, name="pemu-gdb-hit")

    def _stop_at_hit(self, hart, hit: DebuggerHit) -> None:
        self.vm.stop(DEBUG)
        thread = self.harts.index(hart) + 1
        watch = hit.watch
        # a watchpoint stops before its access, as RISC-V hardware does: GDB (whose
        # riscv watchpoints are "non-steppable") steps over the access itself
        self._report_stop(thread, None if watch is None else (watch.kind, watch.addr))

    def _report_stop(self, thread: int, hit, signal: int = SIGTRAP) -> None:
        self.stopped_hart = thread - 1
        if hit is not None:
            self.report(StopEvent(signal, thread, watch_kind=hit[0], watch_addr=hit[1]))
        else:
            self.report(StopEvent(signal, thread))

    def interrupt(self) -> None:
        with self._hit_lock:
            if self._hit_reported:
                return  # a hit's stop is being reported already
            self._hit_reported = True
            self.points.active = False
        self.vm.stop(DEBUG)
        self.report(StopEvent(SIGINT, self.stopped_hart + 1))

    def detach(self) -> None:
        with self._hit_lock:
            self._hit_reported = True
            self.points.active = False
        self.remove_all_points()
        self._install_points()  # the harts drop the checks
        self.vm.cont()

    def kill(self) -> None:
        self.vm.quit()


def start_system_gdbstub(monitor_machine, spec: str, wait: bool = False):
    """``-gdb SPEC`` / ``-s`` for a RISC-V board; ``wait`` blocks until GDB attaches."""
    target = RiscvSystemTarget(monitor_machine)
    return target, serve(target, spec, wait)
