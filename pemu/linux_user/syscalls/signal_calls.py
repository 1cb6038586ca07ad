"""Signal syscalls: dispositions, masks, sending, waiting, and rt_sigreturn."""

from __future__ import annotations

import errno
import os
import struct

from .. import signals as sg
from .hostcall import host, signed
from .registry import NO_RESULT, syscall
from .time_calls import interruptible_sleep

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGSET_SIZE = 8
_ACTION = struct.Struct("<QQQ")  # riscv64 kernel sigaction: handler, flags, mask
_ACTION_RESTORER = struct.Struct("<QQQQ")  # arm64: handler, flags, restorer, mask
_STACK = struct.Struct("<QiIQ")  # stack_t: sp, flags, (pad), size
MINSIGSTKSZ = 2048


def _valid_signal(sig: int) -> bool:
    return 1 <= sig <= sg.NSIG


def exchange_action(t, actions: list, sig: int, act: int, oact: int,
                    sigsetsize: int) -> int | sg.SigAction | None:
    """rt_sigaction on the table ``actions``: the old action goes out to ``oact``, the
    new one from ``act`` goes in; returns a negative errno, or the new action (None
    when ``act`` is NULL).  The caller holds whatever lock guards the table."""
    if sigsetsize != SIGSET_SIZE or not _valid_signal(sig):
        return -errno.EINVAL
    mem = t.process.mem
    with_restorer = t.process.arch.sigaction_restorer
    layout = _ACTION_RESTORER if with_restorer else _ACTION
    new = None
    if act:
        restorer = 0
        if with_restorer:
            handler, flags, restorer, mask = layout.unpack(mem.read(act, layout.size))
        else:
            handler, flags, mask = layout.unpack(mem.read(act, layout.size))
        if sig in (sg.SIGKILL, sg.SIGSTOP):
            return -errno.EINVAL
        new = sg.SigAction(handler, flags & 0xFFFFFFFF, mask & ~sg.UNBLOCKABLE, restorer)
    old = actions[sig]
    if oact:
        fields = ((old.handler, old.flags, old.restorer, old.mask) if with_restorer
                  else (old.handler, old.flags, old.mask))
        mem.write(oact, layout.pack(*fields))
    if new is not None:
        actions[sig] = new
    return new


@syscall("rt_sigaction")
def sys_rt_sigaction(t, sig, act, oact, sigsetsize):
    state = t.process.signals
    with state.lock:
        new = exchange_action(t, state.actions, sig, act, oact, sigsetsize)
    if isinstance(new, int):
        return new
    if new is not None:
        sg.sync_host_disposition(sig, new)
        if new.handler == sg.SIG_IGN or (new.handler == sg.SIG_DFL
                                         and sig in sg.DEFAULT_IGNORED):
            for thread in list(t.process.threads.values()):
                pending = thread.signals.pending
                for info in [i for i in pending if i.signo == sig]:
                    pending.remove(info)
    return 0


def exchange_mask(mem, sigs, how: int, nset: int, oset: int, sigsetsize: int) -> int:
    """rt_sigprocmask on ``sigs`` (a thread's ThreadSignals, or a vfork child's kept
    aside: vfork_child.py): 0 or a negative errno."""
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    old = sigs.mask
    if nset:
        (value,) = struct.unpack("<Q", mem.read(nset, 8))
        if how == SIG_BLOCK:
            mask = old | value
        elif how == SIG_UNBLOCK:
            mask = old & ~value
        elif how == SIG_SETMASK:
            mask = value
        else:
            return -errno.EINVAL
        if oset:
            mem.check(oset, 8, write=True)
        sigs.mask = mask & ~sg.UNBLOCKABLE
    if oset:
        mem.write(oset, struct.pack("<Q", old))
    return 0


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(t, how, nset, oset, sigsetsize):
    sigs = t.signals
    old = sigs.mask
    ret = exchange_mask(t.process.mem, sigs, how, nset, oset, sigsetsize)
    if sigs.mask & ~old:
        sg.keep_blocked_pending(t.process, sigs.mask & ~old)
    return ret


@syscall("rt_sigreturn")
def sys_rt_sigreturn(t):
    t.process.arch.restore_frame(t)
    return NO_RESULT


@syscall("sigaltstack")
def sys_sigaltstack(t, ss, old_ss):
    mem = t.process.mem
    sigs = t.signals
    sp = t.process.arch.get_sp(t.state)
    on_stack = sigs.on_altstack(sp)
    old = sigs.altstack
    if ss:
        ss_sp, flags, _pad, size = _STACK.unpack(mem.read(ss, _STACK.size))
        if on_stack:
            return -errno.EPERM
        if flags & ~(sg.SS_DISABLE | sg.SS_ONSTACK) & 0x7FFFFFFF:
            return -errno.EINVAL
        if flags & sg.SS_DISABLE:
            new = (0, sg.SS_DISABLE, 0)
        else:
            if size < MINSIGSTKSZ:
                return -errno.ENOMEM
            new = (ss_sp, 0, size)
    if old_ss:
        flags = old[1] | (sg.SS_ONSTACK if on_stack else 0)
        mem.write(old_ss, _STACK.pack(old[0], flags, 0, old[2]))
    if ss:
        sigs.altstack = new
    return 0


