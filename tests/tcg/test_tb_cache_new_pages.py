"""The translation cache's blocks of this run, before they are stored (tb_cache.py):
a page's blocks put by one process are listed with the page (``page_pcs``) for the
next process that maps the same bytes, as a stored page's are, and the save at exit
stores every one of them whatever order they were put in."""

from __future__ import annotations

import random
from types import SimpleNamespace

from pemu.accel.tcg import tb_cache
from pemu.accel.tcg.tb_cache import PAGE_OFFSET_KEY_FLAG, TWO_PAGES_KEY_FLAG

FLAGS = 3 | PAGE_OFFSET_KEY_FLAG  # a user page's position-independent blocks
PAGE = b"p" * 16


def _gen(code: bytes) -> SimpleNamespace:
    """What the native backend keeps of a generated block (codegen.GeneratedBlock)."""
    return SimpleNamespace(code=code, entry=0, body=0, exits=[], ext_fixups=[],
                           helper_fixups=[])


def test_blocks_put_in_this_run_are_listed_with_their_page(tmp_path):
    cache = tb_cache.TranslationCache(tmp_path, "new pages")
    for off in (0x10, 0x40, 0x24):
        cache.put(FLAGS, off, PAGE, _gen(bytes([off])), 2)
    cache.put(FLAGS, 0x40, PAGE, _gen(b"\x40again"), 2)  # translated again: listed once
    cache.put(FLAGS & ~PAGE_OFFSET_KEY_FLAG, 0x1000, PAGE, _gen(b"o"), 1)  # other flags
    cache.put(FLAGS, 0x80, b"q" * 16, _gen(b"q"), 1)  # other bytes
    cache.put(FLAGS | TWO_PAGES_KEY_FLAG, 0xFFE, PAGE, _gen(b"t"), 1, b"n" * 16)
    assert cache.page_pcs(FLAGS, PAGE) == [0x10, 0x40, 0x24]
    entry, fixups = cache.get(FLAGS, 0x40, PAGE)
    assert entry[0] == b"\x40again" and fixups == []
    assert cache.page_pcs(FLAGS, b"r" * 16) == []
    # handed over to a writer (a migration): no longer this run's to install
    taken = cache.take_new()
    assert len(taken) == 6
    assert cache.page_pcs(FLAGS, PAGE) == [] and cache.get(FLAGS, 0x10, PAGE) is None


def test_stored_and_new_blocks_of_a_page_are_listed_once(tmp_path):
    first = tb_cache.TranslationCache(tmp_path, "new pages")
    for off in (0x10, 0x24):
        first.put(FLAGS, off, PAGE, _gen(bytes([off])), 1)
    first.save()
    second = tb_cache.TranslationCache(tmp_path, "new pages")  # the next run
    assert sorted(second.page_pcs(FLAGS, PAGE)) == [0x10, 0x24]
    second.put(FLAGS, 0x24, PAGE, _gen(b"again"), 1)
    second.put(FLAGS, 0x38, PAGE, _gen(b"new"), 1)
    assert sorted(second.page_pcs(FLAGS, PAGE)) == [0x10, 0x24, 0x38]


def test_a_save_stores_every_block_in_whatever_order_they_were_put(tmp_path):
    cache = tb_cache.TranslationCache(tmp_path, "order")
    rng = random.Random(7)
    # more blocks than one chunk of the save (SAVE_CHUNK), on pages of random digests
    keys = [(rng.randbytes(16), rng.randrange(0x1000) & ~1)
            for _ in range(tb_cache.SAVE_CHUNK * 2 + 5)]
    for digest, off in keys:
        cache.put(FLAGS, off, digest, _gen(digest + off.to_bytes(2, "little")), 1)
    cache.save()
    again = tb_cache.TranslationCache(tmp_path, "order")
    for digest, off in keys:
        hit = again.get(FLAGS, off, digest)
        assert hit is not None and hit[0][0] == digest + off.to_bytes(2, "little")
    assert again.get(FLAGS, 0xFFF, keys[0][0]) is None  # (all offsets are even)
