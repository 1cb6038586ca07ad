"""Processes and threads: clone (threads and fork), exit, wait, execve, ids."""

from __future__ import annotations

import errno
import os
import struct
import threading

from .. import signals as sg
from ..process import GuestThread, ProcessExit, ThreadExit
from ..reexec import ExecPlan, exec_guest, plan_exec
from .clone_args import (
    CLONE_CHILD_CLEARTID,
    CLONE_CHILD_SETTID,
    CLONE_CLEAR_SIGHAND,
    CLONE_INTO_CGROUP,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SETTLS,
    CLONE_THREAD,
    CLONE_VM,
    read_clone_args,
)
from .hostcall import guest_path, host, opt_in_ptr, opt_out_ptr, signed
from .registry import syscall
from .robust_list import exit_robust_list
from .sync import wake_everywhere
from .vfork_child import run_in_place, vfork_applies

PIDFD_THREAD = os.O_EXCL  # pidfd_open: a pidfd for one thread (Linux 6.9)


@syscall("getpid")
def sys_getpid(t):
    return t.process.pid


@syscall("gettid")
def sys_gettid(t):
    return t.tid


@syscall("getppid")
def sys_getppid(t):
    return os.getppid()


@syscall("set_tid_address")
def sys_set_tid_address(t, tidptr):
    t.clear_child_tid = tidptr
    return t.tid


def _write_tid(t, addr: int, tid: int) -> None:
    if addr:
        t.process.mem.write(addr, struct.pack("<i", tid))


@syscall("clone")
def sys_clone(t, flags, newsp, parent_tid, tls, child_tid):
    # riscv64 uses the generic argument order with tls before child_tid (the kernel's
    # CONFIG_CLONE_BACKWARDS layout; glibc's clone.S passes a3 = tls, a4 = ctid)
    flags &= 0xFFFFFFFF  # clone() takes an unsigned long but only its low half counts
    if flags & CLONE_PIDFD:
        if flags & CLONE_PARENT_SETTID:  # both would store through parent_tid
            return -errno.EINVAL
        return _clone(t, flags, newsp, tls, child_tid, parent_tid=0, pidfd_ptr=parent_tid)
    return _clone(t, flags, newsp, tls, child_tid, parent_tid, pidfd_ptr=0)


def _clone(t, flags: int, newsp: int, tls: int, child_tid: int, parent_tid: int,
           pidfd_ptr: int) -> int:
    """The one clone path behind clone and clone3: a host thread or a fork."""
    if flags & CLONE_THREAD:
        if not flags & CLONE_VM:
            return -errno.EINVAL
        tid = _clone_thread(t, flags, newsp, parent_tid, child_tid, tls)
        pidfd_flags = PIDFD_THREAD
    elif vfork_applies(t, flags):
        tid = run_in_place(t, flags, _plan_exec, lambda cpu: _child_registers(
            t, cpu, flags, newsp, tls))
        if flags & CLONE_PARENT_SETTID:
            _write_tid(t, parent_tid, tid)
        pidfd_flags = 0
    else:
        tid = _fork(t, flags, newsp, parent_tid, child_tid, tls)
        pidfd_flags = 0
        if tid == 0:
            return 0
    if flags & CLONE_PIDFD:
        # The kernel makes the pidfd with the task; opened right after, it names the
        # same task (a child that already exited is a zombie until it is waited for).
        fd = host("pidfd_open", tid, pidfd_flags)
        _write_tid(t, pidfd_ptr, fd if fd >= 0 else -1)
    return tid


def _child_registers(t, cpu, flags: int, newsp: int, tls: int) -> None:
    state = cpu.state
    state.copy_from(t.state)
    arch = t.process.arch
    arch.reset_thread(state)
    state.set_x(arch.syscall_regs[2], 0)
    state.pc = t.state.pc + 4  # past the ecall / svc
    if newsp:
        arch.set_sp(state, newsp)
    if flags & CLONE_SETTLS:
        arch.set_tls(state, tls)


