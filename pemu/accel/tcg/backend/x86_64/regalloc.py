"""Per-block register allocation in the style of QEMU's TCG.

Every IR temp has a home in memory (a global: its slot in the CPU state block; a
local: a slot in the native frame) and is cached in a host register between uses.
A register's value is *dirty* when its home is stale.  At control-flow joins (labels)
and before branches everything dirty is written home and, at labels, forgotten, so
every path into a label finds values in their homes.  Locals die after their last
use (blocks branch only forwards; a block with a backward branch keeps locals alive
to its end) and are never written home once dead.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Temp

from .encoder import (
    R8,
    R9,
    R10,
    R14,
    RAX,
    RBP,
    RBX,
    RDI,
    RDX,
    RSI,
    RSP,
    Assembler,
    Mem,
)

# Fixed roles (see runtime.py's dispatcher): rbp = CPU state, r15 = guest memory base,
# r12/r13 = readable/writable page tables, r11 and rcx = scratch inside one op.
ALLOCATABLE = (RAX, RDX, RSI, RDI, R8, R9, R10, RBX, R14)
CALLEE_SAVED = frozenset((RBX, R14))
FRAME_CTX = 0  # [rsp + 0]: the per-CPU native context pointer
FRAME_SPILL0 = 8
N_SPILL_SLOTS = 512
FRAME_SIZE = FRAME_SPILL0 + 8 * N_SPILL_SLOTS  # 8 mod 16: with 6 pushes + ret, rsp aligns


# homes as operands, made once (a Mem per use was a tenth of the allocator's time)
_FRAME_SLOTS = tuple(Mem(RSP, FRAME_SPILL0 + 8 * i) for i in range(N_SPILL_SLOTS))
_STATE_SLOTS: dict[int, Mem] = {}


class TooManyTemps(Exception):
    pass


class RegAlloc:
    def __init__(self, asm: Assembler, last_use: dict[int, int]) -> None:
        self.asm = asm
        self.last_use = last_use  # temp index -> index of the last op that reads it
        self.owner: dict[int, Temp] = {}  # host reg -> temp
        self.where: dict[int, int] = {}  # temp index -> host reg
        self.dirty: set[int] = set()  # temp indices whose home is stale
        self.locked: set[int] = set()
        self.slots: dict[int, int] = {}  # local temp index -> frame offset
        self.free_slots: list[int] = []
        self.next_slot = 0
        self.age: dict[int, int] = {}
        self.clock = 0
        self.op_index = 0

    # -- homes ----------------------------------------------------------------------
    def home(self, t: Temp) -> Mem:
        if t.is_global:
            m = _STATE_SLOTS.get(t.slot)
            if m is None:
                m = _STATE_SLOTS[t.slot] = Mem(RBP, 8 * t.slot)
            return m
        off = self.slots.get(t.index)
        if off is None:
            if self.free_slots:
                off = self.free_slots.pop()
            else:
                if self.next_slot >= N_SPILL_SLOTS:
                    raise TooManyTemps()
                off = FRAME_SPILL0 + 8 * self.next_slot
                self.next_slot += 1
            self.slots[t.index] = off
        return _FRAME_SLOTS[(off - FRAME_SPILL0) >> 3]

    def live_after(self, t: Temp) -> bool:
        return t.is_global or self.last_use.get(t.index, -1) > self.op_index

    # -- binding ----------------------------------------------------------------------
    def reg_of(self, t: Temp) -> int | None:
        return self.where.get(t.index)

    def _unbind_reg(self, r: int) -> None:
        t = self.owner.pop(r, None)
        if t is not None:
            del self.where[t.index]
            self.dirty.discard(t.index)

    def write_home(self, r: int) -> None:
        t = self.owner[r]
        index = t.index
        if index in self.dirty:
            if t.is_global or self.last_use.get(index, -1) > self.op_index:  # live after
                self.asm.store(8, self.home(t), r)
            self.dirty.discard(index)

    def evict(self, r: int) -> None:
        if r in self.owner:
            t = self.owner[r]
            if t.index in self.dirty and self.last_use.get(t.index, -1) == self.op_index:
                # an input of the op being emitted whose last use this is, evicted to
                # make room for another input before it was locked: the op still
                # reads it, from its home (an A64 LDP pair then SUB under pressure)
                self.asm.store(8, self.home(t), r)
                self.dirty.discard(t.index)
            self.write_home(r)
            self._unbind_reg(r)

    def pick(self, avoid: set[int] | frozenset[int] = frozenset()) -> int:
        """A register for a new value, evicting the least recently used if needed."""
        owner, locked = self.owner, self.locked
        for r in ALLOCATABLE:  # the common case: a free register
            if r not in owner and r not in locked and r not in avoid:
                return r
        # none: evict the least recently used register (a clean one if there is one:
        # nothing to write back), the first such in ALLOCATABLE order.  Every register
        # with an owner has an age (use and set_out set both): min's key is C code.
        blocked = locked | avoid if avoid else locked
        candidates = [r for r in ALLOCATABLE if r not in blocked]
        if not candidates:
            raise RuntimeError("register allocator: every register is locked")
        dirty = self.dirty
        clean = [r for r in candidates if owner[r].index not in dirty]
        victim = min(clean or candidates, key=self.age.__getitem__)
        self.evict(victim)
        return victim

    def touch(self, r: int) -> None:
        self.clock += 1
        self.age[r] = self.clock

    def use(self, t: Temp) -> int:
        """The register holding t (loaded from its home if needed), locked for this op."""
        r = self.where.get(t.index)
        if r is None:
            r = self.pick()
            m = _STATE_SLOTS.get(t.slot) if t.is_global else None  # home(t), inline
            self.asm.load(64, r, m if m is not None else self.home(t))
            self.owner[r] = t
            self.where[t.index] = r
        self.locked.add(r)
        self.clock = clock = self.clock + 1  # touch(r), inline: every operand comes here
        self.age[r] = clock
        return r

    def dying(self, t: Temp) -> bool:
        return not t.is_global and self.last_use.get(t.index, -1) <= self.op_index

    def set_out(self, t: Temp, r: int) -> None:
        """t now lives (dirty) in r; r's previous content is dead or already saved."""
        index = t.index
        where, owner = self.where, self.owner
        old = where.get(index)
        if old is not None and old != r:
            self._unbind_reg(old)
        dirty = self.dirty
        prev = owner.get(r)
        if prev is not None and prev is not t:  # _unbind_reg(r), inline: most ops
            del owner[r]  # (r moves to the end of the owners, as before)
            del where[prev.index]
            dirty.discard(prev.index)
        owner[r] = t
        where[index] = r
        dirty.add(index)
        self.locked.add(r)
        self.clock = clock = self.clock + 1
        self.age[r] = clock

    def choose_out(self, d: Temp, first: int | None, first_temp: object,
                   avoid: set[int] | frozenset[int]) -> int:
        """Where to compute d: the first operand's register if that value may be
        overwritten, else d's own register, else a fresh one; never one in ``avoid``."""
        if first is not None and first not in avoid and first_temp.__class__ is Temp and (
                first_temp is d or (not first_temp.is_global and self.last_use.get(
                    first_temp.index, -1) <= self.op_index)):  # d, or dying here
            return first
        r = self.where.get(d.index)
        if r is not None and r not in avoid and r not in self.locked:
            return r
        return self.pick(avoid)

    # -- synchronisation points -----------------------------------------------------------
    def sync(self, globals_only: bool = False) -> None:
        """Write every dirty live value home; registers keep their (now clean) values."""
        dirty = self.dirty
        if not dirty:
            return
        for r, t in self.owner.items():  # (writing home binds and unbinds nothing)
            index = t.index
            if index in dirty:
                if t.is_global:  # write_home(r), inline: a global is always live
                    m = _STATE_SLOTS.get(t.slot)
                    self.asm.store(8, m if m is not None else self.home(t), r)
                    dirty.discard(index)
                elif not globals_only:
                    self.write_home(r)

    def dirty_globals(self) -> list[tuple[int, Mem]]:
        """(register, home) of every global whose home is stale, in the owners'
        order (what a slow path writes home before it may raise)."""
        dirty = self.dirty
        if not dirty:
            return []
        return [(r, _STATE_SLOTS.get(t.slot) or self.home(t)) for r, t in self.owner.items()
                if t.is_global and t.index in dirty]

    def forget(self) -> None:
        self.owner.clear()
        self.where.clear()
        self.dirty.clear()

    def end_op(self, dead: list[Temp]) -> None:
        self.locked.clear()
        for t in dead:
            index = t.index
            r = self.where.pop(index, None)
            if r is not None:  # _unbind_reg(r), inline
                del self.owner[r]
                self.dirty.discard(index)
            off = self.slots.pop(index, None)
            if off is not None:
                self.free_slots.append(off)

    def before_call(self, inputs: set[int], sync_globals: bool, drop_globals: bool) -> None:
        """Around a helper call: caller-saved registers are clobbered."""
        for r, t in list(self.owner.items()):
            if r in CALLEE_SAVED:
                if t.is_global and (sync_globals or drop_globals):
                    self.write_home(r)
                    if drop_globals:
                        self._unbind_reg(r)
                continue
            if t.index in self.dirty and (t.is_global or self.live_after(t)
                                          or t.index in inputs):
                self.asm.store(8, self.home(t), r)
                self.dirty.discard(t.index)
            self._unbind_reg(r)


__all__ = ["ALLOCATABLE", "CALLEE_SAVED", "FRAME_CTX", "FRAME_SIZE", "RegAlloc", "RSP",
           "TooManyTemps"]
