"""Calling the host kernel directly, and checked guest pointers for it.

x86-64 and riscv64 Linux share most structure layouts (both LP64, little-endian,
asm-generic flags), and guest memory is directly addressable at ``mem.base + addr``.
So most calls pass the guest's buffers to the host kernel without copying, after
vmem has confirmed that the guest itself may read or write them.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ..syscall_numbers import HOST_SYSCALL_NUMBERS
from .registry import RESTART

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def host(name: str, *args: int | bytes | None) -> int:
    """Invoke a host syscall; returns the result or a negative errno (RESTART on EINTR)."""
    cargs = [a if isinstance(a, bytes) else ctypes.c_long(a or 0) for a in args]
    ret = _syscall(ctypes.c_long(HOST_SYSCALL_NUMBERS[name]), *cargs)
    if ret == -1:
        err = ctypes.get_errno()
        return RESTART if err == errno.EINTR else -err
    return ret


def in_ptr(thread: object, addr: int, size: int) -> int:
    """Host address of a guest buffer the kernel will read."""
    mem = thread.process.mem
    addr = mem.untagged(addr)
    mem.check(addr, size, write=False)
    return mem.base + addr


def out_ptr(thread: object, addr: int, size: int) -> int:
    """Host address of a guest buffer the kernel will write."""
    mem = thread.process.mem
    addr = mem.untagged(addr)
    mem.check(addr, size, write=True)
    mem.note_host_write(addr, size)
    return mem.base + addr


def opt_in_ptr(thread: object, addr: int, size: int) -> int:
    return 0 if addr == 0 else in_ptr(thread, addr, size)


def opt_out_ptr(thread: object, addr: int, size: int) -> int:
    return 0 if addr == 0 else out_ptr(thread, addr, size)


def signed(value: int, bits: int = 64) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def fd_arg(value: int) -> int:
    """Descriptors (and AT_FDCWD) are C ints: use the low 32 bits, signed."""
    return signed(value, 32)


def _self_exe_paths(pid: int) -> tuple[bytes, ...]:
    return (b"/proc/self/exe", f"/proc/{pid}/exe".encode(), b"/proc/thread-self/exe")


def guest_path(thread: object, addr: int, use_prefix: bool = True) -> bytes:
    """A path argument: the -L prefix applies, and /proc/self/exe names the guest program."""
    process = thread.process
    raw = process.mem.read_cstring(addr, 4096)
    if raw in _self_exe_paths(process.pid):
        return os.fsencode(process.exe_path)
    prefix = process.options.prefix
    if use_prefix and prefix and raw.startswith(b"/") and raw != b"/":
        candidate = os.fsencode(prefix).rstrip(b"/") + raw
        if os.path.lexists(candidate):
            return candidate
    return raw


def is_self_exe(thread: object, addr: int) -> bool:
    return thread.process.mem.read_cstring(addr, 4096) in _self_exe_paths(thread.process.pid)