def _clone_thread(t, flags, newsp, parent_tid, child_tid, tls) -> int:
    process = t.process
    process.tagged_addr_locked = True  # as Linux's MM_CONTEXT_LOCK_PMLEN
    cpu = process.engine.create_cpu()
    _child_registers(t, cpu, flags, newsp, tls)
    started = threading.Event()
    go = threading.Event()
    holder: dict[str, GuestThread] = {}

    def body() -> None:
        child = GuestThread(process, cpu, threading.get_native_id())
        child.signals.mask = t.signals.mask
        holder["thread"] = child
        started.set()
        go.wait()
        process.run_thread(child)

    host_thread = threading.Thread(target=body, name="guest-thread", daemon=True)
    host_thread.start()
    started.wait()
    child = holder["thread"]
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    if flags & CLONE_PARENT_SETTID:
        _write_tid(t, parent_tid, child.tid)
    if flags & CLONE_CHILD_SETTID:
        _write_tid(t, child_tid, child.tid)
    process.add_thread(child)
    go.set()
    return child.tid


def _fork(t, flags, newsp, parent_tid, child_tid, tls) -> int:
    process = t.process
    if process.strace is not None:
        process.strace.flush()
    pid = os.fork()
    if pid == 0:
        process.after_fork_child(t)
        t.robust_list = 0  # the kernel forgets it in a child; glibc registers it again
        if newsp:
            process.arch.set_sp(t.state, newsp)
        if flags & CLONE_SETTLS:
            process.arch.set_tls(t.state, tls)
        if flags & CLONE_CHILD_SETTID:
            _write_tid(t, child_tid, t.tid)
        if flags & CLONE_CHILD_CLEARTID:
            t.clear_child_tid = child_tid
        if flags & CLONE_CLEAR_SIGHAND:  # posix_spawn's child: no handler survives
            sg.reset_caught_to_default(process)
        return 0
    if flags & CLONE_PARENT_SETTID:
        _write_tid(t, parent_tid, pid)
    return pid


@syscall("clone3")
def sys_clone3(t, args, size):
    parsed = read_clone_args(t.process.mem, args, size)
    if isinstance(parsed, int):
        return parsed
    if parsed.set_tid_size:
        # choosing the child's pid needs CAP_CHECKPOINT_RESTORE over the host's pid
        # namespace, which pemu does not take on the guest's behalf
        return -errno.EPERM
    if parsed.flags & CLONE_INTO_CGROUP:
        return -errno.EOPNOTSUPP
    newsp = parsed.stack + parsed.stack_size if parsed.stack else 0
    return _clone(t, parsed.flags, newsp, parsed.tls, parsed.child_tid, parsed.parent_tid,
                  pidfd_ptr=parsed.pidfd)


def end_thread(t) -> None:
    """What the kernel does when a thread goes away: its robust locks are marked as
    orphaned, then CLEARTID and the futex wake."""
    exit_robust_list(t)
    if t.clear_child_tid:
        try:
            t.process.mem.write(t.clear_child_tid, b"\0\0\0\0")
            wake_everywhere(t.process, t.clear_child_tid, 1)
        except Exception:  # a bad pointer is the guest's problem, not ours
            pass


@syscall("exit")
def sys_exit(t, status):
    process = t.process
    end_thread(t)
    if process.remove_thread(t) == 0:
        raise ProcessExit(status & 0xFF)
    raise ThreadExit()


@syscall("exit_group")
def sys_exit_group(t, status):
    # every thread ends, and the kernel walks each one's robust list: a lock in memory
    # shared with another process must not stay owned by a dead process
    with t.process.threads_lock:
        threads = list(t.process.threads.values())
    for thread in threads:
        exit_robust_list(thread)
    raise ProcessExit(status & 0xFF)


@syscall("wait4")
def sys_wait4(t, pid, status, options, rusage):
    return host("wait4", signed(pid, 32), opt_out_ptr(t, status, 4), options,
                opt_out_ptr(t, rusage, 144))


