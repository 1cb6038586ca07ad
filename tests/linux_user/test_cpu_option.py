"""pemu-riscv64's ``-cpu MODEL[,ext=on|off]`` (and QEMU_CPU): the extensions a program
may use, as qemu-riscv64 7.2 spells them."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import run_pemu

from tests.riscv.rvtest_harness import build

XPERM8 = 0x28C5C533  # xperm8 a0, a1, a2 (Zbkx): a0 = byte 1 of a1 = 0x22
PROGRAM = f"""
.globl _start
_start:
    li a1, 0x44332211
    li a2, 1
    .word 0x{XPERM8:08x}
    li a7, 93
    ecall
"""


@pytest.fixture(scope="module")
def xperm_elf(tmp_path_factory):
    elf, _ = build(PROGRAM, tmp_path_factory.mktemp("cpu"), "xperm", rvc=False)
    return elf


@pytest.mark.parametrize(("cpu", "status"), [
    ("rv64,zbkx=true", 0x22), ("max", 0x22), ("rv64", -signal.SIGILL),
    ("max,zbkx=off", -signal.SIGILL),
])
def test_cpu_properties_choose_the_extensions(xperm_elf, cpu, status):
    r = run_pemu("-cpu", cpu, str(xperm_elf), timeout=60)
    assert r.returncode == status, r.stderr.decode()


def test_qemu_cpu_environment_variable(xperm_elf):
    r = run_pemu(str(xperm_elf), timeout=60, env={**os.environ, "QEMU_CPU": "rv64,zbkx=on"})
    assert r.returncode == 0x22, r.stderr.decode()


def test_cpu_help_and_bad_properties():
    r = run_pemu("-cpu", "help", "/nonexistent", timeout=60)
    assert r.returncode == 0
    assert {line.split()[0] for line in r.stdout.decode().splitlines()[1:]} >= {"rv64", "max"}
    r = run_pemu("-cpu", "rv64,zbkx=perhaps", "/nonexistent", timeout=60)
    assert r.returncode == 1
    assert "Parameter 'zbkx' expects 'on' or 'off'" in r.stderr.decode()
