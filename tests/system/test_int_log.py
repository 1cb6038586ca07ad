"""``-d int``: one line per interrupt and exception, in QEMU's format.

``int_log.S`` takes a fixed sequence of traps (illegal instruction, ecalls from M, U and
S, a machine timer interrupt at a fixed pc), so the log is deterministic: it must be
exactly what Debian's qemu-system-riscv64 writes for the same program, on both backends.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
LINE = re.compile(r"riscv_cpu_do_interrupt: hart:0, async:([01]), cause:([0-9a-f]{16}), "
                  r"epc:0x([0-9a-f]{16}), tval:0x([0-9a-f]{16}), desc=(\w+)$")
EXPECTED = [("0", "illegal_instruction"), ("0", "machine_ecall"), ("0", "user_ecall"),
            ("0", "supervisor_ecall"), ("1", "m_timer")]


def _pemu_log(program, tmp_path) -> str:
    log = tmp_path / "pemu-int.log"
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(program), "-nographic",
                 "-d", "int", "-D", str(log), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return log.read_text()


def test_int_log_lists_every_trap(build_program, tcg_backend, tmp_path):
    lines = _pemu_log(build_program("int_log"), tmp_path).splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(5)) for m in parsed] == EXPECTED
    illegal = parsed[0]
    assert int(illegal.group(4), 16) == 0xC0001073  # tval: the instruction's bits
    assert int(parsed[4].group(2), 16) == 7  # the cause without the interrupt bit


def test_int_log_matches_qemu(build_program, tcg_backend, tmp_path):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    program = build_program("int_log")
    qemu_log = tmp_path / "qemu-int.log"
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(program),
                        "-nographic", "-d", "int", "-D", str(qemu_log)],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
    assert _pemu_log(program, tmp_path) == qemu_log.read_text()


def test_int_log_goes_to_stderr_without_D(build_program):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("int_log")),
                 "-nographic", "-d", "int", timeout=60)
    assert r.returncode == 0
    assert r.stderr.decode().count("riscv_cpu_do_interrupt:") == len(EXPECTED)


def test_log_file_that_cannot_be_opened(tmp_path):
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic", "-d", "int",
                 "-D", str(tmp_path / "missing" / "log"))
    assert r.returncode == 1
    assert b"-D" in r.stderr and b"No such file" in r.stderr


def test_d_help_lists_the_items():
    r = run_pemu("-d", "help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for item in ("int", "in_asm", "op", "op_opt", "stats"):
        assert re.search(rf"^{item}\s", out, re.M), out


def test_unsupported_log_item_is_refused():
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic", "-d", "exec")
    assert r.returncode == 1
    assert b"-d exec" in r.stderr


def test_in_asm_disassembles_each_translated_block(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("int_log")),
                 "-nographic", "-d", "in_asm", timeout=60)
    assert r.returncode == 0
    log = r.stderr.decode()
    assert log.count("IN: ") >= 5  # blocks of _start, the trap handler, user and S code
    assert re.search(r"0x0*80000000:\s.*auipc", log), log[:2000]  # la t0, mtrap
    assert "ecall" in log and "mret" in log