@syscall("rt_sigsuspend")
def sys_rt_sigsuspend(t, mask_ptr, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    (mask,) = struct.unpack("<Q", t.process.mem.read(mask_ptr, 8))
    sigs = t.signals
    sigs.saved_mask = sigs.mask
    sigs.mask = mask & ~sg.UNBLOCKABLE
    while sigs.first_deliverable() is None:
        interruptible_sleep(t, 3600.0)
    return -errno.EINTR


@syscall("rt_sigpending")
def sys_rt_sigpending(t, set_ptr, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    bits = 0
    for info in t.signals.pending:
        bits |= sg.bit(info.signo)
    t.process.mem.write(set_ptr, struct.pack("<Q", bits & t.signals.mask))
    return 0


@syscall("rt_sigtimedwait")
def sys_rt_sigtimedwait(t, set_ptr, info_ptr, timeout_ptr, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    mem = t.process.mem
    (wanted,) = struct.unpack("<Q", mem.read(set_ptr, 8))
    deadline = None
    if timeout_ptr:
        sec, nsec = struct.unpack("<qq", mem.read(timeout_ptr, 16))
        deadline = sec + nsec / 1e9
    import time

    end = None if deadline is None else time.monotonic() + deadline
    while True:
        # Cleared before looking: a signal queued after the look sets it again.  (The
        # wanted signals are blocked, so interruptible_sleep, which watches only for
        # deliverable ones, would sleep through them.)
        t.wake.clear()
        for info in list(t.signals.pending):
            if sg.bit(info.signo) & wanted:
                t.signals.pending.remove(info)
                if info_ptr:
                    mem.write(info_ptr, info.pack())
                return info.signo
        if t.signals.first_deliverable() is not None:
            return -errno.EINTR
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            return -errno.EAGAIN
        t.wake.wait(3600.0 if left is None else left)


def _send_to_self(t, sig: int, code: int, target=None) -> int:
    if sig == 0:
        return 0
    info = sg.SigInfo(sig, code, pid=t.process.pid, uid=os.getuid())
    if target is None:
        sg.queue_process_signal(t.process, info)
    else:
        sg.queue_signal(target, info)
    return 0


@syscall("kill")
def sys_kill(t, pid, sig):
    pid = signed(pid, 32)
    if not 0 <= sig <= sg.NSIG:
        return -errno.EINVAL
    if pid == t.process.pid:
        return _send_to_self(t, sig, sg.SI_USER)
    return host("kill", pid, sig)


@syscall("tgkill")
def sys_tgkill(t, tgid, tid, sig):
    if not 0 <= sig <= sg.NSIG:
        return -errno.EINVAL
    if signed(tgid, 32) == t.process.pid:
        target = t.process.threads.get(signed(tid, 32))
        if target is None:
            return -errno.ESRCH
        return _send_to_self(t, sig, sg.SI_TKILL, target)
    return host("tgkill", signed(tgid, 32), signed(tid, 32), sig)


_QUEUED_INFO = struct.Struct("<iii4xiIQ")  # signo, errno, code, _rt: pid, uid, value
SIGINFO_SIZE = 128


def _queue_info(t, pid: int, tid: int | None, sig: int, uinfo: int) -> int:
    """rt_sigqueueinfo / rt_tgsigqueueinfo: a signal with the caller's siginfo."""
    if not 0 <= sig <= sg.NSIG:
        return -errno.EINVAL
    raw = t.process.mem.read(uinfo, SIGINFO_SIZE)
    _signo, _err, code, sender, uid, value = _QUEUED_INFO.unpack_from(raw)
    pid = signed(pid, 32)
    if pid != t.process.pid:
        # another process: the layout is the host's too (the kernel checks the code)
        buf = struct.pack("<i", sig) + raw[4:]
        if tid is None:
            return host("rt_sigqueueinfo", pid, sig, buf)
        return host("rt_tgsigqueueinfo", pid, signed(tid, 32), sig, buf)
    target = None
    if tid is not None:
        target = t.process.threads.get(signed(tid, 32))
        if target is None:
            return -errno.ESRCH
    if sig == 0:
        return 0
    info = sg.SigInfo(sig, code, pid=sender, uid=uid, value=value)
    if target is None:
        sg.queue_process_signal(t.process, info)
    else:
        sg.queue_signal(target, info)
    return 0


@syscall("rt_sigqueueinfo")
def sys_rt_sigqueueinfo(t, pid, sig, uinfo):
    return _queue_info(t, pid, None, sig, uinfo)


@syscall("rt_tgsigqueueinfo")
def sys_rt_tgsigqueueinfo(t, pid, tid, sig, uinfo):
    return _queue_info(t, pid, tid, sig, uinfo)


@syscall("tkill")
def sys_tkill(t, tid, sig):
    target = t.process.threads.get(signed(tid, 32))
    if target is not None:
        return _send_to_self(t, sig, sg.SI_TKILL, target)
    return host("tkill", signed(tid, 32), sig)
