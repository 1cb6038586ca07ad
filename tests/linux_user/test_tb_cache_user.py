"""User mode's translation cache kept across processes (accel/tcg/tb_cache.py): a
program's second start takes its blocks from the cache and gives the same result; a
damaged cache file is a cache miss, never a traceback or a wrong answer; forked
children (a shell pipeline) share the file."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

# the cache holds native code: the python backend has none to keep
pytestmark = pytest.mark.skipif(not host_supported(), reason="needs the native backend")
NATIVE = ("-accel", "tcg,backend=native")
ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = guest_file("riscv64/busybox")


def run_pemu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.linux_user.main", *args],
                          capture_output=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **env))

SCRIPT = "for i in 1 2 3 4 5; do echo line$i; done | sort -r | head -n 2; echo $((6*7))"
EXPECTED = b"line5\nline4\n42\n"


def _run(tmp_path, *args: str) -> tuple[bytes, int, int]:
    """(stdout, blocks translated, blocks from the cache) of the shell (each process
    prints its stats at exit; the shell, which waits for the others, is the last)."""
    r = run_pemu(*NATIVE, "-d", "stats", str(BUSYBOX), *args,
                 env={"PEMU_TB_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert b"Traceback" not in r.stderr, r.stderr.decode()[-3000:]
    lines = [line for line in r.stderr.decode().splitlines() if ": stats:" in line]
    assert lines, r.stderr.decode()[-2000:]
    stats = dict(re.findall(r"(\w+)=(\d+)", lines[-1]))
    return r.stdout, int(stats["translated"]), int(stats.get("cached", 0))


def test_second_start_takes_its_blocks_from_the_cache(tmp_path):
    out, translated, cached = _run(tmp_path, "sh", "-c", SCRIPT)
    assert out == EXPECTED
    # (the shell may already find blocks its children stored when they exited)
    assert translated > 100 and cached < translated // 4
    assert (tmp_path / "cache" / "tb.sqlite").exists()
    out2, translated2, cached2 = _run(tmp_path, "sh", "-c", SCRIPT)
    assert out2 == EXPECTED
    # nearly everything is found: what is left straddles a page or was never stored
    assert cached2 > 0.9 * translated
    assert translated2 < 0.1 * translated


def test_damaged_records_are_misses(tmp_path):
    out, translated, cached = _run(tmp_path, "sh", "-c", SCRIPT)
    db = sqlite3.connect(tmp_path / "cache" / "tb.sqlite")
    with db:
        (table,) = db.execute("SELECT name FROM versions").fetchone()
        rows = db.execute(f"SELECT k, v FROM {table}").fetchall()
        # flip one byte in the code of every block: each must be refused, not run
        db.executemany(f"UPDATE {table} SET v = ? WHERE k = ?",
                       ((v[:20] + bytes([v[20] ^ 0x40]) + v[21:], k) for k, v in rows))
    db.close()
    out2, translated2, cached2 = _run(tmp_path, "sh", "-c", SCRIPT)
    assert out2 == EXPECTED
    # as cold as the first run (where only what the children stored was found), where
    # the undamaged cache gives nearly all (see above)
    assert translated2 > 0.9 * translated and cached2 < cached + 0.1 * translated


def test_a_file_that_is_not_a_cache_is_ignored(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tb.sqlite").write_bytes(b"not a database\n" * 1000)
    r = run_pemu(*NATIVE, str(BUSYBOX), "sh", "-c", SCRIPT,
                 env={"PEMU_TB_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0 and r.stdout == EXPECTED
    assert b"Traceback" not in r.stderr
    assert b"translation cache" in r.stderr  # asked for by PEMU_TB_CACHE: says why not
