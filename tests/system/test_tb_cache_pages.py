"""System mode's translation cache, page by page (system_cpu.SystemTranslator with
accel/tcg/tb_cache.py): in-process, on a RISC-V hart's translator, no guest boot.

A page's cache key is the digest of its bytes.  The translator remembers the digest
with the page's snapshot so that a page's later blocks skip hashing; these tests hold
that shortcut to the page's *current* bytes (a guest may write code without fence.i),
and hold a warm translator's loads to exact validation: a damaged record, or one of
another configuration, is translated again, and what is installed from the cache is
the very code a cold translation makes."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pemu.accel.tcg.tb_cache import page_digest, split_key
from pemu.memory.address_space import AddressSpace

RAM_BASE = 0x8000_0000
ADDI_A0_1 = 0x00150513  # addi a0, a0, 1
ADDI_A1_2 = 0x00258593  # addi a1, a1, 2
RET = 0x00008067  # jalr x0, 0(ra): ends the block
BLOCK_PCS = (RAM_BASE, RAM_BASE + 0x40, RAM_BASE + 0x80)


def _native_ok() -> bool:
    from tests.system.conftest import _native_supported
    return _native_supported()


def _machine(max_insns: int = 256):
    """(translator, hart, dram) of a bare M-mode RISC-V hart over 1 MiB of RAM."""
    from pemu.accel.tcg.system_cpu import SystemTranslator
    from pemu.target.riscv.hart import RiscvHart
    from pemu.target.riscv.isa import parse_cpu
    from pemu.target.riscv.tcg_target import riscv64_target
    isa = parse_cpu(None)
    space = AddressSpace("memory")
    dram = space.add_ram("ram", RAM_BASE, 1 << 20)
    translator = SystemTranslator(space, dram, riscv64_target(isa), backend="native",
                                  max_insns=max_insns)
    hart = RiscvHart(0, translator, space, lambda: 0, threading.Event(), isa)
    return translator, hart, dram


def _put_code(dram, pc: int, words: list[int]) -> None:
    off = pc - RAM_BASE
    dram.view[off:off + 4 * len(words)] = b"".join(w.to_bytes(4, "little") for w in words)


def _program(dram) -> None:
    for i, pc in enumerate(BLOCK_PCS):
        _put_code(dram, pc, [ADDI_A0_1] * (i + 1) + [ADDI_A1_2, RET])


def _translate(translator, hart, pc: int):
    return translator.translate(hart, pc, hart.block_flags(), pc & ~0xFFF)


def _code(tb) -> bytes:
    ntb = tb.fn
    return ntb.runtime.buf.read(ntb.offset, ntb.size)


def _page_now(dram, pc: int) -> bytes:
    off = (pc & ~0xFFF) - RAM_BASE
    return bytes(dram.view[off:off + 0x1000])


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    if not _native_ok():
        pytest.skip("the native backend needs an x86-64 host")
    monkeypatch.setenv("PEMU_TB_CACHE", str(tmp_path))
    return tmp_path


def _cold_run(cache_dir):
    """Translate the three blocks with an empty cache and save them."""
    translator, hart, dram = _machine()
    _program(dram)
    tbs = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats.get("cached", 0) == 0
    translator.tb_cache.save()
    return [(tb.n_insns, _code(tb)) for tb in tbs], translator.tb_cache.table


def test_the_page_key_follows_bytes_written_without_fence_i(cache_dir):
    translator, hart, dram = _machine()
    _program(dram)
    _translate(translator, hart, BLOCK_PCS[0])
    # the guest writes the page (no fence.i: the snapshot still holds the old bytes)
    # and runs code at another pc of it: that block's key is the page as it is now
    _put_code(dram, BLOCK_PCS[1], [ADDI_A1_2, ADDI_A1_2, RET])
    _translate(translator, hart, BLOCK_PCS[1])
    keys = {split_key(k)[1]: split_key(k)[2] for k in translator.tb_cache.new}
    assert keys[BLOCK_PCS[1]] == page_digest(_page_now(dram, BLOCK_PCS[1]))
    assert keys[BLOCK_PCS[0]] != keys[BLOCK_PCS[1]]
    # after fence.i the page is snapshotted anew; its next block's key is that too
    translator.sync_code()
    _put_code(dram, BLOCK_PCS[2], [RET])
    _translate(translator, hart, BLOCK_PCS[2])
    keys = {split_key(k)[1]: split_key(k)[2] for k in translator.tb_cache.new}
    assert keys[BLOCK_PCS[2]] == page_digest(_page_now(dram, BLOCK_PCS[2]))


def test_a_warm_translator_installs_the_code_a_cold_one_makes(cache_dir):
    cold, _table = _cold_run(cache_dir)
    translator, hart, dram = _machine()
    _program(dram)
    warm = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats["cached"] == len(BLOCK_PCS)
    for (n_insns, code), tb in zip(cold, warm, strict=True):
        assert tb.n_insns == n_insns
        # same buffer offsets in both fresh translators: the linked code is identical
        assert _code(tb) == code


def test_a_damaged_record_is_translated_again(cache_dir):
    cold, table = _cold_run(cache_dir)
    db = sqlite3.connect(cache_dir / "tb.sqlite")
    with db:
        rows = db.execute(f"SELECT k, v FROM {table}").fetchall()
        assert len(rows) == len(BLOCK_PCS)
        damaged = {k for k, _v in rows if split_key(k)[1] == BLOCK_PCS[1]}
        for k, v in rows:
            if k in damaged:  # one bit of the stored code
                v = bytearray(v)
                v[len(v) // 2] ^= 0x10
                db.execute(f"UPDATE {table} SET v = ? WHERE k = ?", (bytes(v), k))
    db.close()
    translator, hart, dram = _machine()
    _program(dram)
    warm = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats["cached"] == len(BLOCK_PCS) - 1
    assert [(tb.n_insns, _code(tb)) for tb in warm] == cold


def test_blocks_of_another_configuration_are_misses(cache_dir):
    _cold_run(cache_dir)
    translator, hart, dram = _machine(max_insns=2)
    _program(dram)
    for pc in BLOCK_PCS:
        tb = _translate(translator, hart, pc)
        assert tb.n_insns <= 2
    assert translator.stats.get("cached", 0) == 0


def test_a_changed_page_misses_and_its_old_blocks_stay_unused(cache_dir):
    _cold_run(cache_dir)
    translator, hart, dram = _machine()
    _program(dram)
    _put_code(dram, RAM_BASE + 0x800, [ADDI_A0_1])  # elsewhere on the same page
    tbs = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats.get("cached", 0) == 0
    assert [tb.n_insns for tb in tbs] == [3, 4, 5]
