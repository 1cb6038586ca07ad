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
_ROUTINE_ALIGN = 16
_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                              ctypes.c_uint64)


class HostAtomics:
    """``cmpxchg(address, size, expected, new)`` for 4- and 8-byte naturally aligned
    host memory (an aligned guest atomic never straddles a page, so its bytes are
    contiguous on the host)."""

    def __init__(self) -> None:
        self._buf = CodeBuffer(4096, head_size=0)
        self._by_size: dict[int, object] = {}
        for size, code in ((8, _CMPXCHG64), (4, _CMPXCHG32)):
            off = self._buf.allocate(len(code), _ROUTINE_ALIGN)
            self._buf.write(off, code)
            self._by_size[size] = _SIGNATURE(self._buf.exec_address(off))

    def cmpxchg(self, address: int, size: int, expected: int, new: int) -> int:
        """Store ``new`` at ``address`` if it holds ``expected``, atomically; returns
        the value found there (equal to ``expected`` exactly when ``new`` was stored)."""
        mask = (1 << (8 * size)) - 1
        return self._by_size[size](address, expected & mask, new & mask)


_shared: HostAtomics | None = None


def host_atomics() -> HostAtomics:
    """The process's routines (made on first use: single-threaded machines never do)."""
    global _shared
    if _shared is None:
        _shared = HostAtomics()
    return _shared
