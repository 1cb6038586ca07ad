"""RISC-V pointer masking (Smmpm, Smnpm, Ssnpm) in system mode.

QEMU 7.2 has no pointer masking, so the oracle is the specification: a bare-metal
program (programs/pointer_masking.S) checks the PMM fields' WARL rules, masking in M,
S, U and for hlv/hsv with PMLEN 7 and 16, zero vs sign extension (Bare vs Sv39), every
kind of data access, unmasked instruction fetch, MXR and MPRV, on both backends; the
spec's own example of the transformation; and that a block translated without
masking carries no masking op (what keeps its cost zero for everyone else).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pemu.accel.tcg.opcodes import SAR, SHL, SHR
from pemu.target.riscv.isa import parse_cpu
from pemu.target.riscv.pointer_masking import (
    CODE_SIGNED,
    FLAG_PM_SHIFT,
    code,
    legal_write,
    transform,
)
from pemu.target.riscv.translate import translate_block
from tests.system.conftest import run_pemu

PMM7, PMM16 = 2, 3


def _run(elf, cpu: str):
    return run_pemu("-M", "virt", "-bios", "none", "-cpu", cpu, "-kernel", str(elf),
                    "-nographic", timeout=120)


@pytest.mark.usefixtures("tcg_backend")
def test_pointer_masking_in_every_mode(build_program) -> None:
    r = _run(build_program("pointer_masking"), "max")
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


@pytest.mark.usefixtures("tcg_backend")
@pytest.mark.backends("native")
def test_without_the_extensions_nothing_is_masked(build_program) -> None:
    r = _run(build_program("pointer_masking", ABSENT=1), "rv64")
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"


def test_the_spec_example() -> None:
    # Pointer Masking 1.0, "Example": Sv57, PMLEN 7
    assert transform(0xABFFFFFF12345678, code(PMM7, True)) == 0xFFFFFFFF12345678
    assert transform(0xABFFFFFF12345678, code(PMM7, False)) == 0x01FFFFFF12345678
    # PMLEN 16: bit 47 decides for a virtual address, nothing for a physical one
    assert transform(0x1234_8000_0000_0000, code(PMM16, True)) == 0xFFFF_8000_0000_0000
    assert transform(0x1234_8000_0000_0000, code(PMM16, False)) == 0x0000_8000_0000_0000
    assert transform(0xFFFF_0000_0000_1000, 0) == 0xFFFF_0000_0000_1000


def test_pmm_is_warl() -> None:
    old = PMM16 << 32
    assert legal_write(old, 1 << 32, True) == old  # reserved: unchanged
    assert legal_write(old, PMM7 << 32, True) == PMM7 << 32
    assert legal_write(old, 0, True) == 0
    assert legal_write(0, PMM16 << 32, False) == 0  # without the extension: read-only 0


def _ops(flags: int) -> list[str]:
    ld = (8 << 20 | 11 << 15 | 3 << 12 | 10 << 7 | 0x03).to_bytes(4, "little")  # ld a0, 8(a1)
    code_bytes = ld + (0x00008067).to_bytes(4, "little")  # ret

    def fetch(addr: int, size: int) -> int:
        offset = addr - 0x1000
        return int.from_bytes(code_bytes[offset:offset + size], "little")

    block = translate_block(0x1000, flags, fetch, isa=parse_cpu("max"))
    return [op.opc.name for op in block.ops]


def test_masking_is_in_the_translation_only_where_the_flags_ask() -> None:
    plain = _ops(0)
    assert SHL.name not in plain and SAR.name not in plain and SHR.name not in plain
    signed = _ops(code(PMM16, True) << FLAG_PM_SHIFT)
    assert signed.count(SHL.name) == 1 and signed.count(SAR.name) == 1
    zero = _ops(code(PMM7, False) << FLAG_PM_SHIFT)
    assert zero.count(SHL.name) == 1 and zero.count(SHR.name) == 1
    assert code(PMM16, True) & CODE_SIGNED


def test_device_tree_lists_them(tmp_path, build_program) -> None:
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    dtb = tmp_path / "virt.dtb"
    r = run_pemu("-M", f"virt,dumpdtb={dtb}", "-m", "64M", "-cpu", "rv64,smmpm=on,ssnpm=on",
                 "-bios", "none", "-kernel", str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                         text=True, check=True).stdout
    line = next(ln for ln in dts.splitlines() if "riscv,isa-extensions = " in ln)
    # dtc prints a list with one-letter strings as one string with \0 separators
    listed = line.split(" = ", 1)[1].rstrip(";").strip('"').replace('", "', "\\0")
    assert listed.split("\\0")[-5:] == ["zbs", "smmpm", "ssnpm", "sstc", "supm"]
    assert 'riscv,isa = "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_smmpm_ssnpm_' \
        'sstc_supm";' in dts


def test_isa_names_and_profile() -> None:
    rva23 = parse_cpu("rva23s64")
    assert {"ssnpm", "supm"} <= rva23.extensions and not rva23.missing
    assert {"smmpm", "smnpm", "ssnpm", "supm"} <= parse_cpu("max").extensions
    assert not {"smmpm", "smnpm", "ssnpm", "supm"} & parse_cpu("rv64").extensions
    one = parse_cpu("rv64,smmpm=true")
    assert "smmpm" in one.isa_extensions and "smnpm" not in one.extensions
    assert "supm" in parse_cpu("rv64,ssnpm=on").isa_extensions  # Ssnpm gives U Supm
    assert "sspm" in parse_cpu("rv64,smnpm=on").isa_extensions  # Smnpm gives S Sspm
