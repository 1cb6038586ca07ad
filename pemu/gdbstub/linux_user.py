"""Debugging a Linux user-mode process: ``pemu-riscv64 -g PORT prog``.

Every guest thread runs ``cpu.run()`` in the user-mode loop.  ``attach`` puts
``UserModeTarget.run_cpu`` in front of that call for the process's CPUs (the first
one and every CPU a later clone() creates), which is where a debugger must be: it
parks threads while GDB has the process stopped, runs single steps, turns the
engine's ``DebugStop`` into a stop reply, and emulates watchpoints by stepping one
instruction at a time and checking the data access each instruction is about to
make.  Syscalls, signals and faults keep flowing through the user-mode loop
unchanged, because ``run_cpu`` lets their exceptions pass.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pemu.accel.tcg.engine import DEBUG_SINGLE_INSN_FLAG, DebugStop
from pemu.gdbstub import aarch64, riscv
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
from pemu.target.aarch64 import cpu_state as a64
from pemu.target.riscv import cpu_state as rv

PARK_TIMEOUT = 2.0  # how long a stop waits for the other threads to leave guest code


def _riscv_insn(mem, pc: int) -> int:
    insn = mem.fetch(pc, 2)
    return mem.fetch(pc, 4) if insn & 3 == 3 else insn


@dataclass(frozen=True)
class UserArch:
    """What the user-mode stub needs to know about the guest architecture."""

    regs: object  # read_core/write_core/read/write and core_bytes
    xml: dict[str, str]
    pc_slot: int
    exit_slot: int
    # (mem, pc) -> instruction, and (insn, state) -> its data access: emulated
    # watchpoints; None: GDB gets no hardware watchpoints and steps with software ones
    fetch_insn: Callable[[object, int], int] | None = None
    memory_access: Callable[[int, object], tuple[int, int, bool, bool] | None] | None = None


class _RiscvRegs(riscv.RiscvRegisters):
    core_bytes = riscv.CORE_REGS * 8


USER_ARCHES = {
    "riscv64": UserArch(_RiscvRegs(), riscv.target_xml(None), rv.PC, rv.EXIT_REQUEST,
                        _riscv_insn, riscv.memory_access),
    "aarch64": UserArch(aarch64.Aarch64Registers(), aarch64.target_xml(), a64.PC,
                        a64.EXIT_REQUEST),
}


class UserModeTarget(DebugTarget):
    arch = "riscv64"

    def __init__(self, process) -> None:
        super().__init__()
        self.process = process
        self.engine = process.engine
        self.mem = process.mem
        self.arch = process.arch.name
        self.user_arch = USER_ARCHES[self.arch]
        self.regs = self.user_arch.regs
        self._pc = self.user_arch.pc_slot
        self._exit = self.user_arch.exit_slot
        self._cond = threading.Condition()
        self.stopped = True  # user mode starts stopped, waiting for the debugger
        self.detached = False
        self.step_tid: int | None = None
        self._step_pending: int | None = None  # a step interrupted by a syscall or fault
        self._in_guest = 0
        self.watchpoints: set[tuple[int, int, int]] = set()  # (kind, addr, length)
        self._xml = self.user_arch.xml

    # -- the hook in front of cpu.run() ----------------------------------------------
    def run_cpu(self, cpu, original_run) -> None:
        tid = self._tid_of(cpu)
        with self._cond:
            while not self.detached and (self.stopped or (
                    self.step_tid is not None and self.step_tid != tid)):
                self._cond.wait()
            if self.detached:
                step = watch = False
            else:
                step = self.step_tid == tid
                watch = bool(self.watchpoints)
                if self._step_pending == tid:
                    # the instruction stepped was an ecall or faulted: the user-mode
                    # loop has finished it, so the step is complete now
                    self._step_pending = None
                    self._stop_locked(StopEvent(SIGTRAP, tid), in_guest=False)
                    return
            self._in_guest += 1
        try:
            if step:
                self._step(cpu, tid)
            elif watch:
                self._run_watched(cpu, tid)
            else:
                try:
                    original_run()
                except DebugStop:
                    self._stop(StopEvent(SIGTRAP, tid))
        finally:
            with self._cond:
                self._in_guest -= 1
                self._cond.notify_all()

    def _tid_of(self, cpu) -> int:
        with self.process.threads_lock:
            for tid, t in self.process.threads.items():
                if t.cpu is cpu:
                    return tid
        return self.process.pid

    def _step_insn(self, cpu, tid: int) -> tuple[int, int] | None:
        """Execute one instruction; returns (kind, addr) of a watchpoint it hit."""
        S = cpu.state.slots
        pc = S[self._pc]
        hit = self._watch_hit(cpu, pc) if self.watchpoints else None
        # the thread's own flags too (RISC-V: its pointer masking)
        tb = self.engine.translate(pc, DEBUG_SINGLE_INSN_FLAG | S[cpu.flags_slot])
        self._step_pending = tid
        S[self._pc] = tb.fn(S, cpu)
        self._step_pending = None
        return hit

    def _step(self, cpu, tid: int) -> None:
        hit = self._step_insn(cpu, tid)
        if hit is not None:
            self._stop(StopEvent(SIGTRAP, tid, watch_kind=hit[0], watch_addr=hit[1]))
        else:
            self._stop(StopEvent(SIGTRAP, tid))

    def _run_watched(self, cpu, tid: int) -> None:
        """Continue one instruction at a time so that data accesses can be checked."""
        S = cpu.state.slots
        first = True
        while not S[self._exit]:
            if not first and S[self._pc] in self.engine.breakpoints:
                self._stop(StopEvent(SIGTRAP, tid))
                return
            first = False
            hit = self._step_insn(cpu, tid)
            self._step_pending = None
            if hit is not None:
                self._stop(StopEvent(SIGTRAP, tid, watch_kind=hit[0], watch_addr=hit[1]))
                return
        S[self._exit] = 0

    def _watch_hit(self, cpu, pc: int) -> tuple[int, int] | None:
        arch = self.user_arch
        if arch.fetch_insn is None or arch.memory_access is None:
            return None
        try:
            insn = arch.fetch_insn(self.mem, pc)
        except Exception:  # noqa: BLE001 - a bad pc faults when executed, not here
            return None
        access = arch.memory_access(insn, cpu.state)
        if access is None:
            return None
        addr, size, reads, writes = access
        for kind, waddr, wlen in self.watchpoints:
            if addr < waddr + wlen and waddr < addr + size:
                if (kind == WP_WRITE and writes) or (kind == WP_READ and reads) or \
                        (kind == WP_ACCESS and (reads or writes)):
                    return kind, waddr
        return None

    # -- stopping ----------------------------------------------------------------------
    def _stop(self, event: StopEvent) -> None:
        """Called by a thread that is counted in guest code (from inside run_cpu)."""
        with self._cond:
            self._stop_locked(event, in_guest=True)

    def _stop_locked(self, event: StopEvent, in_guest: bool) -> None:
        if self.stopped or self.detached:
            return  # someone else stopped first; this thread just parks
        self.stopped = True
        self.step_tid = None
        self._kick_all()
        self._wait_parked(1 if in_guest else 0)
        self.report(event)

    def _kick_all(self) -> None:
        with self.process.threads_lock:
            cpus = [t.cpu for t in self.process.threads.values()]
        for cpu in cpus:
            cpu.request_exit()

    def _wait_parked(self, allowed: int) -> None:
        # All-stop: give threads in guest code a moment to leave it, so GDB reads
        # registers that hold still.  Threads blocked in syscalls are not waited for.
        self._cond.wait_for(lambda: self._in_guest <= allowed, timeout=PARK_TIMEOUT)

    def interrupt(self) -> None:
        with self._cond:
            if self.stopped:
                return
            self.stopped = True
            self.step_tid = None
            self._kick_all()
            self._wait_parked(0)
            threads = self.threads()
        self.report(StopEvent(SIGINT, threads[0] if threads else None))

    # -- DebugTarget -----------------------------------------------------------------------
    def target_xml(self) -> dict[str, str]:
        return self._xml

    def threads(self) -> list[int]:
        with self.process.threads_lock:
            return sorted(self.process.threads)

    def _state(self, tid: int):
        with self.process.threads_lock:
            t = self.process.threads.get(tid)
        if t is None:
            raise TargetError(f"no thread {tid}", 3)
        return t.cpu.state

    def read_registers(self, thread: int) -> bytes:
        return self.regs.read_core(self._state(thread))

    def write_registers(self, thread: int, data: bytes) -> None:
        self.regs.write_core(self._state(thread), data[:self.regs.core_bytes])

    def read_register(self, thread: int, regno: int) -> bytes:
        return self.regs.read(self._state(thread), regno)

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        self.regs.write(self._state(thread), regno, value)

    def read_memory(self, thread: int, addr: int, length: int) -> bytes:
        if not self.mem.is_mapped(addr, max(length, 1)):
            raise TargetError(f"0x{addr:x} is not mapped", 14)
        return self.mem.read(addr, length)

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        if not self.mem.is_mapped(addr, len(data)):
            raise TargetError(f"0x{addr:x} is not mapped", 14)
        # like ptrace POKE: the debugger writes even to read-only (code) pages
        self.mem.write_initial(addr, data)
        self.engine.invalidate_range(addr, len(data))

    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        if kind in (BP_SOFTWARE, BP_HARDWARE):
            self.engine.breakpoints.add(addr)
            return True
        if kind in (WP_WRITE, WP_READ, WP_ACCESS) and self.user_arch.memory_access:
            with self._cond:
                self.watchpoints.add((kind, addr, max(length, 1)))
            return True
        return False

    def remove_point(self, kind: int, addr: int, length: int) -> bool:
        if kind in (BP_SOFTWARE, BP_HARDWARE):
            self.engine.breakpoints.discard(addr)
            return True
        if kind in (WP_WRITE, WP_READ, WP_ACCESS):
            with self._cond:
                self.watchpoints.discard((kind, addr, max(length, 1)))
            return True
        return False

    def remove_all_points(self) -> None:
        self.engine.breakpoints.clear()
        with self._cond:
            self.watchpoints.clear()

    def resume(self, step_thread: int | None) -> None:
        with self._cond:
            self.step_tid = step_thread
            self.stopped = False
            self._cond.notify_all()

    def detach(self) -> None:
        self.remove_all_points()
        with self._cond:
            self.detached = True
            self.stopped = False
            self.step_tid = None
            self._cond.notify_all()

    def kill(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def thread_description(self, thread: int) -> str:
        return f"guest thread {thread}"

    # -- reported by the user-mode runtime -------------------------------------------------
    def process_exited(self, status: int) -> None:
        """exit_group: tell GDB (``W``) before the emulator process goes away."""
        self.report(StopEvent(exited=status))

    def process_killed(self, signo: int) -> None:
        self.report(StopEvent(killed_by=signo))


def attach(process, first_cpu, spec: str) -> UserModeTarget:
    """Start the stub for ``process`` and wait for GDB, as ``qemu-riscv64 -g`` does.

    The stub interposes on ``run`` of the process's CPUs (``first_cpu`` now, and every
    CPU ``engine.create_cpu`` makes later for new guest threads).
    """
    target = UserModeTarget(process)
    engine = process.engine
    make_cpu = engine.create_cpu

    def hook(cpu) -> None:
        original = cpu.run
        cpu.run = lambda: target.run_cpu(cpu, original)

    def create_cpu():
        cpu = make_cpu()
        hook(cpu)
        return cpu

    hook(first_cpu)
    engine.create_cpu = create_cpu
    process.debugger = target
    target.server = serve(target, spec, wait=True)
    return target
