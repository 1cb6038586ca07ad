"""The native softmmu TLB's victim entries (memory_softmmu.NativeContext): what a
refill moves aside, what a flush must reach.  Generated code's side (the inline check
of the victim entry) runs in tests/system/test_tlb_conflict.py."""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.backend.x86_64 import memory_softmmu as m

PAGE_A = 0x80200
PAGE_B = PAGE_A + m.TLB_ENTRIES  # 4 MiB on: the same set
PAGE_C = PAGE_B + m.TLB_ENTRIES


class JumpCacheGeometry:
    """What NativeContext asks of the runtime: only the jump cache's size."""

    def new_jump_cache(self) -> ctypes.Array:
        return (ctypes.c_uint64 * 16)()


def _entries(ctx: m.NativeContext, idx: int, vpn: int) -> tuple[tuple, tuple]:
    """(main, victim) of vpn's set: (read tag, write tag, addend) each."""
    i = (idx * m.TLB_ENTRIES + vpn % m.TLB_ENTRIES) * m.ENTRY_WORDS
    v = i + m.MAIN_WORDS
    t = ctx.tlb
    return ((t[i], t[i + 1], t[i + 2]), (t[v], t[v + 1], t[v + 2]))


def _tag(vpn: int) -> int:
    return vpn << 12


def test_a_refill_keeps_the_page_it_replaces_as_victim():
    ctx = m.NativeContext(JumpCacheGeometry(), host_delta=0)
    ctx.fill(1, PAGE_A, 0x1000, read=True, write=False)
    ctx.fill(1, PAGE_B, 0x2000, read=True, write=True)
    main, victim = _entries(ctx, 1, PAGE_A)
    assert main == (_tag(PAGE_B), _tag(PAGE_B), 0x2000)
    assert victim == (_tag(PAGE_A), m.NO_PAGE, 0x1000)
    # a store's refill of the victim page swaps it back, its read permission kept
    ctx.fill(1, PAGE_A, 0x1000, read=False, write=True)
    main, victim = _entries(ctx, 1, PAGE_A)
    assert main == (_tag(PAGE_A), _tag(PAGE_A), 0x1000)
    assert victim == (_tag(PAGE_B), _tag(PAGE_B), 0x2000)
    # a third page pushes the oldest out
    ctx.fill(1, PAGE_C, 0x3000, read=True, write=False)
    main, victim = _entries(ctx, 1, PAGE_A)
    assert main == (_tag(PAGE_C), m.NO_PAGE, 0x3000)
    assert victim[:2] == (_tag(PAGE_A), _tag(PAGE_A))
    # other MMU indices are untouched
    assert _entries(ctx, 0, PAGE_A)[0][:2] == (m.NO_PAGE, m.NO_PAGE)


def test_flushes_reach_the_victim_entries():
    ctx = m.NativeContext(JumpCacheGeometry(), host_delta=0)
    ctx.fill(0, PAGE_A, 0x1000, read=True, write=True)
    ctx.fill(0, PAGE_B, 0x2000, read=True, write=True)
    ctx.flush_pages([PAGE_A])  # the victim's page
    main, victim = _entries(ctx, 0, PAGE_A)
    assert victim[:2] == (m.NO_PAGE, m.NO_PAGE)
    assert main[:2] == (_tag(PAGE_B), _tag(PAGE_B))
    ctx.fill(0, PAGE_A, 0x1000, read=True, write=True)
    ctx.clear()
    main, victim = _entries(ctx, 0, PAGE_A)
    assert main[:2] == victim[:2] == (m.NO_PAGE, m.NO_PAGE)
