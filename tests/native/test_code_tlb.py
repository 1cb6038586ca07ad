"""The code TLB behind the native dispatcher's jump caches (memory_softmmu.CodeTLB):
what a fill writes where the dispatcher reads it, and what dropping a page must reach
(its entries, and every jump cache slot its pcs may hold, since the dispatcher fills
those without Python knowing the pcs).  Generated code's side runs in
tests/system/test_jc_second_level.py."""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.backend.x86_64 import memory_softmmu as m
from pemu.accel.tcg.backend.x86_64 import runtime as rt

JC_BITS = 17
PC_SHIFT = 1
VPN = 0x80123
FLAGS = (1, 0x41)  # S-mode with and without SUM, say


class Geometry:
    """What NativeContext asks of the runtime: the jump cache's size and index."""

    jc_bits = JC_BITS
    jc_pc_shift = PC_SHIFT

    def new_jump_cache(self) -> ctypes.Array:
        return (ctypes.c_uint64 * (1 << JC_BITS))()

    def jc_index(self, pc: int, flags: int) -> int:
        return ((pc >> PC_SHIFT) ^ (flags * rt.JC_FLAGS_MIX)) & ((1 << JC_BITS) - 1)


def _entry(ctx: m.NativeContext, vpn: int, flags: int) -> tuple[int, int, int]:
    i = 2 * m.MAIN_WORDS + rt.code_tlb_index(vpn, flags) * rt.CODE_ENTRY_WORDS
    return ctx.tlb[i + rt.CODE_VPAGE], ctx.tlb[i + rt.CODE_FLAGS], ctx.tlb[i + rt.CODE_PAGE]


def _fill_jc(ctx: m.NativeContext, geometry: Geometry, vpn: int, flags: int) -> list[int]:
    """Jump cache slots of every pc of the page, as the dispatcher would fill them."""
    slots = [geometry.jc_index((vpn << 12) + off, flags) for off in range(0, 4096, 2)]
    for s in slots:
        ctx.jump_cache[s] = 0x1234
    return slots


def test_a_fill_is_where_the_dispatcher_reads_it():
    ctx = m.NativeContext(Geometry(), host_delta=0)
    assert m.CODE_TLB_OFFSET == 8 * 2 * m.MAIN_WORDS  # runtime reads it there
    for flags in FLAGS:
        ctx.fill_code(VPN, flags, 0x8765_4000 + flags)
    for flags in FLAGS:
        assert _entry(ctx, VPN, flags) == (VPN << 12, flags, 0x8765_4000 + flags)


def test_dropping_a_page_empties_its_entries_and_jump_cache_slots():
    g = Geometry()
    ctx = m.NativeContext(g, host_delta=0)
    other = VPN + 7
    ctx.fill_code(VPN, FLAGS[0], 0x1000)
    ctx.fill_code(other, FLAGS[0], 0x2000)
    page_slots = _fill_jc(ctx, g, VPN, FLAGS[0])
    kept = set(_fill_jc(ctx, g, other, FLAGS[0])) - set(page_slots)
    ctx.flush_pages([VPN])
    assert _entry(ctx, VPN, FLAGS[0])[0] == m.NO_PAGE
    assert _entry(ctx, other, FLAGS[0]) == (other << 12, FLAGS[0], 0x2000)
    assert all(ctx.jump_cache[s] == 0 for s in page_slots)
    assert kept and all(ctx.jump_cache[s] == 0x1234 for s in kept)


def test_a_page_without_code_leaves_the_jump_cache_alone():
    g = Geometry()
    ctx = m.NativeContext(g, host_delta=0)
    slots = _fill_jc(ctx, g, VPN, FLAGS[0])
    ctx.flush_pages([VPN])  # a data page: no code TLB entry was ever filled for it
    assert all(ctx.jump_cache[s] == 0x1234 for s in slots)


def test_clear_empties_the_code_tlb():
    ctx = m.NativeContext(Geometry(), host_delta=0)
    ctx.fill_code(VPN, FLAGS[1], 0x3000)
    ctx.clear()
    assert _entry(ctx, VPN, FLAGS[1])[0] == m.NO_PAGE
    assert not ctx.code.flags_of


def test_the_global_code_tlb_lies_right_after_the_global_jump_cache():
    g = Geometry()
    gjc = m.GlobalJumpCache(g)
    gjc.code.fill(VPN, FLAGS[0], 0x5000)
    i = (1 << JC_BITS) + rt.code_tlb_index(VPN, FLAGS[0]) * rt.CODE_ENTRY_WORDS
    assert gjc.jump_cache[i:i + 3] == [VPN << 12, FLAGS[0], 0x5000]
    slots = [g.jc_index((VPN << 12) + off, FLAGS[0]) for off in range(0, 4096, 2)]
    for s in slots:
        gjc.jump_cache[s] = 0x1234
    gjc.forget([VPN])
    assert gjc.jump_cache[i] == m.NO_PAGE
    assert all(gjc.jump_cache[s] == 0 for s in slots)
    gjc.code.fill(VPN, FLAGS[0], 0x5000)
    gjc.forget(None)
    assert gjc.jump_cache[i] == m.NO_PAGE
