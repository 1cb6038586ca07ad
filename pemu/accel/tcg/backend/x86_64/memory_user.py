"""Guest loads and stores in Linux user mode: guest address A is host ``base + A``.

The fast path checks, inline, that the access is naturally aligned (so it stays in
one page), that A is inside the guest address space, and that the page's byte in
the readable (or writable-fast) table is set; then it is one host ``mov`` at
``[r15 + A]``.  Everything else - unmapped or protected pages, misaligned accesses,
stores to pages holding translated code - calls the vmem slow path, which either
does the access or raises ``GuestFault`` precisely.

System mode plugs in a different object with the same interface
(memory_softmmu.SoftmmuMemory: the softmmu TLB lookup inline, its helpers on a miss).
The interface: ``emit_entry`` (dispatcher prologue), ``slow_paths`` (the thunks the
runtime builds), ``begin_block``, ``attach_cpu``, ``load`` and ``store``.
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Block, Const, Helper

from . import encoder as x
from .encoder import R11, R12, R13, R15, RCX, Mem
from .memory_common import SLOW, GuestMemoryCodegen

# registers the dispatcher loads once on entry (see runtime.py)
GUEST_BASE_REG = R15
READ_TABLE_REG = R12
WRITE_TABLE_REG = R13


class UserMemory(GuestMemoryCodegen):
    def __init__(self, vmem: object, callback: object, jump_cache_slot: int) -> None:
        super().__init__()
        self._jump_cache_slot = jump_cache_slot
        self.vmem = vmem
        self.n_pages = len(vmem.readable)
        self.load_helper = Helper("load_slow", vmem.load_slow, flags=CALL_SIDE_EFFECTS)
        self.store_helper = Helper("store_slow", vmem.store_slow, flags=CALL_SIDE_EFFECTS,
                                   n_out=0)
        self._callback = callback
        self._tables = [(ctypes.c_char * len(t)).from_buffer(t)
                        for t in (vmem.readable, vmem.writable_fast)]

    def emit_entry(self, a: x.Assembler) -> None:
        """Dispatcher prologue: the guest base and the page tables in fixed registers."""
        a.mov_ri(GUEST_BASE_REG, self.vmem.base)
        a.mov_ri(READ_TABLE_REG, ctypes.addressof(self._tables[0]))
        a.mov_ri(WRITE_TABLE_REG, ctypes.addressof(self._tables[1]))

    def slow_paths(self) -> list[tuple[tuple, Helper, int, bool]]:
        """(thunk key, helper, size, is_store) for every thunk the runtime builds."""
        return [(("ld", size), self.load_helper, size, False) for size in (1, 2, 4, 8)] + \
               [(("st", size), self.store_helper, size, True) for size in (1, 2, 4, 8)]

    def begin_block(self, block: Block) -> None:
        """Nothing depends on the block: every block addresses memory the same way."""

    def attach_cpu(self, cpu: object, backend: object) -> None:
        """Every thread of the process shares the backend's one jump cache."""
        cpu.state.slots[self._jump_cache_slot] = ctypes.addressof(backend.jump_cache)

    def _assemble_checks(self, a: x.Assembler, slow: x.Label, addr: int, size: int,
                         table: int) -> None:
        """Aligned (so within one page), inside the guest space, page table byte set."""
        if size > 1:
            a.op(b"\xF7", 0, addr, 32)  # test addr32, size-1
            a.imm32(size - 1)
            a.jcc(x.CC_NE, slow)
        a.mov_rr(64, R11, addr)
        a.shift_ri(x.SHR, 64, R11, 12)
        a.alu_ri(x.CMP, 64, R11, self.n_pages)
        a.jcc(x.CC_AE, slow)
        a.op(b"\x80", 7, Mem(table, 0, R11), 32)  # cmp byte [table + page], 0
        a.byte(0)
        a.jcc(x.CC_E, slow)

    def address(self, cg: object, v: object) -> int:
        if isinstance(v, Const):
            cg.asm.mov_ri(RCX, v.value)  # the checks leave rcx alone
            return RCX
        return cg.ra.use(v)

    def thunk_key(self, kind: str, size: int) -> tuple:
        # user mode never emits "ldw" (its atomics are helpers): a plain load if it did
        return ("ld" if kind == "ldw" else kind, size)

    def assemble_fast_path(self, a: x.Assembler, labels: list[x.Label], addr: int,
                           size: int, store: bool) -> Mem | None:
        table = WRITE_TABLE_REG if store else READ_TABLE_REG
        self._assemble_checks(a, labels[SLOW], addr, size, table)
        return Mem(GUEST_BASE_REG, 0, addr)
