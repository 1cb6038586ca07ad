"""Per-block register allocation in the style of QEMU's TCG.

Every IR temp has a home in memory (a global: its slot in the CPU state block; a
local: a slot in the native frame) and is cached in a host register between uses.
A register's value is *dirty* when its home is stale.  At control-flow joins (labels)
and before branches everything dirty is written home and, at labels, forgotten, so
every path into a label finds values in their homes.  Locals die after their last
use (blocks branch only forwards; a block with a backward branch keeps locals alive
to its end) and are never written home once dead.

The allocator's per-temp state lives on the temps themselves (``Temp.host_reg``: the
register caching it; ``Temp.last_use``: the last op reading a local, from
codegen.compute_last_use), not in dicts keyed by temp index: the allocator asks for
both for every operand of every op, and an attribute costs a fraction of a look-up.
A block's temps are its own, made by its IR builder, so the state is reset once per
block (``compute_last_use``) and never seen by another block.
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


class HomeCode:
    """The machine code moving a global between its state slot and each host register
    (``load[r]``: ``mov r, [rbp + slot]``; ``store[r]``: ``mov [rbp + slot], r``),
    encoded once per slot: a block loads and writes home a few globals per op, and a
    list index is a fraction of an encoder call."""

    __slots__ = ("load", "store")

    def __init__(self, slot: int) -> None:
        m = Mem(RBP, 8 * slot)
        loads, stores = [], []
        for r in range(16):
            a = Assembler()
            a.load(64, r, m)
            loads.append(bytes(a.buf))
            a = Assembler()
            a.store(8, m, r)
            stores.append(bytes(a.buf))
        self.load = tuple(loads)
        self.store = tuple(stores)


_HOME_CODE: dict[int, HomeCode] = {}


def home_code(slot: int) -> HomeCode:
    """The global in state slot ``slot``'s HomeCode."""
    code = _HOME_CODE.get(slot)
    if code is None:
        code = _HOME_CODE[slot] = HomeCode(slot)
    return code


class TooManyTemps(Exception):
    pass


class RegAlloc:
    def __init__(self, asm: Assembler) -> None:
        self.asm = asm
        self.owner: dict[int, Temp] = {}  # host reg -> temp (the temp's host_reg is reg)
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
        return t.is_global or t.last_use > self.op_index

    # -- binding ----------------------------------------------------------------------
    @staticmethod
    def reg_of(t: Temp) -> int | None:
        return t.host_reg

    def _unbind_reg(self, r: int) -> None:
        t = self.owner.pop(r, None)
        if t is not None:
            t.host_reg = None
            self.dirty.discard(t.index)

    def write_home(self, r: int) -> None:
        t = self.owner[r]
        index = t.index
        if index in self.dirty:
            if t.is_global or t.last_use > self.op_index:  # live after
                self.asm.store(8, self.home(t), r)
            self.dirty.discard(index)

    def evict(self, r: int) -> None:
        if r in self.owner:
            t = self.owner[r]
            if t.index in self.dirty and t.last_use == self.op_index:
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
        if avoid:
            for r in ALLOCATABLE:  # the common case: a free register
                if r not in owner and r not in locked and r not in avoid:
                    return r
        else:  # (most calls: nothing to avoid)
            for r in ALLOCATABLE:
                if r not in owner and r not in locked:
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
        r = t.host_reg
        if r is None:
            r = self.pick()
            if t.is_global:
                code = _HOME_CODE.get(t.slot)  # home_code(t.slot), inline
                self.asm.buf += (code or home_code(t.slot)).load[r]
            else:
                self.asm.load(64, r, self.home(t))
            self.owner[r] = t
            t.host_reg = r
        self.locked.add(r)
        self.clock = clock = self.clock + 1  # touch(r), inline: every operand comes here
        self.age[r] = clock
        return r

    def dying(self, t: Temp) -> bool:
        return not t.is_global and t.last_use <= self.op_index

    def set_out(self, t: Temp, r: int) -> None:
        """t now lives (dirty) in r; r's previous content is dead or already saved."""
        owner = self.owner
        old = t.host_reg
        if old is not None and old != r:
            self._unbind_reg(old)
        dirty = self.dirty
        prev = owner.get(r)
        if prev is not None and prev is not t:  # _unbind_reg(r), inline: most ops
            del owner[r]  # (r moves to the end of the owners, as before)
            prev.host_reg = None
            dirty.discard(prev.index)
        owner[r] = t
        t.host_reg = r
        dirty.add(t.index)
        self.locked.add(r)
        self.clock = clock = self.clock + 1
        self.age[r] = clock

    def choose_out(self, d: Temp, first: int | None, first_temp: object,
                   avoid: set[int] | frozenset[int]) -> int:
        """Where to compute d: the first operand's register if that value may be
        overwritten, else d's own register, else a fresh one; never one in ``avoid``."""
        if first is not None and first not in avoid and first_temp.__class__ is Temp and (
                first_temp is d or (not first_temp.is_global
                                    and first_temp.last_use <= self.op_index)):  # dying
            return first
        r = d.host_reg
        if r is not None and r not in avoid and r not in self.locked:
            return r
        return self.pick(avoid)

    # -- synchronisation points -----------------------------------------------------------
    def sync(self, globals_only: bool = False) -> None:
        """Write every dirty live value home; registers keep their (now clean) values."""
        dirty = self.dirty
        if not dirty:
            return
        buf = self.asm.buf
        for r, t in self.owner.items():  # (writing home binds and unbinds nothing)
            index = t.index
            if index in dirty:
                if t.is_global:  # write_home(r), inline: a global is always live
                    code = _HOME_CODE.get(t.slot)
                    buf += (code or home_code(t.slot)).store[r]
                    dirty.discard(index)
                elif not globals_only:
                    self.write_home(r)

    def dirty_globals(self) -> bytes:
        """The code writing home every global whose home is stale, in the owners'
        order (what a slow path runs before it may raise)."""
        dirty = self.dirty
        if not dirty:
            return b""
        # (a dirty global's code was made when it was loaded or, for one only ever
        # written, by home_code here)
        return b"".join([(_HOME_CODE.get(t.slot) or home_code(t.slot)).store[r]
                         for r, t in self.owner.items() if t.index in dirty and t.is_global])

    def forget(self) -> None:
        for t in self.owner.values():
            t.host_reg = None
        self.owner.clear()
        self.dirty.clear()

    def end_op(self, dead: list[Temp]) -> None:
        self.locked.clear()
        for t in dead:
            index = t.index
            r = t.host_reg
            if r is not None:  # _unbind_reg(r), inline
                t.host_reg = None
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
