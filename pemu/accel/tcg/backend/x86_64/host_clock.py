"""The host's monotonic clock as a routine generated code calls without Python.

Guest clock reads (RISC-V ``rdtime``, A64 ``mrs CNTVCT_EL0``) are among the most
frequent helper calls of a booting kernel.  Their value is a linear function of the
host clock, so translated code computes it from state slots and this routine:
``host_monotonic_ns() -> uint64`` calls libc's ``clock_gettime(CLOCK_MONOTONIC)``
(the vDSO: no system call), the clock behind Python's ``time.monotonic_ns``, so the
inline value and the Python helper's agree exactly.
"""

from __future__ import annotations

import ctypes
import struct

from .codebuf import CodeBuffer

CLOCK_MONOTONIC = 1  # Linux


def _routine(clock_gettime: int) -> bytes:
    return b"".join([
        bytes([0x48, 0x83, 0xEC, 0x18]),  # sub rsp, 24 (struct timespec; 16-aligned call)
        bytes([0xBF]) + struct.pack("<I", CLOCK_MONOTONIC),  # mov edi, CLOCK_MONOTONIC
        bytes([0x48, 0x89, 0xE6]),  # mov rsi, rsp
        bytes([0x48, 0xB8]) + struct.pack("<Q", clock_gettime),  # mov rax, clock_gettime
        bytes([0xFF, 0xD0]),  # call rax
        bytes([0x48, 0x8B, 0x04, 0x24]),  # mov rax, [rsp] (tv_sec)
        bytes([0x48, 0x69, 0xC0]) + struct.pack("<I", 1_000_000_000),  # imul rax, 1e9
        bytes([0x48, 0x03, 0x44, 0x24, 0x08]),  # add rax, [rsp+8] (tv_nsec)
        bytes([0x48, 0x83, 0xC4, 0x18]),  # add rsp, 24
        bytes([0xC3]),  # ret
    ])


class _HostClock:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None)
        target = ctypes.cast(libc.clock_gettime, ctypes.c_void_p).value
        code = _routine(target)
        self._buf = CodeBuffer(4096, head_size=0)
        off = self._buf.allocate(len(code), 16)
        self._buf.write(off, code)
        self.address = self._buf.exec_address(off)


_shared: _HostClock | None = None


def host_monotonic_ns_address() -> int:
    """The address of ``uint64 host_monotonic_ns(void)`` (made on first use)."""
    global _shared
    if _shared is None:
        _shared = _HostClock()
    return _shared.address
