"""The engine's block index with preinstalled groups kept whole (engine.TBCache): a
group's blocks are found, listed, invalidated and flushed like blocks entered one by
one, without being entered one by one."""

from __future__ import annotations

from pemu.accel.tcg.engine import TBCache, TranslationBlock

PAGE = 0x123


def _tb(pc: int, flags: int = 0, pages: tuple[int, ...] | None = None) -> TranslationBlock:
    return TranslationBlock(pc, flags, 4, 1, lambda s, c: pc, pages or (pc >> 12,))


def test_group_blocks_are_found_listed_and_dropped_with_their_page():
    cache = TBCache()
    group = {pc: _tb(pc) for pc in range(PAGE << 12, (PAGE << 12) + 64, 4)}
    single = _tb((PAGE + 1) << 12)
    cache.insert(single)
    cache.insert_group(PAGE, group)
    assert len(cache) == len(group) + 1
    assert cache.get(0, (PAGE << 12) + 8) is group[(PAGE << 12) + 8]
    assert cache.get(1, (PAGE << 12) + 8) is None  # groups hold flags 0 only
    assert cache.get(0, (PAGE << 12) + 2) is None
    assert cache.get(0, single.pc) is single
    assert set(cache.on_page(PAGE)) == set(group.values())
    assert cache.pages() == {PAGE, PAGE + 1}
    # a block of the group looked up and entered again (engine.translate does) is
    # dropped with the page all the same
    cache.insert(group[PAGE << 12])
    assert cache.invalidate_page(PAGE)
    assert cache.get(0, PAGE << 12) is None and not cache.on_page(PAGE)
    assert not cache.invalidate_page(PAGE)
    assert cache.get(0, single.pc) is single
    assert sorted(cache.flush()) == [PAGE + 1]
    assert len(cache) == 0 and cache.get(0, single.pc) is None


def test_a_group_alone_on_its_page_counts_as_invalidated():
    cache = TBCache()
    cache.insert_group(PAGE, {PAGE << 12: _tb(PAGE << 12)})
    assert cache.invalidate_page(PAGE)
    assert cache.flush() == []
