"""Blocks that run onto the next page and the translation cache (system mode): kept
under the first page's bytes with the next page's digest, which must match when the
block is found again (programs/two_pages.S: an addi whose immediate is on the next
page).  Before, such blocks were never cached: Debian's kernel translated 1.7 k of
them again on every boot."""

from __future__ import annotations

import pytest

from tests.system.test_tb_cache_aslr import _run


@pytest.mark.backends("native")
def test_a_block_over_two_pages_comes_from_the_cache_while_both_pages_match(
        build_program, tcg_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PEMU_TB_CACHE", str(tmp_path))
    step1 = str(build_program("two_pages", STEP=1))
    translated, _ = _run(step1)
    assert _run(step1) == (translated, translated), "a block translated again"
    # the same first page, another second page: the program checks it adds 5, so the
    # block cached for STEP=1 must not run
    step5 = str(build_program("two_pages", STEP=5))
    translated5, _ = _run(step5)
    assert _run(step5) == (translated5, translated5)
