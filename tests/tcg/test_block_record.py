"""PEMU_RECORD_BLOCKS (bench/bench_translate.py's recordings) and the collector's pace."""

from __future__ import annotations

import gc
import struct

import pytest

from pemu.accel.tcg.block_record import RECORD_ENV, read_records
from pemu.accel.tcg.engine import TCGEngine
from pemu.accel.tcg.gc_policy import (
    MIDDLE_THRESHOLD,
    YOUNG_THRESHOLD,
    pace_collector_for_translation,
)
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, GuestVirtualMemory
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.tcg_target import RISCV64

CODE = 0x10000
ADDI_X5_7 = 0x00700293  # addi x5, x0, 7
BEQ_X0_X0_8 = 0x00000463  # beq x0, x0, +8 (ends the first block)
ADDI_X6_1 = 0x00100313  # addi x6, x0, 1 (skipped)
ECALL = 0x00000073


def test_recording_replays_to_the_blocks_the_run_translated(tmp_path, monkeypatch):
    path = tmp_path / "blocks.rec"
    monkeypatch.setenv(RECORD_ENV, str(path))
    mem = GuestVirtualMemory()
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.write_initial(CODE, struct.pack("<4I", ADDI_X5_7, BEQ_X0_X0_8, ADDI_X6_1, ECALL))
    engine = TCGEngine(mem, RISCV64)
    cpu = engine.create_cpu()
    cpu.state.pc = CODE
    with pytest.raises(RiscvTrap):
        cpu.run()
    assert cpu.state.x(5) == 7 and cpu.state.x(6) == 0

    records = list(read_records(str(path)))
    assert [r[2] for r in records] == [CODE, CODE + 12]
    assert {(r[3], r[2]) for r in records} == set(engine.cache.blocks)
    for (_fmt, target, pc, flags, max_insns, atomics, options, fetches) in records:
        assert target == ("riscv64", "")
        assert fetches and all(CODE <= a < CODE + 16 for a, _s, _v in fetches)
        recorded = {(a, s): v for a, s, v in fetches}
        replayed = RISCV64.translate(pc, flags, lambda a, s, r=recorded: r[(a, s)],
                                     max_insns=max_insns, inline_atomics=atomics, **options)
        direct = RISCV64.translate(pc, flags, mem.fetch, max_insns=max_insns,
                                   inline_atomics=atomics, **options)
        assert replayed.dump() == direct.dump()


def test_a_file_that_is_not_a_recording_is_refused(tmp_path):
    path = tmp_path / "junk.rec"
    path.write_bytes(b"\x00not marshal at all")
    with pytest.raises(ValueError, match="not a block recording"):
        list(read_records(str(path)))


def test_collector_pace_is_raised_never_lowered():
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        pace_collector_for_translation()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, 10)
        gc.set_threshold(700, 10 * MIDDLE_THRESHOLD, 10)  # a higher middle one stays
        pace_collector_for_translation()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10 * MIDDLE_THRESHOLD, 10)
        gc.set_threshold(10 * YOUNG_THRESHOLD, 5, 5)
        pace_collector_for_translation()
        assert gc.get_threshold() == (10 * YOUNG_THRESHOLD, 5, 5)
        gc.set_threshold(0)  # a program that turned the collector off keeps it off
        pace_collector_for_translation()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*saved)
