"""The translation cache kept across runs (accel/tcg/tb_cache.py) and the PEMU_COUNTERS
event counters (accel/tcg/counters.py), on bare-metal programs with the native backend.

The self-modifying-code program is the cache's hard case: the same pc holds different
code before and after a patch, and each version must be found by its page's bytes;
both runs must pass all its checks.  Making the cache key ignore the
page's bytes makes the second run run stale code and fail."""

from __future__ import annotations

import re

import pytest

from tests.system.conftest import run_pemu

pytestmark = pytest.mark.backends("native")


def _cached_blocks(stderr: bytes) -> tuple[int, int]:
    m = re.search(rb"translated (\d+) blocks in [\d.]+ s \((\d+) from the translation cache\)",
                  stderr)
    assert m, stderr.decode()[-2000:]
    return int(m.group(1)), int(m.group(2))


def _run_smc(program: str) -> tuple[int, int]:
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", program, "-nographic",
                 "-d", "stats", timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout
    return _cached_blocks(r.stderr)


def test_second_run_takes_its_blocks_from_the_cache(build_program, tcg_backend, tmp_path,
                                                     monkeypatch):
    monkeypatch.setenv("PEMU_TB_CACHE", str(tmp_path))
    program = str(build_program("smc"))
    translated, cached = _run_smc(program)
    # (a block dropped by fence.i and translated again from unchanged bytes may come
    # from the cache already in the first run)
    assert cached < translated // 2
    assert (tmp_path / "tb.sqlite").exists(), "no cache file was written"
    translated2, cached2 = _run_smc(program)
    assert translated2 == translated
    # the blocks of the patched page too (its bytes are the same as in the first run)
    assert cached + translated2 // 2 < cached2 <= translated2


def test_cached_fp_code_keeps_its_host_float_fast_path(build_program, tcg_backend,
                                                       tmp_path, monkeypatch):
    """FP blocks inline an SSE path that reads a host table: its address is relocated
    too (a cached block that kept the first process's address crashed the second)."""
    monkeypatch.setenv("PEMU_TB_CACHE", str(tmp_path))
    program = str(build_program("fs_tracking"))
    for run in range(2):
        r = run_pemu("-M", "virt", "-bios", "none", "-kernel", program, "-nographic",
                     "-d", "stats", timeout=120)
        assert r.returncode == 0, f"run {run}: check {r.returncode} failed"
        assert b"DONE" in r.stdout
    translated, cached = _cached_blocks(r.stderr)
    assert cached == translated


def test_cache_off_writes_nothing(build_program, tcg_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PEMU_TB_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    program = str(build_program("smc"))
    for _ in range(2):
        assert _run_smc(program)[1] == 0
    assert not list(tmp_path.rglob("tb*.sqlite"))


def test_counters_report_exits_csrs_and_translations(build_program, tcg_backend,
                                                     monkeypatch):
    monkeypatch.setenv("PEMU_COUNTERS", "1")
    monkeypatch.setenv("PEMU_TB_CACHE", "off")
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("traps")),
                 "-nographic", timeout=120)
    err = r.stderr.decode()
    assert "pemu counters over" in err, err[-2000:]
    counts = dict(re.findall(r"^  (\S.*?)\s+(\d+)\s+\d+/s$", err, re.M))
    assert int(counts["tb:translated"]) > 0
    assert int(counts["exit:miss"]) > 0
    assert any(name.startswith("csr:") for name in counts), counts
    assert any(name.startswith("trap:") for name in counts), counts


def test_counters_are_silent_when_off(build_program, tcg_backend, monkeypatch):
    monkeypatch.delenv("PEMU_COUNTERS", raising=False)
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("traps")),
                 "-nographic", timeout=120)
    assert b"pemu counters" not in r.stderr
