"""Identity, limits, scheduling and system information."""

from __future__ import annotations

import errno
import os

from ..tagged_addr import (
    PR_GET_TAGGED_ADDR_CTRL,
    PR_SET_TAGGED_ADDR_CTRL,
    get_tagged_addr_ctrl,
    set_tagged_addr_ctrl,
)
from .hostcall import host, in_ptr, opt_in_ptr, opt_out_ptr, out_ptr, signed
from .registry import syscall

UTSNAME_FIELD = 65


@syscall("uname")
def sys_uname(t, buf):
    u = os.uname()
    release = t.process.options.uname_release or u.release  # -r / QEMU_UNAME
    fields = [u.sysname, u.nodename, release, u.version, t.process.arch.name, "(none)"]
    data = b"".join(os.fsencode(f)[: UTSNAME_FIELD - 1].ljust(UTSNAME_FIELD, b"\0")
                    for f in fields)
    t.process.mem.write(buf, data)
    return 0


@syscall("sysinfo")
def sys_sysinfo(t, info):
    return host("sysinfo", out_ptr(t, info, 112))


@syscall("getrandom")
def sys_getrandom(t, buf, count, flags):
    return host("getrandom", out_ptr(t, buf, count), count, flags)


@syscall("getcpu")
def sys_getcpu(t, cpu, node, cache):
    return host("getcpu", opt_out_ptr(t, cpu, 4), opt_out_ptr(t, node, 4), 0)


def _simple(name: str, nargs: int) -> None:
    """Calls whose arguments are plain integers."""
    syscall(name, nargs)(lambda t, *args: host(name, *args))


for _name, _nargs in [
    ("getuid", 0), ("geteuid", 0), ("getgid", 0), ("getegid", 0), ("setuid", 1),
    ("setgid", 1), ("setreuid", 2), ("setregid", 2), ("setresuid", 3), ("setresgid", 3),
    ("setfsuid", 1), ("setfsgid", 1), ("setpgid", 2), ("getpgid", 1), ("getsid", 1),
    ("setsid", 0), ("getpriority", 2), ("setpriority", 3), ("sched_getscheduler", 1),
    ("sched_get_priority_max", 1), ("sched_get_priority_min", 1), ("personality", 1),
    ("sched_yield", 0),
]:
    _simple(_name, _nargs)


@syscall("getresuid")
def sys_getresuid(t, r, e, s):
    return host("getresuid", out_ptr(t, r, 4), out_ptr(t, e, 4), out_ptr(t, s, 4))


@syscall("getresgid")
def sys_getresgid(t, r, e, s):
    return host("getresgid", out_ptr(t, r, 4), out_ptr(t, e, 4), out_ptr(t, s, 4))


@syscall("getgroups")
def sys_getgroups(t, size, groups):
    size = signed(size, 32)
    if size < 0:
        return -errno.EINVAL
    return host("getgroups", size, opt_out_ptr(t, groups, size * 4) if size else 0)


@syscall("setgroups")
def sys_setgroups(t, size, groups):
    return host("setgroups", size, in_ptr(t, groups, (size & 0xFFFF) * 4))


@syscall("getrusage")
def sys_getrusage(t, who, usage):
    return host("getrusage", signed(who, 32), out_ptr(t, usage, 144))


@syscall("getrlimit")
def sys_getrlimit(t, resource, rlim):
    return host("getrlimit", resource, out_ptr(t, rlim, 16))


@syscall("setrlimit")
def sys_setrlimit(t, resource, rlim):
    return host("setrlimit", resource, in_ptr(t, rlim, 16))


@syscall("prlimit64")
def sys_prlimit64(t, pid, resource, new, old):
    return host("prlimit64", signed(pid, 32), resource, opt_in_ptr(t, new, 16),
                opt_out_ptr(t, old, 16))


@syscall("sched_getaffinity")
def sys_sched_getaffinity(t, pid, size, mask):
    return host("sched_getaffinity", signed(pid, 32), size, out_ptr(t, mask, size))


@syscall("sched_setaffinity")
def sys_sched_setaffinity(t, pid, size, mask):
    return host("sched_setaffinity", signed(pid, 32), size, in_ptr(t, mask, size))


@syscall("sched_getparam")
def sys_sched_getparam(t, pid, param):
    return host("sched_getparam", signed(pid, 32), out_ptr(t, param, 4))


PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16


@syscall("prctl")
def sys_prctl(t, option, arg2, arg3, arg4, arg5):
    if option == PR_SET_NAME:
        t.name = t.process.mem.read_cstring(arg2, 16)[:15]
        return 0
    if option == PR_GET_NAME:
        t.process.mem.write(arg2, t.name.ljust(16, b"\0"))
        return 0
    if option == PR_SET_PDEATHSIG:
        return host("prctl", option, arg2, 0, 0, 0)
    if option == PR_GET_DUMPABLE:
        return 1
    if option == PR_SET_DUMPABLE:
        return 0
    if option == PR_SET_TAGGED_ADDR_CTRL:
        return set_tagged_addr_ctrl(t, arg2, arg3, arg4, arg5)
    if option == PR_GET_TAGGED_ADDR_CTRL:
        return get_tagged_addr_ctrl(t, arg2, arg3, arg4, arg5)
    return -errno.EINVAL
