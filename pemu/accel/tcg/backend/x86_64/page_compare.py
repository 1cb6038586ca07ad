"""Which code pages changed: a host routine comparing pages with their snapshots.

``fence.i`` (RISC-V) must drop the blocks of every page whose bytes changed since they
were translated (system_cpu.SystemTranslator.sync_code), and Linux executes it often:
Debian's boot runs 44 k of them with ~160 translated pages each, 7 M page compares that
cost ~2.5 us apiece in Python (a 4 KiB copy and compare: ~18 s of CPU per boot).  This
routine compares all of them in one call, 8 bytes at a time, without copies:

    uint64 pages_differ(const uint64 *triples, uint64 n, uint8 *changed)

``triples`` holds n (page address, snapshot address, mark address) triples.  The
mark is the page's code-write mark (memory/code_writes.py): 0 means nothing wrote
the page since its last compare, and it is skipped; 1 is cleared (before the
compare, with a fence: a writer sets the mark after its bytes land, so a mark set
before the clear has its bytes seen by the compare, and one set after it brings the
page to the next fence) and the page compared; any other value is left as it is
and the page compared (pages nobody marks point at such a byte).  ``changed[i]`` is
set to 1 when the 4096 bytes at the two addresses differ, else 0; it returns how many
differ, plus 2**32 times how many it compared.
"""

from __future__ import annotations

import ctypes

from . import encoder as x
from .codebuf import CodeBuffer
from .encoder import R8, R9, R10, R11, RAX, RCX, RDI, RDX, RSI, Mem

PAGE_SIZE = 4096
COMPARED_SHIFT = 32  # the result's count of compared pages
TRIPLE_BYTES = 24


def _routine() -> bytes:
    a = x.Assembler()
    outer, inner, diff, next_pair, done, same, compare = (x.Label() for _ in range(7))
    a.mov_ri(RAX, 0)
    a.test_rr(64, RSI, RSI)
    a.jcc(x.CC_E, done)
    a.bind(outer)
    a.load(64, R10, Mem(RDI, 16))
    a.movzx(R11, Mem(R10, 0), 1)
    a.test_rr(32, R11, R11)
    a.jcc(x.CC_E, same)  # not written since its last compare
    a.alu_ri(x.CMP, 32, R11, 1)
    a.jcc(x.CC_NE, compare)
    a.store_imm(1, Mem(R10, 0), 0)
    a.byte(0x0F, 0xAE, 0xF0)  # mfence: the clear before the compare's loads
    a.bind(compare)
    a.mov_ri(R8, 1)
    a.shift_ri(x.SHL, 64, R8, COMPARED_SHIFT)
    a.alu_rr(x.ADD, 64, RAX, R8)
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
    a.bind(same)
    a.store_imm(1, Mem(RDX, 0), 0)
    a.jmp(next_pair)
    a.bind(diff)
    a.store_imm(1, Mem(RDX, 0), 1)
    a.alu_ri(x.ADD, 64, RAX, 1)
    a.bind(next_pair)
    a.alu_ri(x.ADD, 64, RDI, TRIPLE_BYTES)
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


def pages_differ(triples: ctypes.Array, n: int, changed: ctypes.Array) -> tuple[int, int]:
    """Compare the marked ones of n pages with their snapshots (module docstring):
    (how many differ, how many were compared); the addresses in ``triples`` must
    stay valid for the call."""
    global _shared
    if _shared is None:
        _shared = _PageCompare()
    result = _shared.fn(ctypes.addressof(triples), n, ctypes.addressof(changed))
    return result & ((1 << COMPARED_SHIFT) - 1), result >> COMPARED_SHIFT
