"""Bare-metal programs under -bios none: traps, delegation, interrupts, paging.

Each program checks its own results and reports through the SiFive test finisher:
exit status 0 means every check passed, N the number of the first failing check.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import run_pemu

pytestmark = pytest.mark.usefixtures("tcg_backend")  # every test on both backends


def _run(elf, *extra: str):
    return run_pemu("-M", "virt", "-bios", "none", "-kernel", str(elf), "-nographic",
                    *extra, timeout=120)


def test_traps_delegation_and_interrupts(build_program):
    r = _run(build_program("traps"))
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


@pytest.mark.parametrize("levels,name", [(3, "sv39"), (4, "sv48"), (5, "sv57")])
def test_paging_permissions_and_faults(build_program, levels, name):
    r = _run(build_program("paging", LEVELS=levels))
    assert r.returncode == 0, f"{name}: check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_failure_status_reaches_the_host(build_program):
    """A failing check number becomes pemu's exit status (QEMU's finisher semantics)."""
    r = _run(build_program("finisher_fail"))
    assert r.returncode == 42


def test_malformed_virtio_chain_flags_the_device_and_the_vm_runs_on(build_program, tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    r = _run(build_program("virtio_bad_chain"), "-drive", f"file={disk},format=raw,if=virtio")
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout
    assert b"Traceback" not in r.stderr


def test_guest_reset_reboots_unless_no_reboot(build_program):
    elf = build_program("reboot")
    r = _run(elf)
    assert r.returncode == 0
    assert r.stdout.startswith(b"12DONE")  # booted twice, RAM kept across the reset
    r = _run(elf, "-no-reboot")
    assert r.returncode == 0
    assert r.stdout == b"1"  # the reset request ends the run


def test_asid_switches_and_asid_scoped_sfence(build_program):
    """Two address spaces with their own ASIDs: no fence between switches, and
    sfence.vma by ASID, by page and for everything each make a changed PTE visible;
    code on a global page runs in both and follows its remapping (a global jump
    cache that a page flush without an ASID left alone fails check 16)."""
    r = _run(build_program("asid"))
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout
