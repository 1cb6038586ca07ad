"""The native page walker (backend/x86_64/page_walk.py) against the Python path.

The routine is called directly (a small trampoline gives it its state slot) on random
Sv39/Sv48 page tables in a fake DRAM: PTEs with random flags, reserved bits, PPNs
inside and outside DRAM, aligned and misaligned superpages, pages the page map marks
unusable (PMP), and TLB sets already holding other pages.  The oracle is what pemu's
Python path does for the same access: ``mmu.walk`` (with its PTE writes and faults
meaning "Python's job": the walker must decline) and ``NativeContext.fill`` for the
entry.  The two TLB arrays and the fill logs must be equal word for word after each
access.  Generated code's side (the thunks) runs in tests/system/test_native_walk.py.
"""

from __future__ import annotations

import ctypes
import random

import pytest

from pemu.accel.tcg.backend.x86_64 import encoder as x
from pemu.accel.tcg.backend.x86_64 import memory_softmmu as m
from pemu.accel.tcg.backend.x86_64 import page_walk as pw
from pemu.accel.tcg.backend.x86_64.codebuf import CodeBuffer
from pemu.accel.tcg.backend.x86_64.encoder import RBP, RCX, RDI, RDX, RSI
from pemu.accel.tcg.softmmu import (
    ACCESS_EXEC,
    ACCESS_READ,
    ACCESS_WRITE,
    PERM_GLOBAL,
    PERM_R,
    PERM_W,
)
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.mmu import PRV_S, PRV_U, walk

DRAM_BASE = 0x8000_0000
DRAM_PAGES = 64
_MMU_PRIV = {0: (PRV_U, False), 1: (PRV_S, False), 2: (PRV_S, True)}
_WALK = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                         ctypes.c_uint64, ctypes.c_uint64)


class JumpCacheGeometry:
    def new_jump_cache(self) -> ctypes.Array:
        return (ctypes.c_uint64 * 16)()


@pytest.fixture(scope="module")
def native_walk():
    """walk(state, vaddr, idx, write) -> host address or 0; state[0] = the TLB."""
    a = x.Assembler()
    start = x.Label()
    a.jmp(start)
    walker = pw.emit_walker(a, m.SoftmmuMemory(0, lambda flags: 1)._walk_geometry())
    a.align(16)
    a.bind(start)
    a.push(RBP)
    a.mov_rr(64, RBP, RDI)
    a.mov_rr(64, RDI, RSI)
    a.mov_rr(64, RSI, RDX)
    a.mov_rr(64, RDX, RCX)
    a.call(walker)
    a.pop(RBP)
    a.ret()
    code = a.finish()
    buf = CodeBuffer(16384, head_size=0)
    off = buf.allocate(len(code), 16)
    buf.write(off, code)
    fn = _WALK(buf.exec_address(off))
    yield fn
    del buf


def _random_pte(rng: random.Random, level: int, table_pages: list[int]) -> int:
    """A PTE for ``level`` (0: 4 KiB leaves): mostly plausible, sometimes broken."""
    kind = rng.random()
    if level and kind < 0.8:  # a pointer, now and then with bits it must not have
        ppn = (DRAM_BASE >> 12) + rng.choice(table_pages)
        flags = 1 | (rng.choice((0, 0, 0, 0x40, 0x80, 0x10, 0x4)) if rng.random() < 0.2 else 0)
        pte = ppn << 10 | flags
    else:
        # a leaf: an aligned (or misaligned) page inside, at the edge or outside DRAM
        span = 1 << (9 * level)
        where = rng.random()
        if where < 0.8:
            ppn = (DRAM_BASE >> 12) + rng.randrange(DRAM_PAGES)
            if level and rng.random() < 0.7:
                ppn &= ~(span - 1)  # aligned (DRAM_BASE is aligned to 1 GiB)
        elif where < 0.9:
            ppn = (DRAM_BASE >> 12) + DRAM_PAGES + rng.randrange(4)
        else:
            ppn = rng.randrange(1 << 20)
        if rng.random() < 0.7:  # the walker's common case: V, R, A, maybe W+D, U, X
            flags = 0x43 | (0x84 if rng.random() < 0.6 else 0) | (
                0x10 if rng.random() < 0.5 else 0) | (0x8 if rng.random() < 0.3 else 0)
        else:
            flags = rng.getrandbits(8)
        pte = ppn << 10 | flags
    if rng.random() < 0.05:
        pte |= 1 << rng.randrange(54, 64)  # reserved, N or PBMT
    return pte


