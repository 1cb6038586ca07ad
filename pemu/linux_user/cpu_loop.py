"""The per-thread loop: run translated code, service ecalls, traps and signals."""

from __future__ import annotations

import os
import sys
import threading
import traceback

from . import signals as sg
from .loader import SIGTRAMP_ADDR
from .process import GuestThread, ProcessExit, ThreadExit
from .syscalls import NO_RESULT, RESTART, RESTART_NOINTR, dispatch
from .syscalls.registry import SYSCALLS, syscall_name
from .vmem import GuestFault


def exit_process(process, status: int) -> None:
    debugger = getattr(process, "debugger", None)
    if debugger is not None:
        debugger.process_exited(status)  # gdb gets W<status>, not a dropped connection
    if process.strace is not None:
        process.strace.flush()
    process.engine.log.engine_stats(f"pemu-{process.arch.name}", process.engine.all_stats())
    process.engine.save_translations()  # os._exit skips atexit
    try:
        sys.stderr.flush()
    finally:
        os._exit(status)


def run_thread(t: GuestThread) -> None:
    """Run a guest thread until it exits; the process ends when its last thread does."""
    try:
        _loop(t)
    except ThreadExit:
        if threading.current_thread() is threading.main_thread():
            # The process lives on while other threads run; keep forwarding signals.
            threading.Event().wait()
    except ProcessExit as e:
        exit_process(t.process, e.status)
    except Exception:  # an emulator bug: report it and end the process cleanly
        sys.stderr.write("pemu: internal error in the user-mode loop\n")
        traceback.print_exc()
        exit_process(t.process, 1)


def _loop(t: GuestThread) -> None:
    cpu = t.cpu
    arch = t.process.arch
    while True:
        if t.signals.pending:
            deliver_signals(t)
        try:
            cpu.run()
        except arch.trap_class as trap:
            action = arch.classify_trap(trap, t.state.pc)
            if action.syscall:
                do_syscall(t)
            else:
                force_signal(t, sg.SigInfo(action.signo, action.code, addr=action.addr))
        except GuestFault as fault:
            code = sg.SEGV_ACCERR if fault.mapped else sg.SEGV_MAPERR
            force_signal(t, sg.SigInfo(sg.SIGSEGV, code, addr=fault.addr))


def _report_unimplemented(process, nr: int) -> None:
    """-d unimp: each unknown syscall once (the guest got ENOSYS), in QEMU's words."""
    seen = process.unimplemented_syscalls
    if nr in seen:
        return
    seen.add(nr)
    log = process.engine.log
    if log.enabled("unimp"):
        log.write(f"Unsupported syscall: {nr} ({syscall_name(nr)})")


def do_syscall(t: GuestThread) -> None:
    state = t.state
    nr_reg, arg_regs, ret_reg = t.process.arch.syscall_regs
    nr = state.x(nr_reg)
    args = tuple(state.x(r) for r in arg_regs)
    strace = t.process.strace
    if strace is not None:
        strace.before(t.process.pid, nr, args)
    ret = dispatch(t, nr, args)
    if nr not in SYSCALLS:
        _report_unimplemented(t.process, nr)
    if strace is not None:
        strace.after(nr, ret)
    if ret is NO_RESULT or ret == RESTART_NOINTR:
        return  # (RESTART_NOINTR: the ecall runs again after the signal, always)
    if ret == RESTART:
        info = t.signals.first_deliverable()
        if info is not None:
            action = t.process.signals.actions[info.signo]
            if action.handler not in (sg.SIG_DFL, sg.SIG_IGN) and \
                    not action.flags & sg.SA_RESTART:
                state.set_x(ret_reg, -4)  # -EINTR
                state.pc = state.pc + 4
        return  # otherwise the ecall runs again after the signal
    state.set_x(ret_reg, ret)
    state.pc = state.pc + 4


def force_signal(t: GuestThread, info: sg.SigInfo) -> None:
    """A synchronous fault: blocked or ignored means the default action (the kernel's
    force_sig_fault), otherwise the handler runs before anything else."""
    action = t.process.signals.actions[info.signo]
    blocked = t.signals.mask & sg.bit(info.signo)
    if action.handler in (sg.SIG_DFL, sg.SIG_IGN) or blocked:
        sg.die_by_signal(t.process, info.signo)
    t.signals.pending.appendleft(info)
    deliver_signals(t)


def deliver_signals(t: GuestThread) -> None:
    sigs = t.signals
    process = t.process
    while True:
        info = sigs.first_deliverable()
        if info is None:
            break
        sigs.pending.remove(info)
        sig = info.signo
        action = process.signals.actions[sig]
        if action.handler == sg.SIG_IGN:
            continue
        if action.handler == sg.SIG_DFL:
            if sig in sg.DEFAULT_IGNORED:
                continue
            if sig in sg.DEFAULT_STOP:
                os.kill(os.getpid(), sg.SIGSTOP)
                continue
            sg.die_by_signal(process, sig)
        old_mask = sigs.saved_mask if sigs.saved_mask is not None else sigs.mask
        sigs.saved_mask = None
        try:
            process.arch.setup_frame(t, info, action, old_mask, SIGTRAMP_ADDR)
        except GuestFault:
            sg.die_by_signal(process, sg.SIGSEGV)
        new_mask = old_mask | action.mask
        if not action.flags & sg.SA_NODEFER:
            new_mask |= sg.bit(sig)
        sigs.mask = new_mask & ~sg.UNBLOCKABLE
        if action.flags & sg.SA_RESETHAND:
            process.signals.actions[sig] = sg.SigAction()
    if sigs.saved_mask is not None and sigs.first_deliverable() is None:
        sigs.mask = sigs.saved_mask
        sigs.saved_mask = None
