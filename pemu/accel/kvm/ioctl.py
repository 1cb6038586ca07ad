"""ioctl(2) through libc, so that the GIL is released while KVM_RUN blocks.

``fcntl.ioctl`` would copy buffers and cannot pass a pointer to a ctypes struct that
the kernel fills in place; libc's ioctl through ctypes does both, and ctypes drops
the GIL for the duration of the call, which lets vCPU threads run in parallel.
"""

from __future__ import annotations

import ctypes
import errno
import os

from pemu.accel.kvm.errors import KVMError

_libc = ctypes.CDLL(None, use_errno=True)
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int


def ioctl_raw(fd: int, request: int, arg: object = 0) -> tuple[int, int]:
    """One ioctl; returns (result, errno) without raising.  ``arg``: int or ctypes object."""
    ptr = arg if isinstance(arg, int) else ctypes.addressof(arg)  # type: ignore[arg-type]
    ret = _ioctl(fd, request, ptr)
    return ret, (ctypes.get_errno() if ret < 0 else 0)


def kvm_ioctl(fd: int, request: int, arg: object = 0, what: str = "ioctl") -> int:
    """An ioctl that must succeed; EINTR is retried, anything else raises KVMError."""
    while True:
        ret, err = ioctl_raw(fd, request, arg)
        if ret >= 0:
            return ret
        if err != errno.EINTR:
            raise KVMError(f"KVM {what} failed: {os.strerror(err)} (errno {err})")