def _walk_access(dram: ctypes.Array, page_map: ctypes.Array) -> tuple:
    """The Python walk's (usable, load, store) over the test's DRAM: a page the map
    leaves out is not usable, and a PTE write is Python's job (LookupError: the
    native walker must decline)."""
    def usable(paddr: int) -> bool:
        off = paddr - DRAM_BASE
        return 0 <= off < DRAM_PAGES * 4096 and bool(page_map[off >> 12])

    def load(paddr: int) -> int:
        if not 0 <= paddr - DRAM_BASE <= DRAM_PAGES * 4096 - 8:
            raise ValueError("no memory")
        return dram[(paddr - DRAM_BASE) // 8]

    def store(paddr: int, value: int) -> None:
        raise LookupError("a PTE write: Python's job")

    return usable, load, store


def _expected(dram: ctypes.Array, page_map: ctypes.Array, satp: int, vaddr: int, idx: int,
              write: bool) -> tuple[int, int, bool, int] | None:
    """(DRAM offset of the page, page shift, writable, vpn) the Python path would fill
    without writing a PTE or faulting, else None (the walker must decline)."""
    usable, load, store = _walk_access(dram, page_map)

    priv, sum_ = _MMU_PRIV[idx]
    try:
        t = walk(satp, vaddr, ACCESS_WRITE if write else ACCESS_READ, priv, sum_, False,
                 load, store, usable)
    except (RiscvTrap, LookupError):
        return None
    page = t.paddr & ~0xFFF
    if not usable(page) or not t.perms & PERM_R:
        return None
    return page - DRAM_BASE, t.shift, bool(t.perms & PERM_W), vaddr >> 12


def _random_tables(rng: random.Random, levels: int, dram: ctypes.Array,
                   page_map: ctypes.Array) -> tuple[int, list[int]]:
    """Random page tables in ``dram`` and a random ``page_map``: (satp, the virtual
    addresses whose paths the tables hold)."""
    table_pages = list(range(levels + 4))  # page 0 is the root
    ctypes.memset(dram, 0, ctypes.sizeof(dram))
    for i in range(DRAM_PAGES):
        page_map[i] = rng.random() < 0.93
    for p in table_pages[:2]:
        page_map[p] = 1  # mostly walkable roots
    satp = (levels + 5) << 60 | (DRAM_BASE >> 12)
    vaddrs = []
    for _ in range(30):
        va = rng.getrandbits(12 + 9 * levels) & ~7
        if rng.random() < 0.5:
            va |= -1 << (11 + 9 * levels)  # the upper half
        if rng.random() < 0.03:
            va ^= 1 << 62  # not canonical
        vaddrs.append(va & (2**64 - 1))
    for va in vaddrs:
        table = 0
        for level in range(levels - 1, -1, -1):
            slot = table * 512 + ((va >> (12 + 9 * level)) & 0x1FF)
            if not dram[slot]:
                dram[slot] = _random_pte(rng, level, table_pages)
            pte = dram[slot]
            if not pte & 0xA and pte & 1 and level:
                nxt = ((pte >> 10) & ((1 << 44) - 1)) - (DRAM_BASE >> 12)
                if 0 <= nxt < len(table_pages):
                    table = nxt
                    continue
            break
    return satp, vaddrs


@pytest.mark.parametrize("levels", [3, 4])
def test_walker_fills_what_python_would_and_declines_the_rest(native_walk, levels):
    rng = random.Random(1000 + levels)
    dram = (ctypes.c_uint64 * (DRAM_PAGES * 512))()
    host = ctypes.addressof(dram)
    page_map = (ctypes.c_uint8 * DRAM_PAGES)()
    fills = declines = 0
    for trial in range(60):
        satp, vaddrs = _random_tables(rng, levels, dram, page_map)
        ctx = m.NativeContext(JumpCacheGeometry(), host_delta=host)
        oracle = m.NativeContext(JumpCacheGeometry(), host_delta=host)
        for c in (ctx, oracle):
            c.set_walk(levels, DRAM_BASE, DRAM_BASE, DRAM_PAGES * 4096,
                       ctypes.addressof(page_map), ctypes.addressof(ctypes.c_uint64()),
                       ctypes.addressof(ctypes.c_uint64()))
        count = ctypes.c_uint64()
        ctx.tlb[m.WALK_FIRST + pw.W_STATS] = ctypes.addressof(count)
        # other pages already in the sets the accesses use (victim rule)
        for va in rng.sample(vaddrs, 4):
            vpn = ((va >> 12) + rng.choice((0, m.TLB_ENTRIES, 2 * m.TLB_ENTRIES))) & (
                (1 << 52) - 1)
            idx, read, wr = rng.randrange(3), rng.random() < 0.7, rng.random() < 0.5
            for c in (ctx, oracle):
                c.fill(idx, vpn, 0x1234_0000, read, wr)
        state = (ctypes.c_uint64 * 1)(ctx.tlb_address)
        oracle_state_log: list[int] = []
        for va in vaddrs * 2:  # twice: the second time some entries are there
            idx, write = rng.randrange(3), rng.random() < 0.4
            got = native_walk(ctypes.addressof(state), va, idx, int(write))
            want = _expected(dram, page_map, satp, va, idx, write)
            where = f"trial {trial} vaddr {va:#x} idx {idx} write {write}"
            if want is None:
                assert got == 0, where
                declines += 1
                continue
            off, shift, writable, vpn = want
            assert got == host + off + (va & 0xFFF), where
            oracle.fill(idx, vpn, off - (vpn << 12), True, writable)
            oracle_state_log.append((vpn << 12) | shift)
            fills += 1
            assert ctx.tlb[:m.WALK_FIRST] == oracle.tlb[:m.WALK_FIRST], where
        assert ctx.take_fills() == oracle_state_log
        assert count.value == len(oracle_state_log)
        if oracle_state_log:  # a full fill log: the walker declines what it filled
            va = oracle_state_log[0] & ~0xFFF
            ctx.tlb[m.WALK_FIRST + pw.W_LOG_COUNT] = pw.LOG_ENTRIES
            assert native_walk(ctypes.addressof(state), va, 2, 0) == 0
            ctx.tlb[m.WALK_FIRST + pw.W_LOG_COUNT] = pw.LOG_ENTRIES - 1
            assert native_walk(ctypes.addressof(state), va, 2, 0) != 0
    # the random tables did reach both outcomes often
    assert fills > 200 and declines > 200, (fills, declines)


def _expected_fetch(dram: ctypes.Array, page_map: ctypes.Array, satp: int, vaddr: int,
                    idx: int) -> int | None:
    """The physical page an instruction fetch under fetch index ``idx`` (0 U, 1 S)
    finds without writing a PTE or faulting, on a usable page and not global (global
    code is Python's), else None (the walker must decline)."""
    usable, load, store = _walk_access(dram, page_map)

    priv = (PRV_U, PRV_S)[idx]
    try:
        t = walk(satp, vaddr, ACCESS_EXEC, priv, False, False, load, store, usable)
    except (RiscvTrap, LookupError):
        return None
    page = t.paddr & ~0xFFF
    if not usable(page) or t.perms & PERM_GLOBAL:
        return None
    return page


@pytest.mark.parametrize("levels", [3, 4])
def test_fetch_walk_finds_what_python_would_and_fills_nothing(native_walk, levels):
    """A fetch walk (edx = WALK_FETCH) returns the physical page Python's execute
    walk finds, declines the rest, and leaves the TLB and the fill log alone (the
    dispatcher's code refill fills the code TLB and logs)."""
    rng = random.Random(2000 + levels)
    dram = (ctypes.c_uint64 * (DRAM_PAGES * 512))()
    page_map = (ctypes.c_uint8 * DRAM_PAGES)()
    fills = declines = 0
    for trial in range(60):
        satp, vaddrs = _random_tables(rng, levels, dram, page_map)
        for slot, pte in enumerate(dram):  # leaves: mostly executable, some X-only
            if pte & 0xA:                  # or global
                dram[slot] = pte | 0x8 if rng.random() < 0.7 else pte ^ rng.choice((2, 32))
        ctx = m.NativeContext(JumpCacheGeometry(), host_delta=ctypes.addressof(dram))
        ctx.set_walk(levels, DRAM_BASE, DRAM_BASE, DRAM_PAGES * 4096,
                     ctypes.addressof(page_map), ctypes.addressof(ctypes.c_uint64()),
                     ctypes.addressof(ctypes.c_uint64()))
        before = ctx.tlb[:]
        state = (ctypes.c_uint64 * 1)(ctx.tlb_address)
        for va in vaddrs:
            for idx in (0, 1):
                got = native_walk(ctypes.addressof(state), va, idx, pw.WALK_FETCH)
                want = _expected_fetch(dram, page_map, satp, va, idx)
                where = f"trial {trial} vaddr {va:#x} idx {idx}"
                assert got == (want or 0), where
                fills += want is not None
                declines += want is None
            # M (fetch index 3) never walks here
            assert native_walk(ctypes.addressof(state), va, 3, pw.WALK_FETCH) == 0
        assert ctx.tlb[:] == before
    assert fills > 100 and declines > 200, (fills, declines)
