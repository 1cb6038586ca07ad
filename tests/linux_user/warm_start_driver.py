"""Runs guest programs the way the binfmt server does (a prepared engine, one fork per
program), for test_warm_start.py; prints one JSON line per program run.

usage: warm_start_driver.py SCENARIO PROGRAM [ARGS...]   (PEMU_TB_CACHE: the cache)

SCENARIO names what happens before each of the two runs:
  refresh     prepare on an empty cache, run, refresh (the server after a child ends), run
  wrong-bytes run, prepare, file every preinstalled group under another page digest
              (blocks translated from other bytes at the same addresses), run
  damaged-spool  prepare, run, damage what its fork children spooled, refresh, run
  no-database prepare, run, refresh, damage the cache file, run (it needs no file),
              run again as a child that must read the file (the damage is a miss)
  thaw        prepare, run, refresh, run with chains deferred for one exit only (the
              child copies its code buffer at once and chains what it linked)
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

from pemu.accel.tcg import tb_cache, tb_spool
from pemu.accel.tcg.backend.x86_64 import runtime
from pemu.linux_user import warm_start
from pemu.linux_user.main import main


def run(program: list[str], database: bool | None = None) -> dict:
    """One program in a forked child, as binfmt_server._run_child runs it (with the
    cache file opened if ``database``; None: where the server would open it)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                tb_cache.pin(database=warm_start.needs_database(False)
                             if database is None else database)
                code = main(["-d", "stats", "--", *program], exec_natively=True)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        # every process prints its stats as it exits: the shell, which waits for
        # the others, last
        every = [{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
                 for line in stderr.splitlines() if ": stats:" in line]
        return {"status": os.waitstatus_to_exitcode(status), "stdout": out.read().decode(),
                "stderr": stderr[-2000:], "stats": every[-1] if every else {},
                "children": every[:-1]}


def main_driver(scenario: str, program: list[str]) -> None:
    if scenario == "refresh":
        prepared = warm_start.prepare("riscv64")
        print(json.dumps({"installed": len(prepared.engine.preinstalled)}))
        print(json.dumps(run(program)))
        print(json.dumps({"refreshed": prepared.refresh()}))
        print(json.dumps(run(program)))
    elif scenario == "no-database":
        prepared = warm_start.prepare("riscv64")
        print(json.dumps(run(program)))
        print(json.dumps({"refreshed": prepared.refresh(), "complete": prepared.complete}))
        db = prepared.engine.tb_cache.path
        for path in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
        db.write_bytes(b"SQLite format 3\0" + os.urandom(8192))
        print(json.dumps(run(program)))
        print(json.dumps(run(program, database=True)))
    elif scenario == "thaw":
        prepared = warm_start.prepare("riscv64")
        print(json.dumps(run(program)))
        print(json.dumps({"refreshed": prepared.refresh()}))
        runtime.MAX_EXITS_DEFERRING = 30  # (inherited by the forked child)
        print(json.dumps(run(program)))
    elif scenario == "wrong-bytes":
        # the children read the file: the groups filed under other digests are not
        # the blocks the file holds for these bytes
        print(json.dumps(run(program, database=True)))
        prepared = warm_start.prepare("riscv64")
        groups = prepared.engine.preinstalled.groups
        for page, by_digest in groups.items():
            groups[page] = {bytes(16): group for group in by_digest.values()}
        print(json.dumps({"installed": len(prepared.engine.preinstalled)}))
        print(json.dumps(run(program, database=True)))
    elif scenario == "damaged-spool":
        prepared = warm_start.prepare("riscv64")
        print(json.dumps(run(program)))
        print(json.dumps({"damaged": damage_spool_files(prepared)}))
        print(json.dumps({"refreshed": prepared.refresh()}))
        print(json.dumps(run(program)))
    else:
        raise SystemExit(f"unknown scenario {scenario}")


def damage_spool_files(prepared: warm_start.Prepared) -> list[str]:
    """Every spool file the fork children left, damaged (a byte of each block's code
    flipped, or the file cut short), and files that are no spool files at all."""
    folder = prepared.cache_folder
    table = prepared.engine.tb_cache.table
    spooled = sorted(p for p in folder.iterdir() if p.name.endswith(tb_spool.SUFFIX))
    for i, path in enumerate(spooled):
        data = path.read_bytes()
        if i % 2:
            path.write_bytes(data[: len(data) // 2])
            continue
        records = [(k, v[:20] + bytes([v[20] ^ 0x40]) + v[21:])
                   for k, v in tb_spool.read_spool(data, table)]
        path.unlink()
        fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)
        tb_spool.write_spool(fd, table, records)
        os.close(fd)
    (folder / f"junk{tb_spool.SUFFIX}").write_bytes(os.urandom(3000))
    (folder / f"empty{tb_spool.SUFFIX}").write_bytes(b"")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(tb_spool.SUFFIX))


if __name__ == "__main__":
    main_driver(sys.argv[1], sys.argv[2:])
