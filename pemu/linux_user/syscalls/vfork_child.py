"""A vfork child run inside its parent's pemu until it execs: no copy of the emulator.

``vfork`` (and glibc's ``posix_spawn``, ``clone(CLONE_VM|CLONE_VFORK)``) makes a child
that shares the parent's memory while the parent sleeps, and that child almost always
does a few small things and then ``execve``.  A host fork of a pemu process copies the
page tables of the whole emulator (tens of MB) and the child tears them down again at
its exec; for a shell that runs a program per command that was most of a command's
cost outside the program itself.

So the child runs here, on a vCPU of its own, in the parent's process (its memory is
the parent's, as the kernel's vfork child's is, and the parent waits, as it does).
What the child does to its own kernel state before the exec is kept aside, not done
to the parent's: its blocked mask, its signal dispositions (a copy of the parent's)
and its descriptor changes (``dup3`` and ``close``, replayed as ``posix_spawn`` file
actions).  At ``execve`` the new program starts with the host's ``posix_spawn``, which
is itself a vfork: the new process gets its own pid, the parent's clone returns it,
an exec that fails returns its errno to the child, which goes on.

Anything else the child asks for (its pid, a write, a fault, a disposition the spawn
cannot express) *materializes* it: a real host fork whose child applies what was kept
aside and carries on as an ordinary pemu process from that instruction, while the
parent waits for it to exec or exit (a close-on-exec pipe), as vfork's parent would.
A child that exits without exec'ing becomes a process that exits with that status.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable

from .. import signals as sg
from ..process import GuestThread
from ..reexec import ExecPlan, host_sigmask
from ..syscall_numbers import GUEST_SYSCALL_NUMBERS
from ..vmem import GuestFault
from .clone_args import (
    CLONE_CLEAR_SIGHAND,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_VFORK,
    CLONE_VM,
)
from .hostcall import fd_arg
from .signal_calls import exchange_action, exchange_mask
from .signalfd import closed, duplicated

_CSIGNAL = 0xFF  # the exit signal's bits
# what a vfork or posix_spawn asks for; anything more (shared descriptors or handlers,
# TLS, tid pointers) takes the ordinary fork path
_HANDLED = CLONE_VM | CLONE_VFORK | _CSIGNAL | CLONE_CLEAR_SIGHAND | CLONE_PIDFD \
    | CLONE_PARENT_SETTID
O_CLOEXEC = 0o2000000
# glibc's own signals (32, 33) are not the guest's to name on the host
_HOST_SIGNALS = [sig for sig in range(1, 65)
                 if sig not in (sg.SIGKILL, sg.SIGSTOP, 32, 33)]
# PEMU_VFORK=0: every vfork is a host fork (for measuring what this saves)
ENABLED = os.environ.get("PEMU_VFORK", "1") != "0"

# (thread, its signal actions, path, argv, envp) -> the host program, or a negative
# errno (proc.py's execve)
ExecPlanner = Callable[[GuestThread, list, int, int, int], "ExecPlan | int"]


class _Materialize(Exception):
    """The child needs a process of its own now."""


class _Exited(Exception):
    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.pid = pid


def vfork_applies(t: GuestThread, flags: int) -> bool:
    """A vfork-like clone this module can run in place."""
    process = t.process
    return (ENABLED and flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM | CLONE_VFORK
            and not flags & ~_HANDLED and process.strace is None
            and getattr(process, "debugger", None) is None and len(process.threads) == 1)


class VforkChild:
    """The child's vCPU and the kernel state it has changed so far."""

    def __init__(self, parent: GuestThread, cpu: object, flags: int,
                 plan_exec: ExecPlanner) -> None:
        self.parent = parent
        self.process = parent.process
        self.thread = GuestThread(self.process, cpu, 0)  # its tid is not known yet
        self.thread.signals.mask = parent.signals.mask
        self.thread.signals.altstack = parent.signals.altstack
        actions = list(self.process.signals.actions)
        if flags & CLONE_CLEAR_SIGHAND:  # posix_spawn's child: no handler survives
            actions = [a if a.handler in (sg.SIG_IGN, sg.SIG_DFL) else sg.SigAction()
                       for a in actions]
        self.actions = actions
        self.changed_actions: set[int] = set()
        # descriptor operations in order, for the spawn or the materialized child
        self.fd_ops: list[tuple[str, int, int]] = []
        self.fd_view: dict[int, bool] = {}  # child's descriptor -> open (where changed)
        self.plan_exec = plan_exec
        arch = self.process.arch
        self._nr_reg, self._arg_regs, self._ret_reg = arch.syscall_regs

    # -- running ---------------------------------------------------------------------
    def run(self) -> int:
        """Run the child until it is a host process (exec'd, exited or materialized);
        returns its pid."""
        arch = self.process.arch
        cpu = self.thread.cpu
        state = cpu.state
        try:
            while True:
                try:
                    cpu.run()
                except arch.trap_class as trap:
                    if not arch.classify_trap(trap, state.pc).syscall:
                        raise _Materialize() from None  # the real process takes it
                    self._syscall(state)
                except GuestFault:
                    raise _Materialize() from None
        except _Exited as done:
            return done.pid
        except _Materialize:
            return self._materialize()

    def _syscall(self, state) -> None:
        nr = state.x(self._nr_reg)
        handler = _CHILD_CALLS.get(nr)
        if handler is None:
            raise _Materialize()
        args = [state.x(r) for r in self._arg_regs]
        try:
            ret = handler(self, *args)
        except GuestFault:
            ret = -errno.EFAULT
        except OSError as e:
            ret = -(e.errno or errno.EIO)
        state.set_x(self._ret_reg, ret)
        state.pc = state.pc + 4

    # -- the calls kept aside ---------------------------------------------------------
    def rt_sigprocmask(self, how: int, nset: int, oset: int, sigsetsize: int, *_) -> int:
        return exchange_mask(self.process.mem, self.thread.signals, how, nset, oset,
                             sigsetsize)

    def rt_sigaction(self, sig: int, act: int, oact: int, sigsetsize: int, *_) -> int:
        new = exchange_action(self.thread, self.actions, sig, act, oact, sigsetsize)
        if isinstance(new, int):
            return new
        if new is not None:
            self.changed_actions.add(sig)
        return 0

    def _is_open(self, fd: int) -> bool:
        if fd in self.fd_view:
            return self.fd_view[fd]
        try:
            os.stat(fd)  # fstat: the parent's table is the child's until it changes it
        except OSError:
            return False
        return True

    def dup3(self, old: int, new: int, flags: int, *_) -> int:
        old, new = fd_arg(old), fd_arg(new)
        if flags & ~O_CLOEXEC or old == new:
            return -errno.EINVAL
        if new < 0 or new >= _fd_limit():
            return -errno.EBADF
        if old < 0 or not self._is_open(old):
            return -errno.EBADF
        self.fd_ops.append(("dup3", old, new, flags))
        self.fd_view[new] = True
        return new

    def close(self, fd: int, *_) -> int:
        fd = fd_arg(fd)
        if fd < 0 or not self._is_open(fd):
            return -errno.EBADF
        self.fd_ops.append(("close", fd, 0, 0))
        self.fd_view[fd] = False
        return 0

    def execve(self, path: int, argv: int, envp: int, *_) -> int:
        plan = self.plan_exec(self.thread, self.actions, path, argv, envp)
        if isinstance(plan, int):
            return plan  # ENOENT and the like: the child goes on, as the kernel's does
        return self._spawn(plan)

    def exit_group(self, status: int, *_) -> int:
        raise _Exited(_exited_process(status & 0xFF))

    # -- becoming a process ------------------------------------------------------------
    def _spawn(self, plan: ExecPlan) -> int:
        """The exec as the host's posix_spawn: raises _Exited with the new pid, or
        returns the errno of an exec that failed."""
        set_default = []
        for sig in _HOST_SIGNALS:
            ignored_here = signal.getsignal(sig) is signal.SIG_IGN
            ignore = self.actions[sig].handler == sg.SIG_IGN
            if ignore and not ignored_here:
                raise _Materialize()  # posix_spawn cannot ask for SIG_IGN
            if ignored_here and not ignore:
                set_default.append(sig)
        actions = []
        for op, a, b, flags in self.fd_ops:
            if op == "close":
                actions.append((os.POSIX_SPAWN_CLOSE, a))
            else:
                actions.append((os.POSIX_SPAWN_DUP2, a, b))
                if flags & O_CLOEXEC:  # gone at the exec it was made for
                    actions.append((os.POSIX_SPAWN_CLOSE, b))
        try:
            pid = os.posix_spawn(plan.program, plan.argv, plan.env, file_actions=actions,
                                 setsigmask=host_sigmask(self.thread.signals.mask),
                                 setsigdef=set_default)
        except OSError as e:
            return -(e.errno or errno.ENOEXEC)
        raise _Exited(pid)

    def _materialize(self) -> int:
        """A host fork that goes on as the child from where it stopped (the ecall or the
        faulting instruction runs again there); the parent waits for its exec or exit."""
        done_r, done_w = os.pipe2(O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(done_r)
            try:
                self._become_process()
            finally:
                os._exit(127)  # not reached: run_thread ends the process
        os.close(done_w)
        while True:  # EOF: the child exec'd or exited (its copy was close-on-exec)
            try:
                if not os.read(done_r, 64):
                    break
            except InterruptedError:
                continue
        os.close(done_r)
        return pid

    def _become_process(self) -> None:
        process = self.process
        child = self.thread
        process.after_fork_child(child)
        for op, a, b, flags in self.fd_ops:
            if op == "close":
                os.close(a)
                closed(process, a)
            else:
                os.dup2(a, b, inheritable=not flags & O_CLOEXEC)
                duplicated(process, a, b)
        actions = process.signals.actions
        for sig in range(1, len(actions)):
            if actions[sig] is not self.actions[sig]:
                actions[sig] = self.actions[sig]
                sg.sync_host_disposition(sig, actions[sig])
        process.run_thread(child)


def _fd_limit() -> int:
    return os.sysconf("SC_OPEN_MAX")


def _exited_process(status: int) -> int:
    """A child that exits without exec'ing still is a process with a pid and a status
    for its parent's wait: a host fork that exits at once (rare: a failed exec)."""
    pid = os.fork()
    if pid == 0:
        os._exit(status)
    return pid


def _named(table: dict[str, Callable]) -> dict[int, Callable]:
    return {GUEST_SYSCALL_NUMBERS[name]: fn for name, fn in table.items()}


_CHILD_CALLS = _named({
    "rt_sigprocmask": VforkChild.rt_sigprocmask,
    "rt_sigaction": VforkChild.rt_sigaction,
    "dup3": VforkChild.dup3,
    "close": VforkChild.close,
    "execve": VforkChild.execve,
    "exit": VforkChild.exit_group,  # the only thread: its exit ends the process
    "exit_group": VforkChild.exit_group,
})


def run_in_place(t: GuestThread, flags: int, plan_exec: ExecPlanner,
                 set_registers: Callable[[object], None]) -> int:
    """The vfork child of ``t`` run here until it is a process of its own; its pid.
    ``set_registers`` gives the child's vCPU its registers (clone's return of 0)."""
    process = t.process
    if process.vfork_cpu is None:  # one vCPU serves every vfork child in turn
        process.vfork_cpu = process.engine.create_cpu()
    set_registers(process.vfork_cpu)
    return VforkChild(t, process.vfork_cpu, flags, plan_exec).run()
