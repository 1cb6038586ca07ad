"""Differential test: the same static programs on qemu-riscv64 and on pemu's TCG.

Each program (rvtest_programs) sweeps instruction classes over tables of edge-case
operands and writes every result, plus the fflags of each FP operation, to stdout.
The outputs must be byte-identical, except for one documented qemu 7.2 bug that is
checked against the specification instead.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from rvtest_harness import build, run_image, run_qemu
from rvtest_programs import CTZW_SECTION, INT_VALUES, PROGRAMS, Program


def _ctzw(v: int) -> int:
    low = v & 0xFFFF_FFFF
    return (low & -low).bit_length() - 1 if low else 32


def _section_range(program: Program, name: str) -> range:
    start = 0
    for section, n in program.sections:
        if section == name:
            return range(start, start + n)
        start += n
    return range(0)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_matches_qemu(name: str, tmp_path: Path) -> None:
    program = PROGRAMS[name]()
    elf, image = build(program.source(), tmp_path, name)
    qemu_status, expected = run_qemu(elf)
    assert qemu_status == 0, "the program failed under qemu-riscv64 itself"
    outcome = run_image(image, linux=True)
    assert outcome.trap is None, f"stopped by {outcome.trap} at pc 0x{outcome.pc:x}"
    assert outcome.exit_code == 0
    got = bytes(outcome.stdout)
    assert len(got) == len(expected) == program.total_slots * 8

    spec_checked = _section_range(program, CTZW_SECTION)
    if spec_checked:
        for slot, value in zip(spec_checked, INT_VALUES, strict=True):
            assert struct.unpack_from("<Q", got, slot * 8)[0] == _ctzw(value)
    mismatches = []
    for slot in range(program.total_slots):
        if slot in spec_checked:
            continue
        theirs, ours = expected[slot * 8:slot * 8 + 8], got[slot * 8:slot * 8 + 8]
        if theirs != ours:
            mismatches.append(f"{program.slot_name(slot)}: qemu 0x{theirs[::-1].hex()}, "
                              f"pemu 0x{ours[::-1].hex()}")
    assert not mismatches, f"{len(mismatches)} differences:\n" + "\n".join(mismatches[:30])
