"""mapped-ram snapshot files (pemu/migration/mapped_ram.py): the format, its checks,
and the lazy restore (RSS stays small until the guest touches its pages)."""

from __future__ import annotations

import hashlib
import os

import pytest

from pemu.memory.address_space import RAMBlock
from pemu.migration.mapped_ram import read_index, restore, save_mapped
from pemu.migration.stream import PAGE_SIZE, StreamError

MiB = 1 << 20


class RamOnlyMachine:
    """A MigratableMachine with RAM and no devices: the format alone."""

    def __init__(self, *sizes: int) -> None:
        self.blocks = [RAMBlock(f"ram{i}", 0x8000_0000 + i * (1 << 32), size)
                       for i, size in enumerate(sizes)]
        self.loaded = False

    def migration_description(self) -> str:
        return "test " + " ".join(f"{b.name}={b.size}" for b in self.blocks)

    def ram_blocks(self) -> list[RAMBlock]:
        return self.blocks

    def migratable_devices(self) -> list:
        return []

    def migration_blockers(self) -> list[str]:
        return []

    def migration_pre_save(self) -> None:
        pass

    def migration_post_load(self) -> None:
        self.loaded = True


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fill(block: RAMBlock, pages: range, seed: int = 0) -> None:
    for p in pages:
        block.view[p * PAGE_SIZE:p * PAGE_SIZE + 8] = (p * 7 + seed + 1).to_bytes(8, "little")


def _digest(block: RAMBlock) -> str:
    return hashlib.sha256(block.view).hexdigest()


def test_round_trip_maps_only_the_written_pages(tmp_path):
    src = RamOnlyMachine(16 * MiB, 4 * MiB)
    _fill(src.blocks[0], range(0, 100))
    _fill(src.blocks[0], range(1000, 1003))
    _fill(src.blocks[0], range(4095, 4096))  # the last page
    _fill(src.blocks[1], range(7, 8), seed=5)
    path = str(tmp_path / "snap")
    stats = save_mapped(src, path)
    assert stats["normal"] == 100 + 3 + 1 + 1
    assert os.stat(path).st_blocks * 512 < 2 * MiB  # zero pages are holes

    dst = RamOnlyMachine(16 * MiB, 4 * MiB)
    _fill(dst.blocks[0], range(2000, 2001), seed=9)  # must read as zero afterwards
    got = restore(dst, path)
    assert got == {"mapped-pages": 105, "mappings": 4}
    assert dst.loaded
    for a, b in zip(src.blocks, dst.blocks, strict=True):
        assert _digest(a) == _digest(b)


def test_restore_is_lazy_and_never_writes_the_file(tmp_path):
    size = 128 * MiB
    src = RamOnlyMachine(size)
    src.blocks[0].view[:] = os.urandom(size)  # a mostly written guest
    path = str(tmp_path / "snap")
    save_mapped(src, path)
    want = _digest(src.blocks[0])
    src.blocks[0].zero_all()  # the source's pages leave the RSS
    file_digest = hashlib.sha256(open(path, "rb").read()).hexdigest()

    dst = RamOnlyMachine(size)
    before = _rss()
    restore(dst, path)
    after_restore = _rss()
    assert after_restore - before < 8 * MiB  # nothing was read into the process
    assert _digest(dst.blocks[0]) == want
    assert _rss() - before > size * 3 // 4  # reading faulted the pages in

    dst.blocks[0].view[0:4] = b"XXXX"  # the guest writes: a private copy
    assert dst.blocks[0].view[0:4] == b"XXXX"
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == file_digest


def test_given_back_pages_read_as_zero_not_as_the_file(tmp_path):
    src = RamOnlyMachine(4 * MiB)
    _fill(src.blocks[0], range(0, 1024))
    path = str(tmp_path / "snap")
    save_mapped(src, path)
    dst = RamOnlyMachine(4 * MiB)
    restore(dst, path)
    block = dst.blocks[0]
    assert block.discard(0, 64 * 1024) == 64 * 1024  # the balloon
    assert bytes(block.view[0:64 * 1024]) == bytes(64 * 1024)
    assert block.view[64 * 1024:64 * 1024 + 8] != bytes(8)
    block.zero_all()  # loadvm / a stream load starts here
    assert bytes(block.view) == bytes(block.size)


def test_a_snapshot_over_the_file_a_guest_runs_from(tmp_path):
    path = str(tmp_path / "snap")
    first = RamOnlyMachine(4 * MiB)
    _fill(first.blocks[0], range(0, 1024))
    save_mapped(first, path)
    guest = RamOnlyMachine(4 * MiB)
    restore(guest, path)
    _fill(guest.blocks[0], range(5, 6), seed=3)
    want = _digest(guest.blocks[0])
    save_mapped(guest, path)  # replaces the file; the guest keeps the old one's pages
    assert _digest(guest.blocks[0]) == want
    again = RamOnlyMachine(4 * MiB)
    restore(again, path)
    assert _digest(again.blocks[0]) == want


@pytest.fixture
def saved(tmp_path):
    src = RamOnlyMachine(8 * MiB)
    _fill(src.blocks[0], range(0, 2048, 3))
    path = tmp_path / "snap"
    save_mapped(src, str(path))
    return path


def _refused(path, machine: RamOnlyMachine | None = None) -> str:
    dst = machine or RamOnlyMachine(8 * MiB)
    _fill(dst.blocks[0], range(10, 11), seed=42)
    marker = bytes(dst.blocks[0].view)
    with pytest.raises(StreamError) as e:
        restore(dst, str(path))
    assert not dst.blocks[0].file_backed  # nothing mapped ...
    assert bytes(dst.blocks[0].view) == marker  # ... nor changed
    return str(e.value)


def test_truncated_files_are_refused_before_anything_maps(saved):
    raw = saved.read_bytes()
    fd = os.open(saved, os.O_RDONLY)
    index = read_index(fd)
    os.close(fd)
    block = index.blocks[0]
    cuts = [0, 5, 40, block.bitmap_offset + 10, block.data_offset + 4096,
            index.devices_offset + 3]
    for cut in cuts:
        saved.write_bytes(raw[:cut])
        why = _refused(saved)
        assert "truncated" in why or "past the end" in why, (cut, why)


def test_corrupt_and_foreign_files_are_refused(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    raw[20] ^= 0x40  # inside the index
    bad = tmp_path / "bad"
    bad.write_bytes(raw)
    assert "checksum" in _refused(bad)

    assert "RAM" in _refused(saved, RamOnlyMachine(16 * MiB))
    assert "RAM" in _refused(saved, RamOnlyMachine(8 * MiB, 4 * MiB))
    other = RamOnlyMachine(8 * MiB)
    other.migration_description = lambda: "another board"  # type: ignore[method-assign]
    assert "another machine" in _refused(saved, other)

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"PVMF" + bytes(100))
    assert "bad magic" in _refused(garbage)
