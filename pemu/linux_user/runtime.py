"""Putting a guest process together: memory, engine, image, stack, first thread."""

from __future__ import annotations

import os
import sys

from pemu.accel.tcg.engine import TCGEngine
from pemu.accel.tcg.log import TCGLog
from pemu.gdbstub.linux_user import attach

from . import signals as sg
from . import warm_start
from .arches import ARCHES
from .cpu_loop import run_thread
from .initial_stack import setup_stack
from .loader import SIGTRAMP_ADDR, load_program
from .process import GuestThread, Options, Process
from .strace import Strace
from .syscalls.sync import FutexTable
from .vmem import PROT_EXEC, PROT_READ, GuestVirtualMemory


def _make_log(opts: Options) -> TCGLog:
    items = [i for i in opts.log_items if i != "strace"]
    if "strace" in opts.log_items:
        opts.strace = True
    out = open(opts.log_file, "a", buffering=1) if opts.log_file else None  # noqa: SIM115
    return TCGLog(items, out)


def start_process(opts: Options, prog: str, argv: list[str], envp: list[bytes],
                  ignored: list[int], sigmask: int, gdb: str | None = None,
                  program_fd: int | None = None) -> int:
    """Load ``prog`` and run it; returns only on a load error (raises ElfError/OSError).

    ``program_fd`` is the program already opened by binfmt_misc (flags O/C): it is read
    through that descriptor, since the file may be executable but not readable."""
    arch = ARCHES[opts.arch]
    if gdb and not arch.gdb_stub:
        raise ValueError(f"-g: the gdb stub has no {arch.name} register description yet")
    # a process forked from the binfmt server: its prepared address space and engine,
    # with the translation cache's blocks already installed (warm_start.py)
    prepared = warm_start.take(opts)
    mem = prepared.mem if prepared is not None else GuestVirtualMemory()
    image = load_program(mem, prog if program_fd is None else program_fd, opts.prefix,
                         os.path.abspath(prog), arch.elf_machine, arch.elf_machine_name)
    log = _make_log(opts)  # a bad -d item raises LogError (a ValueError) before running
    if prepared is not None:
        engine = prepared.engine
        engine.use_log(log)
    else:
        engine = TCGEngine(mem, arch.make_target(opts.cpu),
                           backend=opts.tcg_backend or "auto", log=log,
                           keep_translations=True)
    exe_path = os.path.abspath(prog)
    process = Process(mem, engine, opts, exe_path, run_thread)
    process.futexes = FutexTable()
    if opts.strace:
        process.strace = Strace(log.out.fileno() if opts.log_file else 2)
    process.brk_start = process.brk = image.start_brk
    mem.map_anonymous(SIGTRAMP_ADDR, 4096, PROT_READ | PROT_EXEC)
    mem.write_initial(SIGTRAMP_ADDR, arch.trampoline_code)
    process.argv = [os.fsencode(a) for a in argv]
    sp, process.auxv = setup_stack(mem, image, process.argv, envp,
                                   os.fsencode(prog), arch.name.encode(),
                                   arch.hwcap_for_cpu(opts.cpu) if arch.hwcap_for_cpu
                                   else arch.hwcap)
    cpu = engine.create_cpu()
    arch.set_sp(cpu.state, sp)
    cpu.state.pc = image.start_pc
    thread = GuestThread(process, cpu, process.pid)
    thread.signals.mask = sigmask & ~sg.UNBLOCKABLE
    process.add_thread(thread)
    sg.init_host_signals(process)
    for sig in ignored:
        process.signals.actions[sig] = sg.SigAction(sg.SIG_IGN)
    sg.host_dispositions_follow_guest(process)
    sg.keep_blocked_pending(process, thread.signals.mask)
    sys.stdout.flush()
    if gdb:
        attach(process, cpu, gdb)  # waits for gdb to connect, as qemu-riscv64 -g does
    run_thread(thread)
    return 0
