"""User code under ASLR and the translation cache (accel/tcg/tb_cache.py): a user-mode
page's blocks are position-independent (ir.Block.pc_relative) and cached by their
offset in the page, so the same bytes mapped at another virtual address (a shared
library in another process, or in the next boot) take their code from the cache.

programs/aslr_user.S runs one user page at two addresses and checks every value the
code derives from its pc (auipc, links, the pc of a trap and of a faulting load's slow
path) at each; its builds differ only in where the page is mapped.  Before the page-
offset keys, every address was translated again (Debian's second boot translated 80 k
blocks of its userland that the first boot had translated at other addresses)."""

from __future__ import annotations

import re

import pytest

from tests.system.conftest import run_pemu

# the user page's blocks: auipc+jal, the loop's head, the loop, the data load, ebreak,
# the faulting load, the far jal, the far page end's jump, the ecall
USER_BLOCKS = 9


def _run(program: str) -> tuple[int, int]:
    """(blocks translated, of them from the translation cache) of a passing run."""
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", program, "-nographic",
                 "-d", "stats", timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()[-2000:]}"
    assert b"DONE" in r.stdout
    m = re.search(rb"translated (\d+) blocks in [\d.]+ s \((\d+) from the translation cache\)",
                  r.stderr)
    assert m, r.stderr.decode()[-2000:]
    return int(m.group(1)), int(m.group(2))


@pytest.mark.backends("native")
def test_user_code_at_other_addresses_comes_from_the_cache(build_program, tcg_backend,
                                                           tmp_path, monkeypatch):
    monkeypatch.setenv("PEMU_TB_CACHE", str(tmp_path))
    first = str(build_program("aslr_user", VA_A=0x10000, VA_B=0x1A5000))
    translated, cached = _run(first)
    # the second address's blocks are the first's, installed there
    assert cached >= USER_BLOCKS, (translated, cached)
    # "the next boot": the same code pages, the user page at two other addresses
    second = str(build_program("aslr_user", VA_A=0x3000, VA_B=0x1FF000))
    translated2, cached2 = _run(second)
    assert translated2 == translated
    assert cached2 == translated2, "blocks translated again at another address"


@pytest.mark.backends("python")
def test_the_reference_backend_runs_the_user_page_at_both_addresses(build_program,
                                                                    tcg_backend):
    """The program's checks hold where nothing is cached (pc_rel is a constant)."""
    _run(str(build_program("aslr_user", VA_A=0x3000, VA_B=0x1FF000)))
