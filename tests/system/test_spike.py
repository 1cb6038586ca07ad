"""The spike board: HTIF console output and the exit status through tohost."""

from __future__ import annotations

import pytest

from tests.system.conftest import run_pemu

pytestmark = pytest.mark.usefixtures("tcg_backend")  # every test on both backends


def test_htif_console_and_pass(build_program):
    elf = build_program("htif", EXITCODE=0)
    r = run_pemu("-M", "spike", "-bios", "none", "-kernel", str(elf), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"spike says hi\n"


def test_htif_failing_test_number(build_program):
    elf = build_program("htif", EXITCODE=5)
    r = run_pemu("-M", "spike", "-bios", str(elf), timeout=60)
    assert r.returncode == 5
    assert b"spike says hi" in r.stdout


def test_spike_needs_tohost(build_program):
    elf = build_program("finisher_fail")
    r = run_pemu("-M", "spike", "-bios", "none", "-kernel", str(elf), timeout=60)
    assert r.returncode == 1
    assert b"tohost" in r.stderr
