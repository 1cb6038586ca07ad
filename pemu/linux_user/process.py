"""The emulated process and its threads: the state every syscall module shares."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .arches import ARCHES
from .signals import SignalState, ThreadSignals
from .vmem import GuestVirtualMemory


@dataclass
class Options:
    """How pemu was started; execve re-runs pemu with the same options."""

    prefix: str | None = None  # -L sysroot
    strace: bool = False
    log_items: list[str] = field(default_factory=list)
    log_file: str | None = None
    cpu: str | None = None
    tcg_backend: str | None = None  # -accel tcg,backend=NAME (None: the engine's default)
    uname_release: str | None = None  # -r: the kernel release uname() reports
    exec_natively: bool = False  # execve goes to the kernel (binfmt_misc runs pemu again)
    arch: str = "riscv64"  # the guest architecture (arches.ARCHES), by entry point


class ThreadExit(Exception):
    """The current guest thread has called exit()."""


class ProcessExit(Exception):
    """The guest called exit_group(); status is the exit code."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GuestThread:
    """One guest thread: a vCPU plus its kernel-side state."""

    def __init__(self, process: Process, cpu: object, tid: int) -> None:
        self.process = process
        self.cpu = cpu
        self.tid = tid
        self.signals = ThreadSignals()
        self.clear_child_tid = 0
        self.robust_list = 0  # the head set_robust_list registered (robust_list.py)
        self.name = b"pemu"
        # Set whenever a signal is queued for this thread: emulated blocking calls
        # (futex, nanosleep, sigsuspend) wait on it so that signals interrupt them.
        self.wake = threading.Event()

    @property
    def state(self):  # RiscvCPUState
        return self.cpu.state


class Process:
    """Address space, engine, signal dispositions and the thread list of one guest."""

    def __init__(self, mem: GuestVirtualMemory, engine: object, options: Options,
                 exe_path: str, run_thread: Callable[[GuestThread], None]) -> None:
        self.mem = mem
        # cpu_loop.run_thread, handed in: clone() starts threads with it, and the cpu
        # loop itself dispatches to the syscalls, so they cannot import it.
        self.run_thread = run_thread
        self.engine = engine
        self.options = options
        self.unimplemented_syscalls: set[int] = set()  # reported once each (-d unimp)
        self.exe_path = exe_path  # absolute host path of the running program
        self.brk_start = 0
        self.brk = 0
        self.auxv: list[tuple[int, int]] = []
        self.argv: list[bytes] = []  # the guest's arguments (/proc/self/cmdline)
        self.signals = SignalState()
        self.threads: dict[int, GuestThread] = {}
        self.threads_lock = threading.Lock()
        self.mm_lock = threading.RLock()
        self.pid = os.getpid()
        self.strace = None  # set by main when -strace is on
        self.futexes = None  # FutexTable, set by main
        self.arch = ARCHES[options.arch]  # the guest architecture's LinuxArch
        # a second thread was started: the tagged address ABI's PMLEN is fixed
        # (tagged_addr.py; the ABI's PMLEN itself is mem.tag_bits)
        self.tagged_addr_locked = False
        self.vfork_cpu = None  # the vCPU vfork children run on (syscalls/vfork_child.py)

    def add_thread(self, thread: GuestThread) -> None:
        with self.threads_lock:
            self.threads[thread.tid] = thread

    def remove_thread(self, thread: GuestThread) -> int:
        """Forget a thread; returns how many remain."""
        with self.threads_lock:
            self.threads.pop(thread.tid, None)
            return len(self.threads)

    def main_thread(self) -> GuestThread | None:
        with self.threads_lock:
            return self.threads.get(self.pid) or next(iter(self.threads.values()), None)

    def after_fork_child(self, survivor: GuestThread) -> None:
        """In a fork child only the forking thread survives, and its tid is the new pid."""
        self.pid = os.getpid()
        self.threads_lock = threading.Lock()
        self.mm_lock = threading.RLock()
        survivor.tid = self.pid
        self.threads = {self.pid: survivor}
