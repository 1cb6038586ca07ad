"""SIGTERM ends pemu within seconds, as it ends QEMU, whatever the exit still had to do.

A hung guest's pemu did not exit on SIGTERM within 5 s: after the machine stopped, the
exit saved the run's translations into the shared cache file (tb_cache.py), waiting
up to 30 s for another process's transaction on it, then let the interpreter free
every object of the run (5-8 s for the lean Linux guest on a loaded host).  Now a
termination signal bounds the save (``hurry_exit_saves``) and the process leaves
without the teardown (``prompt_exit``).  Here another process holds the cache file's
lock, as a parallel test run's pemu writing its blocks does."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import pytest

from tests.system.conftest import ROOT, _native_supported, pemu_cmd, pemu_env

PROMPT_S = 5.0  # what libvirt and the test harnesses wait before they kill


def test_sigterm_exits_promptly_while_the_cache_file_is_locked(build_program, tmp_path):
    if not _native_supported():
        pytest.skip("the translation cache is the native backend's")
    cache = tmp_path / "tb-cache"
    env = pemu_env() | {"PEMU_TB_CACHE": str(cache)}
    proc = subprocess.Popen(pemu_cmd("-accel", "tcg,backend=native", "-M", "virt",
                                     "-bios", "none", "-kernel", str(build_program("spin")),
                                     "-serial", "stdio"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    holder = None
    try:
        assert proc.stdout.read(2) == b"R\n"  # the guest runs: its blocks are new
        db_file = cache / "tb.sqlite"  # opened by the first translation
        assert db_file.exists()
        holder = sqlite3.connect(db_file, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another pemu saving its blocks
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("pemu did not exit on SIGTERM within 60 s")
        took = time.monotonic() - start
    finally:
        if holder is not None:
            holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert b"terminating on signal 15" in err
    assert took < PROMPT_S, f"pemu took {took:.1f} s to exit on SIGTERM"
