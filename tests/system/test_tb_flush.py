"""The translation cache fills up and is dropped while the guest runs.

``tb_flush.S`` runs 3 x 3000 distinct blocks with ``-accel tcg,tb-size=1`` (512 blocks
kept), so the whole cache is dropped many times, each time while a block is being
translated.  The native backend used to drop that very block too: the hart then missed
it in the jump cache forever (issue: the Debian guest hung in user mode, with the
timer interrupt taken again and again at one pc).  The same program passes on QEMU."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def test_blocks_run_across_cache_flushes(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("tb_flush")),
                 "-nographic", "-accel", f"tcg,backend={tcg_backend},tb-size=1",
                 "-d", "stats", timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout
    stats = r.stderr.decode()
    assert _translated(stats) > 3 * 3000, stats  # every pass translated its blocks again


def _translated(stats: str) -> int:
    return int(stats.split("translated ")[1].split()[0])


def test_cached_pages_are_not_installed_into_a_cache_too_small_for_them(build_program,
                                                                         tmp_path):
    """A small tb-size with pages of ~500 blocks: installing a page's known blocks at
    its first miss (from the cache file, or translated by this run for another
    address) would fill the 512-block cache and drop what runs, again at every page:
    4 M blocks installed in 30 s, for 18 k blocks run, until the page installs were
    bounded by the room left.  Both the run that fills the cache and the next one."""
    passes = 6
    args = ("-M", "virt", "-bios", "none", "-kernel",
            str(build_program("tb_flush", PASSES=passes)), "-nographic",
            "-accel", "tcg,backend=native,tb-size=1", "-d", "stats")
    for run in ("cold", "warm"):
        r = run_pemu(*args, timeout=120, env={"PEMU_TB_CACHE": str(tmp_path)})
        assert r.returncode == 0 and b"DONE" in r.stdout, r.stderr.decode()
        stats = r.stderr.decode()
        assert _translated(stats) <= 2 * passes * 3000, (run, stats)
    assert "from the translation cache" in stats


def test_tb_size_is_checked():
    r = run_pemu("-M", "virt", "-bios", "none", "-accel", "tcg,tb-size=0", "-nographic")
    assert r.returncode == 1
    assert b"tb-size=0" in r.stderr and b"MiB" in r.stderr


def test_unknown_accel_property_is_refused():
    r = run_pemu("-M", "virt", "-bios", "none", "-accel", "tcg,bogus=1", "-nographic")
    assert r.returncode == 1
    assert b"bogus" in r.stderr


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel",
                        str(build_program("tb_flush")), "-nographic",
                        "-accel", "tcg,tb-size=1"], capture_output=True, input=b"",
                       timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
