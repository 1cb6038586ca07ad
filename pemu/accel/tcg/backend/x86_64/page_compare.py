"""Which code pages changed: a host routine comparing pages with their snapshots.

``fence.i`` (RISC-V) must drop the blocks of every page whose bytes changed since they
were translated (system_cpu.SystemTranslator.sync_code), and Linux executes it often:
Debian's boot runs 44 k of them with ~160 translated pages each, 7 M page compares that
cost ~2.5 us apiece in Python (a 4 KiB copy and compare: ~18 s of CPU per boot).  This
routine compares all of them in one call, 8 bytes at a time, without copies:

    uint64 pages_differ(const uint64 *pairs, uint64 n, uint8 *changed)

``pairs`` holds n (page address, snapshot address) pairs; ``changed[i]`` is set to 1
when the 4096 bytes at the two addresses differ, else 0; it returns how many differ.
"""

from __future__ import annotations

import ctypes

from . import encoder as x
from .codebuf import CodeBuffer
from .encoder import R8, R9, R10, R11, RAX, RCX, RDI, RDX, RSI, Mem

PAGE_SIZE = 4096


def _routine() -> bytes:
    a = x.Assembler()
    outer, inner, diff, next_pair, done = (x.Label() for _ in range(5))
    a.mov_ri(RAX, 0)
    a.test_rr(64, RSI, RSI)
    a.jcc(x.CC_E, done)
    a.bind(outer)
    a.load(64, R8, Mem(RDI, 0))
    a.load(64, R9, Mem(RDI, 8))
    a.mov_ri(RCX, 0)
    a.bind(inner)
    for part in (0, 8):  # two words per round
        reg = R10 if part == 0 else R11
        a.load(64, reg, Mem(R8, part, RCX, 1))
        a.alu_rm(x.CMP, 64, reg, Mem(R9, part, RCX, 1))
        a.jcc(x.CC_NE, diff)
    a.alu_ri(x.ADD, 64, RCX, 16)
    a.alu_ri(x.CMP, 64, RCX, PAGE_SIZE)
    a.jcc(x.CC_B, inner)
    a.store_imm(1, Mem(RDX, 0), 0)
    a.jmp(next_pair)
    a.bind(diff)
    a.store_imm(1, Mem(RDX, 0), 1)
    a.alu_ri(x.ADD, 64, RAX, 1)
    a.bind(next_pair)
    a.alu_ri(x.ADD, 64, RDI, 16)
    a.alu_ri(x.ADD, 64, RDX, 1)
    a.alu_ri(x.SUB, 64, RSI, 1)
    a.jcc(x.CC_NE, outer)
    a.bind(done)
    a.ret()
    return a.finish()


_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)


class _PageCompare:
    def __init__(self) -> None:
        code = _routine()
        self._buf = CodeBuffer(4096, head_size=0)
        off = self._buf.allocate(len(code), 16)
        self._buf.write(off, code)
        self.fn = _FN(self._buf.exec_address(off))


_shared: _PageCompare | None = None


def pages_differ(pairs: ctypes.Array, n: int, changed: ctypes.Array) -> int:
    """Compare n pages with their snapshots (module docstring); the addresses in
    ``pairs`` must stay valid for the call."""
    global _shared
    if _shared is None:
        _shared = _PageCompare()
    return _shared.fn(ctypes.addressof(pairs), n, ctypes.addressof(changed))
