"""Host atomic instructions on guest RAM, callable from Python helpers.

With MTTCG (``-accel tcg,thread=multi``) the harts' generated code stores to guest
RAM without any lock, so a Python lock around an atomic helper's load and store is
not enough: a plain store of another hart can land between them (Linux's ticket
spinlock takes the lock with an AMO and releases it with a plain halfword store; a
lost release deadlocks the guest).  The helpers therefore finish every atomic
read-modify-write with ``lock cmpxchg`` on the host address, which x86 makes atomic
against every other access to those bytes, plain stores of generated code included.

The two routines are a few bytes of machine code in their own small code buffer,
called through ctypes (which releases the GIL around the call, as it does for
generated code; the instruction takes no time worth keeping the GIL for anyway).
"""

from __future__ import annotations

import ctypes

from .codebuf import CodeBuffer

# cmpxchg(host_address, expected, new) -> the old value (== expected: it was stored)
_CMPXCHG64 = bytes([
    0x48, 0x89, 0xF0,        # mov rax, rsi
    0xF0, 0x48, 0x0F, 0xB1, 0x17,  # lock cmpxchg [rdi], rdx
    0xC3,                    # ret
])
_CMPXCHG32 = bytes([
    0x89, 0xF0,              # mov eax, esi
    0xF0, 0x0F, 0xB1, 0x17,  # lock cmpxchg [rdi], edx
    0xC3,                    # ret (eax zero-extends into rax)
])
_CMPXCHG16 = bytes([
    0x89, 0xF0,              # mov eax, esi
    0xF0, 0x66, 0x0F, 0xB1, 0x17,  # lock cmpxchg [rdi], dx
    0x0F, 0xB7, 0xC0,        # movzx eax, ax (the bits above are the caller's esi)
    0xC3,                    # ret
])
_CMPXCHG8 = bytes([
    0x89, 0xF0,              # mov eax, esi
    0xF0, 0x0F, 0xB0, 0x17,  # lock cmpxchg [rdi], dl
    0x0F, 0xB6, 0xC0,        # movzx eax, al
    0xC3,                    # ret
])
# cmpxchg16b(host_address, expected_lo, expected_hi, new_lo, new_hi, old_out): the old
# 16 bytes go to old_out[0..1] (two return registers do not fit ctypes' signature)
_CMPXCHG128 = bytes([
    0x53,                    # push rbx (callee-saved)
    0x48, 0x89, 0xF0,        # mov rax, rsi
    0x49, 0x89, 0xD2,        # mov r10, rdx
    0x48, 0x89, 0xCB,        # mov rbx, rcx
    0x4C, 0x89, 0xC1,        # mov rcx, r8
    0x4C, 0x89, 0xD2,        # mov rdx, r10
    0xF0, 0x48, 0x0F, 0xC7, 0x0F,  # lock cmpxchg16b [rdi]
    0x49, 0x89, 0x01,        # mov [r9], rax
    0x49, 0x89, 0x51, 0x08,  # mov [r9 + 8], rdx
    0x5B,                    # pop rbx
    0xC3,                    # ret
])
_ROUTINE_ALIGN = 16
_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                              ctypes.c_uint64)
_SIGNATURE128 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                 ctypes.c_uint64, ctypes.c_uint64,
                                 ctypes.POINTER(ctypes.c_uint64))
_MASK64 = (1 << 64) - 1


def _has_cmpxchg16b() -> bool:
    """CPUID's CX16, as the kernel lists it (every x86-64 since the first Core 2s;
    some early AMD64 parts and odd hypervisors lack it)."""
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " cx16" in line for line in info)
    except OSError:
        return False


class HostAtomics:
    """``cmpxchg(address, size, expected, new)`` for 1-, 2-, 4-, 8- and (with CX16)
    16-byte naturally aligned host memory (an aligned guest atomic never straddles a
    page, so its bytes are contiguous on the host).  A 16-byte value is one int, its
    low 8 bytes at the lower address (a little-endian pair: CASP, STXP, amocas.q)."""

    def __init__(self) -> None:
        self._buf = CodeBuffer(4096, head_size=0)
        self._by_size: dict[int, object] = {}
        routines = [(8, _CMPXCHG64, _SIGNATURE), (4, _CMPXCHG32, _SIGNATURE),
                    (2, _CMPXCHG16, _SIGNATURE), (1, _CMPXCHG8, _SIGNATURE)]
        if _has_cmpxchg16b():
            routines.append((16, _CMPXCHG128, _SIGNATURE128))
        for size, code, signature in routines:
            off = self._buf.allocate(len(code), _ROUTINE_ALIGN)
            self._buf.write(off, code)
            self._by_size[size] = signature(self._buf.exec_address(off))

    def supports(self, size: int) -> bool:
        return size in self._by_size

    def cmpxchg(self, address: int, size: int, expected: int, new: int) -> int:
        """Store ``new`` at ``address`` if it holds ``expected``, atomically; returns
        the value found there (equal to ``expected`` exactly when ``new`` was stored)."""
        if size == 16:
            return self._cmpxchg128(address, expected, new)
        mask = (1 << (8 * size)) - 1
        return self._by_size[size](address, expected & mask, new & mask)

    def _cmpxchg128(self, address: int, expected: int, new: int) -> int:
        # a buffer per call: helper threads of one process may swap at the same time
        old = (ctypes.c_uint64 * 2)()
        self._by_size[16](address, expected & _MASK64, (expected >> 64) & _MASK64,
                          new & _MASK64, (new >> 64) & _MASK64, old)
        return old[0] | old[1] << 64


_shared: HostAtomics | None = None


def host_atomics() -> HostAtomics:
    """The process's routines (made on first use: single-threaded machines never do)."""
    global _shared
    if _shared is None:
        _shared = HostAtomics()
    return _shared
