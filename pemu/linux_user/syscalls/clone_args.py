"""clone3's struct clone_args: reading the size-versioned structure and the checks the
kernel makes on it before any task is created (kernel/fork.c, copy_clone_args_from_user
and clone3_args_valid), so a guest sees the kernel's errors for malformed requests."""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

# The three published sizes: VER0 (flags..tls), VER1 (+set_tid, set_tid_size),
# VER2 (+cgroup).  Larger structures are accepted when the unknown tail is zero.
CLONE_ARGS_SIZE_VER0 = 64
CLONE_ARGS_SIZE_VER2 = 88
PAGE_SIZE = 4096
MAX_PID_NS_LEVEL = 32

_CSIGNAL = 0xFF
_CLONE_NEWTIME = 0x80
_CLONE_SIGHAND = 0x800
_CLONE_PARENT = 0x8000
_CLONE_THREAD = 0x10000
_CLONE_DETACHED = 0x400000
_CLONE_LEGACY_FLAGS = 0xFFFFFFFF
CLONE_CLEAR_SIGHAND = 1 << 32
CLONE_INTO_CGROUP = 1 << 33
# clone flags the clone paths themselves look at (proc.py, vfork_child.py)
CLONE_VM = 0x100
CLONE_PIDFD = 0x1000
CLONE_VFORK = 0x4000
CLONE_THREAD = _CLONE_THREAD
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_CHILD_SETTID = 0x1000000
_INT_MAX = (1 << 31) - 1

_FIELDS = struct.Struct("<11Q")  # every field is a __u64


@dataclass(frozen=True)
class CloneArgs:
    flags: int
    pidfd: int
    child_tid: int
    parent_tid: int
    exit_signal: int
    stack: int
    stack_size: int
    tls: int
    set_tid: int
    set_tid_size: int
    cgroup: int


def read_clone_args(mem: object, addr: int, size: int) -> CloneArgs | int:
    """The guest's clone_args at ``addr``, or a negative errno as clone3 returns it."""
    if size > PAGE_SIZE:
        return -errno.E2BIG
    if size < CLONE_ARGS_SIZE_VER0:
        return -errno.EINVAL
    raw = mem.read(addr, size)  # GuestFault -> EFAULT, as copy_struct_from_user
    if any(raw[CLONE_ARGS_SIZE_VER2:]):
        return -errno.E2BIG  # fields this kernel does not know about are in use
    args = CloneArgs(*_FIELDS.unpack(raw[:CLONE_ARGS_SIZE_VER2].ljust(_FIELDS.size, b"\0")))
    error = _invalid(args, size)
    return -error if error else args


def _invalid(args: CloneArgs, size: int) -> int:
    """The errno for arguments the kernel rejects, or 0."""
    if args.set_tid_size > MAX_PID_NS_LEVEL:
        return errno.EINVAL
    if bool(args.set_tid) != bool(args.set_tid_size):
        return errno.EINVAL
    if args.exit_signal & ~_CSIGNAL:
        return errno.EINVAL
    if args.flags & CLONE_INTO_CGROUP and (args.cgroup > _INT_MAX
                                            or size < CLONE_ARGS_SIZE_VER2):
        return errno.EINVAL
    allowed = _CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP
    if args.flags & ~allowed:
        return errno.EINVAL
    # clone3 reuses CLONE_DETACHED and the CSIGNAL bits (exit_signal has its own field)
    if args.flags & (_CLONE_DETACHED | (_CSIGNAL & ~_CLONE_NEWTIME)):
        return errno.EINVAL
    if args.flags & _CLONE_SIGHAND and args.flags & CLONE_CLEAR_SIGHAND:
        return errno.EINVAL
    if args.flags & (_CLONE_THREAD | _CLONE_PARENT) and args.exit_signal:
        return errno.EINVAL
    if bool(args.stack) != bool(args.stack_size):
        return errno.EINVAL
    return 0
