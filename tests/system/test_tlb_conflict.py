"""The native softmmu TLB keeps two hot pages 4 MiB apart at once.

programs/tlb_stride.S alternates loads and stores between two pages whose page
numbers are equal mod 1024.  In a TLB indexed by ``vpn % 1024`` they share an entry
and every access evicts the other page: each one missed the inline lookup and went
through Python (80 012 inline TLB misses for the program's 20 000 rounds, the cliff
behind lean boots that ran 3-7x longer).  ``-d stats`` reports the misses; with a
victim entry per set (memory_softmmu.NativeContext) only the first touch of each
page (and the UART/finisher MMIO stores) misses.
"""

from __future__ import annotations

import re

import pytest

from tests.system.conftest import run_pemu

ROUNDS = 20_000  # programs/tlb_stride.S: four accesses to the two pages per round


@pytest.mark.backends("native")
def test_pages_4mib_apart_do_not_evict_each_other(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel",
                 str(build_program("tlb_stride")), "-nographic", "-d", "stats",
                 timeout=120)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"check {r.returncode} failed\n{r.stdout!r}\n{err}"
    assert b"DONE" in r.stdout
    found = re.search(r"inline TLB misses (\d+)", err)
    assert found, err
    misses = int(found.group(1))
    # A handful of first touches and MMIO stores, far below one miss per round.
    assert misses < 100, f"{misses} inline TLB misses for {ROUNDS} rounds"

