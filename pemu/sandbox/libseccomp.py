"""The few libseccomp calls the sandbox needs, bound with ctypes.

Debian's python3-seccomp is built for the system Python, not the one pemu runs on, so
the C library is loaded directly.  Constants are libseccomp's public ABI (seccomp.h).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
from dataclasses import dataclass

ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ALLOW = 0x7FFF0000


def act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


FLTATR_CTL_TSYNC = 4  # enum scmp_filter_attr: synchronise the filter to every thread
NR_SCMP_ERROR = -1    # seccomp_syscall_resolve_name: unknown name

# enum scmp_compare
CMP_NE = 1
CMP_EQ = 4
CMP_MASKED_EQ = 7


class SeccompError(OSError):
    pass


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@dataclass(frozen=True)
class ArgCmp:
    """``arg`` (0..5) ``op`` ``datum_a`` (for MASKED_EQ: (arg & datum_a) == datum_b)."""

    arg: int
    op: int
    datum_a: int
    datum_b: int = 0


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompError(errno_mod.ENOSYS, f"libseccomp is not available ({e}); install "
                           "Debian's libseccomp2") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_api_get.restype = ctypes.c_uint
    return lib


def kill_process_available() -> bool:
    """API level 3 and up: the kernel has SECCOMP_RET_KILL_PROCESS (Linux 4.14)."""
    return _load().seccomp_api_get() >= 3


class Filter:
    """A filter under construction: default action ALLOW, rules that deny."""

    def __init__(self) -> None:
        self._lib = _load()
        self._ctx = self._lib.seccomp_init(ACT_ALLOW)
        if not self._ctx:
            raise SeccompError(errno_mod.ENOMEM, "failed to initialize seccomp context")
        self._check(self._lib.seccomp_attr_set(self._ctx, FLTATR_CTL_TSYNC, 1),
                    "failed to set seccomp thread synchronization")

    def _check(self, rc: int, what: str) -> None:
        if rc < 0:
            raise SeccompError(-rc, f"{what}: {errno_mod.errorcode.get(-rc, -rc)}")

    def syscall_number(self, name: str) -> int | None:
        nr = self._lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr == NR_SCMP_ERROR else nr

    def add(self, action: int, name: str, *conditions: ArgCmp) -> bool:
        """Deny ``name`` with ``action``; False if this kernel ABI has no such call."""
        nr = self.syscall_number(name)
        if nr is None:
            return False
        arr = (_ArgCmp * max(len(conditions), 1))(
            *[_ArgCmp(c.arg, c.op, c.datum_a, c.datum_b) for c in conditions])
        self._check(self._lib.seccomp_rule_add_array(self._ctx, action, nr, len(conditions),
                                                     arr), f"failed to add a rule for {name}")
        return True

    def load(self) -> None:
        """Install the filter in the kernel, for every thread of the process."""
        self._check(self._lib.seccomp_load(self._ctx),
                    "failed to load seccomp syscall filter in kernel")

    def close(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None
