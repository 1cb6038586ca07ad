"""System mode's translation cache, page by page (system_cpu.SystemTranslator with
accel/tcg/tb_cache.py): in-process, on a RISC-V hart's translator, no guest boot.

A page's cache key is the digest of its bytes.  The translator remembers the digest
with the page's snapshot so that a page's later blocks skip hashing; these tests hold
that shortcut to the page's *current* bytes (a guest may write code without fence.i),
and hold a warm translator's loads to exact validation: a damaged record, or one of
another configuration, is translated again, and what is installed from the cache is
the very code a cold translation makes.  A page's first hit installs its other cached
blocks of the same flags and virtual page too, chained to each other."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pemu.accel.tcg.backend.x86_64.runtime import DEAD_TAG
from pemu.accel.tcg.tb_cache import page_digest, split_key
from pemu.memory.address_space import AddressSpace

RAM_BASE = 0x8000_0000
ADDI_A0_1 = 0x00150513  # addi a0, a0, 1
ADDI_A1_2 = 0x00258593  # addi a1, a1, 2
RET = 0x00008067  # jalr x0, 0(ra): ends the block
JAL_TO_SECOND = 0x0400006F  # jal x0, +0x40: at BLOCK_PCS[0], to BLOCK_PCS[1]
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
    """The block at pc, as the vCPU loop finds it (installed already, or translated)."""
    return translator.lookup(hart, pc, hart.block_flags())


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


def _cold_run(cache_dir, order=(1, 2, 0)):
    """Translate the three blocks with an empty cache and save them.  The default
    order is the one a warm translator installs them in when the block at
    BLOCK_PCS[0] is looked up first (the page's other blocks by pc, then it), so the
    blocks land at the same buffer offsets and their linked code compares equal."""
    translator, hart, dram = _machine()
    _program(dram)
    tbs = {i: _translate(translator, hart, BLOCK_PCS[i]) for i in order}
    assert translator.stats.get("cached", 0) == 0
    translator.tb_cache.save()
    return [(tbs[i].n_insns, _code(tbs[i])) for i in range(len(BLOCK_PCS))], \
        translator.tb_cache.table


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


def test_a_pages_first_hit_installs_its_cached_blocks_as_a_cold_run_made_them(cache_dir):
    cold, _table = _cold_run(cache_dir)
    translator, hart, dram = _machine()
    _program(dram)
    first = _translate(translator, hart, BLOCK_PCS[0])
    assert translator.stats["cached"] == len(BLOCK_PCS)  # the whole page at once
    warm = [first] + [_translate(translator, hart, pc) for pc in BLOCK_PCS[1:]]
    assert translator.stats["cached"] == len(BLOCK_PCS)  # found, not loaded again
    assert [(tb.n_insns, _code(tb)) for tb in warm] == cold


def _chained_page(cache_dir):
    """A warm translator that has installed a page whose first block jumps to its
    second (and the page's third block): (translator, hart, dram, first block)."""
    def program(dram) -> None:
        _program(dram)
        _put_code(dram, BLOCK_PCS[0], [JAL_TO_SECOND])

    translator, hart, dram = _machine()
    program(dram)
    cold = _translate(translator, hart, BLOCK_PCS[0])
    assert cold.fn.exit_pcs == (BLOCK_PCS[1],)
    _translate(translator, hart, BLOCK_PCS[1])
    translator.tb_cache.save()

    translator, hart, dram = _machine()
    program(dram)
    first = _translate(translator, hart, BLOCK_PCS[0])
    assert translator.stats["cached"] == 2
    return translator, hart, dram, first


def _jump_target(backend, field: int) -> int:
    """The buffer offset a rel32 exit field jumps to."""
    return field + 4 + int.from_bytes(backend.buf.read(field, 4), "little", signed=True)


def _in_code_table(backend, tb) -> bool:
    """Whether the dispatcher's second level finds the block (its jump cache misses)."""
    ntb = tb.fn
    index = backend.code_table_index(tb.pc, tb.flags, ntb.code_page)
    return backend.code_table[index] == backend.buf.exec_address(ntb.entry)


def test_blocks_of_a_page_loaded_together_are_chained(cache_dir):
    """The first block jumps to the second (same page): its exit goes straight to the
    second, loaded with it, without a lookup; the second needs no record for that
    (install_cached_group), and is made one when Python looks it up."""
    translator, hart, _dram, first = _chained_page(cache_dir)
    backend = translator.backend
    assert translator.backend.link(first.fn, hart)
    field = first.fn.exit_fields[0]
    target = _jump_target(backend, field)
    assert (first.flags, BLOCK_PCS[1], RAM_BASE) not in translator.tbs  # no record yet
    second = _translate(translator, hart, BLOCK_PCS[1])  # its record, made now
    assert translator.stats["cached"] == 2 and translator.stats["translated"] == 2
    assert target == second.fn.entry
    assert _in_code_table(backend, second)
    assert _translate(translator, hart, BLOCK_PCS[1]) is second


def test_a_changed_page_drops_its_installed_group(cache_dir):
    """fence.i after the page was written: the group's chains are undone (a vCPU
    inside the first block leaves at its exit), no table finds its blocks, and the
    next lookup translates the page's new code."""
    translator, hart, dram, first = _chained_page(cache_dir)
    backend = translator.backend
    field = first.fn.exit_fields[0]
    second_entry = _jump_target(backend, field)
    assert second_entry != field + 4
    _put_code(dram, BLOCK_PCS[1], [ADDI_A1_2, ADDI_A1_2, ADDI_A1_2, RET])
    translator.sync_code()
    assert _jump_target(backend, field) == field + 4  # back to its exit to the loop
    assert first.fn.dead and not _in_code_table(backend, first)
    assert int.from_bytes(backend.buf.read(first.fn.offset + 8, 8), "little") == DEAD_TAG
    assert not translator.groups and translator.grouped == 0
    # the second block (never a record) is unreachable too: no code table entry
    assert backend.buf.exec_address(second_entry) not in set(backend.code_table)
    new = _translate(translator, hart, BLOCK_PCS[1])
    assert translator.stats["translated"] == 3 and new.n_insns == 4


def test_a_damaged_record_is_translated_again(cache_dir):
    cold, table = _cold_run(cache_dir)
    db = sqlite3.connect(cache_dir / "tb.sqlite")
    with db:
        rows = db.execute(f"SELECT k, v FROM {table}").fetchall()
        assert len(rows) == len(BLOCK_PCS)
        for k, v in rows:
            if split_key(k)[1] == BLOCK_PCS[1]:  # one bit of its stored code
                v = bytearray(v)
                v[len(v) // 2] ^= 0x10
                db.execute(f"UPDATE {table} SET v = ? WHERE k = ?", (bytes(v), k))
    db.close()
    translator, hart, dram = _machine()
    _program(dram)
    warm = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats["cached"] == len(BLOCK_PCS) - 1
    assert translator.stats["translated"] == len(BLOCK_PCS)
    assert [tb.n_insns for tb in warm] == [n for n, _code in cold]


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


def _run_block(hart, tb, a0: int, a1: int, ra: int) -> tuple[int, int, int]:
    """(a0, a1, next pc) after running just this block from the given registers."""
    state = hart.state
    state.set_x(10, a0)
    state.set_x(11, a1)
    state.set_x(1, ra)
    next_pc = tb.fn(state.slots, hart)
    return state.x(10), state.x(11), next_pc


def test_a_page_installed_again_gets_its_checked_blocks_only_while_its_bytes_match(
        cache_dir):
    """Once checked, a page's stored blocks are kept in the process for the page's
    next installs (another virtual address, another process of the guest): the page
    changed (fence.i), they are not used; its old bytes back, they are, and run."""
    _cold_run(cache_dir)
    translator, hart, dram = _machine()
    _program(dram)
    _translate(translator, hart, BLOCK_PCS[0])
    assert translator.stats["cached"] == len(BLOCK_PCS)
    # the guest rewrites one block of the page: the others' bytes are the same, but
    # the page's are not, and none of the blocks kept for the old bytes may run
    _put_code(dram, BLOCK_PCS[1], [ADDI_A1_2, ADDI_A1_2, RET])
    translator.sync_code()
    changed = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats["cached"] == len(BLOCK_PCS)
    assert [tb.n_insns for tb in changed] == [3, 3, 5]
    assert _run_block(hart, changed[1], 0, 0, 0x1234) == (0, 4, 0x1234)
    # the old bytes again: the blocks kept for them are installed and run as stored
    _program(dram)
    translator.sync_code()
    restored = [_translate(translator, hart, pc) for pc in BLOCK_PCS]
    assert translator.stats["cached"] == 2 * len(BLOCK_PCS)
    assert [tb.n_insns for tb in restored] == [3, 4, 5]
    for i, tb in enumerate(restored):
        assert _run_block(hart, tb, 0, 0, 0x1234) == (i + 1, 2, 0x1234)