@syscall("waitid")
def sys_waitid(t, which, pid, infop, options, rusage):
    return host("waitid", which, signed(pid, 32), opt_out_ptr(t, infop, 128), options,
                opt_out_ptr(t, rusage, 144))


def _string_array(t, addr: int) -> list[bytes]:
    mem = t.process.mem
    out = []
    while addr:
        (ptr,) = struct.unpack("<Q", mem.read(addr, 8))
        if not ptr:
            break
        out.append(mem.read_cstring(ptr, 1 << 17))
        addr += 8
        if len(out) > 1 << 16:
            raise OSError(errno.E2BIG, "too many arguments")
    return out


@syscall("execve")
def sys_execve(t, path, argv, envp):
    raw_path = t.process.mem.read_cstring(path, 4096)
    return _exec(t, raw_path, guest_path(t, path), argv, envp)


def _ignored_across_exec(actions: list) -> list[int]:
    """The ignored signals a new pemu is told of: all of them (its -pemu-sigign
    replaces what it would find on the host, and Python resets SIGPIPE and SIGXFSZ)."""
    return [s for s in range(1, len(actions)) if actions[s].handler == sg.SIG_IGN]


def _exec(t, raw_path: bytes, host_path: bytes, argv: int, envp: int) -> int:
    args = _string_array(t, argv)
    env = _string_array(t, envp)
    return exec_guest(t.process, raw_path, host_path, args, env,
                      ignored=_ignored_across_exec(t.process.signals.actions),
                      sigmask=t.signals.mask)


def _plan_exec(t, actions: list, path: int, argv: int, envp: int) -> ExecPlan | int:
    """execve of a vfork child run in place: what to spawn (vfork_child.py)."""
    raw_path = t.process.mem.read_cstring(path, 4096)
    return plan_exec(t.process, raw_path, guest_path(t, path), _string_array(t, argv),
                     _string_array(t, envp), ignored=_ignored_across_exec(actions),
                     sigmask=t.signals.mask)


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000


@syscall("execveat")
def sys_execveat(t, dirfd, path, argv, envp, flags):
    dirfd = signed(dirfd, 32)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    raw_path = t.process.mem.read_cstring(path, 4096)
    if not raw_path:
        if not flags & AT_EMPTY_PATH:
            return -errno.ENOENT
        if dirfd < 0:
            return -errno.EBADF
        # the descriptor itself (fexecve); a script sees it as /dev/fd/N, as the kernel's
        return _exec(t, f"/dev/fd/{dirfd}".encode(), f"/proc/self/fd/{dirfd}".encode(),
                     argv, envp)
    if raw_path.startswith(b"/") or dirfd == AT_FDCWD:
        host_path = guest_path(t, path)
    else:
        # relative to a directory descriptor: its path now, as the descriptor itself
        # may be close-on-exec and gone by the time the next pemu opens the program
        try:
            directory = os.readlink(f"/proc/self/fd/{dirfd}")
        except OSError:
            return -errno.EBADF
        if not os.path.isdir(directory):
            return -errno.ENOTDIR
        host_path = os.path.join(os.fsencode(directory), raw_path)
        raw_path = f"/dev/fd/{dirfd}/".encode() + raw_path
    if flags & AT_SYMLINK_NOFOLLOW and os.path.islink(host_path):
        return -errno.ELOOP
    return _exec(t, raw_path, host_path, argv, envp)


@syscall("pidfd_open")
def sys_pidfd_open(t, pid, flags):
    return host("pidfd_open", signed(pid, 32), flags)


@syscall("pidfd_getfd")
def sys_pidfd_getfd(t, pidfd, targetfd, flags):
    return host("pidfd_getfd", signed(pidfd, 32), signed(targetfd, 32), flags)


@syscall("pidfd_send_signal")
def sys_pidfd_send_signal(t, pidfd, sig, info, flags):
    # siginfo_t is the same 128 bytes on both sides; a pidfd of pemu's own process
    # reaches the guest as any host signal does (signals.forward_host_signal)
    return host("pidfd_send_signal", signed(pidfd, 32), sig, opt_in_ptr(t, info, 128), flags)
