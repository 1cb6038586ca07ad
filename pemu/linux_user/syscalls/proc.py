"""Processes and threads: clone (threads and fork), exit, wait, execve, ids."""

from __future__ import annotations

import errno
import os
import struct
import threading

from .. import signals as sg
from ..process import GuestThread, ProcessExit, ThreadExit
from ..reexec import exec_guest
from .hostcall import guest_path, host, opt_out_ptr, signed
from .registry import syscall

CLONE_VM = 0x100
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_CHILD_SETTID = 0x1000000


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


@syscall("set_robust_list")
def sys_set_robust_list(t, head, length):
    if length != 24:
        return -errno.EINVAL
    t.robust_list = (head, length)
    return 0


@syscall("get_robust_list")
def sys_get_robust_list(t, pid, head_ptr, len_ptr):
    head, length = t.robust_list
    t.process.mem.write(head_ptr, struct.pack("<Q", head))
    t.process.mem.write(len_ptr, struct.pack("<Q", length))
    return 0


def _write_tid(t, addr: int, tid: int) -> None:
    if addr:
        t.process.mem.write(addr, struct.pack("<i", tid))


@syscall("clone")
def sys_clone(t, flags, newsp, parent_tid, tls, child_tid):
    # riscv64 uses the generic argument order with tls before child_tid (the kernel's
    # CONFIG_CLONE_BACKWARDS layout; glibc's clone.S passes a3 = tls, a4 = ctid)
    if flags & CLONE_THREAD:
        if not flags & CLONE_VM:
            return -errno.EINVAL
        return _clone_thread(t, flags, newsp, parent_tid, child_tid, tls)
    return _fork(t, flags, newsp, parent_tid, child_tid, tls)


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
        if newsp:
            process.arch.set_sp(t.state, newsp)
        if flags & CLONE_SETTLS:
            process.arch.set_tls(t.state, tls)
        if flags & CLONE_CHILD_SETTID:
            _write_tid(t, child_tid, t.tid)
        if flags & CLONE_CHILD_CLEARTID:
            t.clear_child_tid = child_tid
        return 0
    if flags & CLONE_PARENT_SETTID:
        _write_tid(t, parent_tid, pid)
    return pid


@syscall("clone3")
def sys_clone3(t, args, size):
    return -errno.ENOSYS  # glibc falls back to clone


def end_thread(t) -> None:
    """What the kernel does when a thread goes away: CLEARTID and the futex wake."""
    if t.clear_child_tid:
        try:
            t.process.mem.write(t.clear_child_tid, b"\0\0\0\0")
            t.process.futexes.wake(t.clear_child_tid, 1)
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
    host_path = guest_path(t, path)
    args = _string_array(t, argv)
    env = _string_array(t, envp)
    return exec_guest(t.process, raw_path, host_path, args, env,
                      ignored=[s for s in (sg.SIGPIPE, sg.SIGXFSZ)
                               if t.process.signals.actions[s].handler == sg.SIG_IGN],
                      sigmask=t.signals.mask)


@syscall("execveat")
def sys_execveat(t, dirfd, path, argv, envp, flags):
    if signed(dirfd, 32) != -100 or flags:
        return -errno.ENOSYS
    return sys_execve(t, path, argv, envp)
