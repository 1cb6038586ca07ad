"""Programs forked from a process that installed the translation cache's blocks first
(linux_user/warm_start.py, accel/tcg/preinstall.py: the binfmt server's children).

A real guest (busybox) runs in forked children exactly as the server runs them
(warm_start_driver.py); its stats (``-d stats``) say what each child translated, took
from the cache, or found installed.  The server's own path through binfmt_misc is in
test_binfmt.py (test_server_children_start_with_the_cached_blocks_installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs the native backend")
ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("warm_start_driver.py")
BUSYBOX = str(guest_file("riscv64/busybox"))
# a pipeline: the shell forks children that run with (a copy of) the preinstalled code
SCRIPT = "for i in 1 2 3 4 5; do echo line$i; done | sort -r | head -n 2; echo $((6*7))"
EXPECTED = "line5\nline4\n42\n"


def _drive(tmp_path: Path, scenario: str, *program: str) -> list[dict]:
    r = subprocess.run([sys.executable, str(DRIVER), scenario, *program],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT),
                                PEMU_TB_CACHE=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines()]


def _ok(run: dict) -> dict:
    assert run["status"] == 0, run["stderr"]
    assert "Traceback" not in run["stderr"], run["stderr"]
    return run["stats"]


def test_children_run_what_the_parent_installed_and_translate_nothing(tmp_path):
    installed, cold, refreshed, warm = _drive(tmp_path, "refresh", BUSYBOX, "sh", "-c",
                                              SCRIPT)
    assert installed == {"installed": 0}  # an empty cache
    assert cold["stdout"] == warm["stdout"] == EXPECTED
    cold_stats, warm_stats = _ok(cold), _ok(warm)
    assert cold_stats["translated"] > 300
    # what the first child wrote to the cache is installed in the parent ...
    assert refreshed["refreshed"] > 0.9 * cold_stats["translated"]
    # ... and the next child (the shell: it waited for its pipeline) translates nothing
    # and links them a page at a time (one exit per page, not one per block); only a
    # block that runs onto the next page comes from the cache file (it is not installed
    # ahead: it belongs to two pages)
    assert warm_stats["translated"] == 0
    assert warm_stats["preinstalled"] >= 0.9 * cold_stats["translated"]
    assert warm_stats["exits_miss"] < cold_stats["exits_miss"] // 4
    assert warm_stats.get("cached", 0) < 0.01 * cold_stats["translated"]
    # the shell's fork children (the pipeline's members: busybox runs its applets in
    # forks) could not open the cache; they left what they translated in its folder
    # (tb_spool.py) and find it installed too
    assert len(warm["children"]) == len(cold["children"]) == 3
    for child_cold, child_warm in zip(cold["children"], warm["children"], strict=True):
        assert child_cold["translated"] > 300
        assert child_warm["translated"] < 0.01 * child_cold["translated"]
    # nor does any of them copy the code buffer it shares with its parent (CodeBuffer.
    # freeze): chains into shared code wait, the few new blocks go to a private tail
    assert warm_stats["code_copies"] == 0
    assert all(child["code_copies"] == 0 for child in warm["children"])


def test_damaged_spool_files_are_misses(tmp_path):
    cold, damaged, refreshed, warm = _drive(tmp_path, "damaged-spool", BUSYBOX, "sh", "-c",
                                            SCRIPT)
    assert len(damaged["damaged"]) >= 4  # two or more from the children, junk, empty
    assert cold["stdout"] == warm["stdout"] == EXPECTED
    _ok(cold), _ok(warm)
    # the children's blocks (none of them intact) are translated again, not run damaged
    for child_cold, child_warm in zip(cold["children"], warm["children"], strict=True):
        assert child_warm["translated"] > 50, (child_cold, child_warm)
    # every damaged file was taken in or dropped (the files there now are the second
    # run's children's: they translated again)
    assert not set(damaged["damaged"]) & {p.name for p in (tmp_path / "cache").iterdir()}


def test_blocks_made_from_other_bytes_are_never_linked(tmp_path):
    # every preinstalled group filed under a digest no page has: as if the cache had
    # been filled by another program at the same addresses.  The child must check its
    # own page bytes, find no group, and take the right blocks the ordinary way.
    first, installed, second = _drive(tmp_path, "wrong-bytes", BUSYBOX, "sh", "-c", SCRIPT)
    assert installed["installed"] > 300
    assert first["stdout"] == second["stdout"] == EXPECTED
    stats = _ok(second)
    assert stats.get("preinstalled", 0) == 0
    assert stats["cached"] > 0.9 * _ok(first)["translated"]


def test_children_of_a_complete_prepared_engine_need_no_cache_file(tmp_path):
    # the prepared engine holds every block of the file (installed, or preloaded: a
    # block that runs onto the next page): the child opens no database (the file is
    # damaged under it, and it neither notices nor translates); a child that does read
    # the file finds the damage and translates instead (a miss, never a wrong block)
    cold, refreshed, without, reading = _drive(tmp_path, "no-database", BUSYBOX, "sh",
                                               "-c", SCRIPT)
    assert refreshed["complete"] and refreshed["refreshed"] > 300
    assert cold["stdout"] == without["stdout"] == reading["stdout"] == EXPECTED
    cold_stats, without_stats = _ok(cold), _ok(without)
    assert without_stats["translated"] == 0
    assert without_stats["preinstalled"] >= 0.9 * cold_stats["translated"]
    assert "unusable" not in without["stderr"]
    assert _ok(reading)["translated"] > 300


def test_a_thawed_child_chains_the_groups_it_linked(tmp_path):
    # exits out of a linked group's page wait (no record of the parent's touched) until
    # the child copies its code buffer; here it does so after 30 exits, when it has
    # linked most of its groups, and must then chain their exits, correctly (347
    # chains made here; 257 if the waiting exits were left unchained)
    cold, refreshed, thawed = _drive(tmp_path, "thaw", BUSYBOX, "sh", "-c", SCRIPT)
    assert cold["stdout"] == thawed["stdout"] == EXPECTED
    stats = _ok(thawed)
    assert stats["translated"] == 0 and stats["preinstalled"] > 300
    assert stats["code_copies"] >= 1
    assert stats["chained"] > 300
