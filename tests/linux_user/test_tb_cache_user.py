"""User mode's translation cache kept across processes (accel/tcg/tb_cache.py): a
program's second start takes its blocks from the cache and gives the same result; a
damaged cache file is a cache miss, never a traceback or a wrong answer; forked
children (a shell pipeline) share the file."""

from __future__ import annotations

import os
import random
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


def _checkpointed(db_path: Path) -> bytes:
    """The cache file with everything in it (the WAL folded in), as bytes."""
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return db_path.read_bytes()


def _run_damaged(tmp_path: Path, image: bytes) -> None:
    """The shell on a cache file holding ``image``: the right answer, no traceback."""
    cache = tmp_path / "damaged"
    cache.mkdir(exist_ok=True)
    for name in ("tb.sqlite", "tb.sqlite-wal", "tb.sqlite-shm"):
        (cache / name).unlink(missing_ok=True)
    (cache / "tb.sqlite").write_bytes(image)
    r = run_pemu(*NATIVE, str(BUSYBOX), "sh", "-c", SCRIPT,
                 env={"PEMU_TB_CACHE": str(cache)})
    assert b"Traceback" not in r.stderr, r.stderr.decode()[-3000:]
    assert (r.stdout, r.returncode) == (EXPECTED, 0), r.stderr.decode()[-2000:]


def test_random_bit_flips_and_truncation_are_misses(tmp_path):
    """A cache file damaged anywhere (SQLite's pages, keys, stored code) or cut short:
    a miss or an unusable file, never a traceback or a wrong result."""
    _run(tmp_path, "sh", "-c", SCRIPT)
    image = _checkpointed(tmp_path / "cache" / "tb.sqlite")
    rng = random.Random(20)
    for _ in range(3):
        damaged = bytearray(image)
        for at in rng.sample(range(len(image)), 64):
            damaged[at] ^= 1 << rng.randrange(8)
        _run_damaged(tmp_path, bytes(damaged))
    _run_damaged(tmp_path, image[:len(image) // 2])


def test_a_damaged_key_is_a_miss(tmp_path):
    """A record whose key names another pc of the same page (one bit of the pc
    flipped): its code must not run there.  The checksum covers the key."""
    _out, translated, cached = _run(tmp_path, "sh", "-c", SCRIPT)
    db = sqlite3.connect(tmp_path / "cache" / "tb.sqlite")
    with db:
        (table,) = db.execute("SELECT name FROM versions").fetchone()
        rows = db.execute(f"SELECT k, v FROM {table}").fetchall()
        db.execute(f"DELETE FROM {table}")
        # key: 16 bytes page digest, 8 flags, 8 pc; swap each pair of neighbours' code
        keys = sorted(k for k, _v in rows)
        code = dict(rows)
        db.executemany(f"INSERT INTO {table} VALUES (?, ?)",
                       ((a, code[b]) for a, b in zip(keys, keys[1:] + keys[:1], strict=True)))
    db.close()
    out2, translated2, cached2 = _run(tmp_path, "sh", "-c", SCRIPT)
    assert out2 == EXPECTED
    # as cold as the first run (see test_damaged_records_are_misses)
    assert translated2 > 0.9 * translated and cached2 < cached + 0.1 * translated


def test_the_cache_is_on_by_default(tmp_path):
    """No PEMU_TB_CACHE: the cache lives in $XDG_CACHE_HOME/pemu, a second start
    takes its blocks from there."""
    env = {k: v for k, v in os.environ.items() if k != "PEMU_TB_CACHE"}
    env.update(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    stats = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "pemu.linux_user.main", *NATIVE, "-d",
                            "stats", str(BUSYBOX), "echo", "hi"], capture_output=True,
                           timeout=240, env=env)
        assert (r.stdout, r.returncode) == (b"hi\n", 0), r.stderr.decode()[-2000:]
        line = [x for x in r.stderr.decode().splitlines() if ": stats:" in x][-1]
        stats.append(dict(re.findall(r"(\w+)=(\d+)", line)))
    assert (tmp_path / "xdg" / "pemu" / "tb.sqlite").exists()
    assert int(stats[1].get("cached", 0)) > 0.9 * int(stats[0]["translated"])


def test_the_guests_descriptors_are_not_the_caches(tmp_path):
    """A guest's `exec 5>file` takes descriptor 5 whatever the host process holds there;
    the cache's SQLite files once sat at 3 to 6, and the cache's writes went into the
    guest's files (configure's config.log, its stdout), or the guest's into the cache."""
    numbers = range(3, 10)
    opened = " ".join(f"{n}>{tmp_path / f'fd{n}'}" for n in numbers)
    script = (f"exec {opened}; for n in {' '.join(map(str, numbers))}; do "
              "eval \"echo fd$n >&$n\"; done; " + SCRIPT)
    for run in range(2):  # the second with the blocks the first stored
        out, translated, cached = _run(tmp_path, "sh", "-c", script)
        assert out == EXPECTED
        for n in numbers:
            assert (tmp_path / f"fd{n}").read_bytes() == f"fd{n}\n".encode(), (run, n)
    assert cached > translated
    db = sqlite3.connect(tmp_path / "cache" / "tb.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_a_busy_cache_neither_holds_the_run_up_nor_loses_its_blocks(tmp_path):
    """Another process's long write transaction (a distro boot's save holds the lock for
    many seconds) used to hold every exiting pemu for up to 30 s, and a new version's
    first look waited for the lock too.  Now the run waits a moment, leaves its blocks
    in a spool file beside the cache, and the next save that gets the lock moves them in."""
    folder = tmp_path / "cache"
    folder.mkdir()
    holder = sqlite3.connect(folder / "tb.sqlite", isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE versions (name TEXT PRIMARY KEY, used REAL)")
    holder.execute("BEGIN IMMEDIATE")  # held through the whole first run
    try:
        out, translated, _ = _run(tmp_path, "sh", "-c", SCRIPT)
        assert out == EXPECTED and translated > 100
        spooled = [p for p in folder.iterdir() if p.name.endswith(".tbspool")]
        assert spooled, sorted(p.name for p in folder.iterdir())
    finally:
        holder.rollback()
        holder.close()
    # the lock is free: this run's save imports the spooled blocks as well
    out, _, _ = _run(tmp_path, "true")
    assert out == b""
    assert not [p for p in folder.iterdir() if p.name.endswith(".tbspool")]
    out, translated2, cached2 = _run(tmp_path, "sh", "-c", SCRIPT)
    assert out == EXPECTED
    assert cached2 > 0.9 * translated and translated2 < 0.1 * translated
