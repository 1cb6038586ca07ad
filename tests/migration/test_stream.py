"""The machine stream's records (pemu/migration/stream.py) and RAM runs (ram.py)."""

from __future__ import annotations

import io
import random

import pytest

from pemu.memory.address_space import RAMBlock
from pemu.migration.ram import apply_ram, nonzero_pages, send_pages, zero_ram
from pemu.migration.stream import (
    PAGE_SIZE,
    DeviceRecord,
    EndRecord,
    RamRecord,
    StreamError,
    StreamReader,
    StreamWriter,
    bytes_source,
)


def _stream() -> bytes:
    out = io.BytesIO()
    w = StreamWriter(out.write)
    w.header("riscv64 virt harts=1")
    w.ram("ram", 0x3000, b"\x11" * PAGE_SIZE * 2)
    w.zero("ram", 0x8000, 3)
    w.device("plic", 0, b"section-bytes")
    w.device("virtio-mmio", 7, b"")
    w.end()
    return out.getvalue()


def _records(data: bytes) -> tuple[str, list]:
    r = StreamReader(bytes_source(data))
    desc = r.header()
    recs = []
    while True:
        rec = r.record()
        recs.append(rec)
        if isinstance(rec, EndRecord):
            return desc, recs


def test_records_round_trip():
    desc, recs = _records(_stream())
    assert desc == "riscv64 virt harts=1"
    assert recs == [RamRecord("ram", 0x3000, b"\x11" * PAGE_SIZE * 2),
                    RamRecord("ram", 0x8000, b"", zero_pages=3),
                    DeviceRecord("plic", 0, b"section-bytes"),
                    DeviceRecord("virtio-mmio", 7, b""), EndRecord()]


def test_every_truncation_is_an_error():
    data = _stream()
    for n in range(len(data)):
        with pytest.raises(StreamError, match="truncated|bad magic"):
            _records(data[:n])


def test_every_single_bit_flip_is_an_error():
    data = _stream()
    rng = random.Random(24)
    for pos in range(len(data)):
        bit = 1 << rng.randrange(8)
        with pytest.raises(StreamError):
            _records(data[:pos] + bytes([data[pos] ^ bit]) + data[pos + 1:])


def test_newer_stream_version_is_refused_by_name():
    data = bytearray(_stream())
    data[4] = 9
    with pytest.raises(StreamError, match="stream version 9"):
        _records(bytes(data))


def _block(pages: int) -> RAMBlock:
    return RAMBlock("ram", 0x8000_0000, pages * PAGE_SIZE)


def test_only_nonzero_pages_are_found_and_sent():
    block = _block(600)
    for page in (0, 1, 2, 300, 599):
        block.view[page * PAGE_SIZE + 5] = 1
    assert list(nonzero_pages(block)) == [0, 1, 2, 300, 599]
    out = io.BytesIO()
    sent, zeros = send_pages(StreamWriter(out.write), block, [0, 1, 2, 3, 300], skip_zero=False)
    assert (sent, zeros) == (4, 1)  # pages 0-2 as one run, 3 (zero) as a Z record, 300
    r = StreamReader(bytes_source(out.getvalue()))
    first, zero, last = r.record(), r.record(), r.record()
    assert (first.offset, len(first.data)) == (0, 3 * PAGE_SIZE)
    assert (zero.offset, zero.zero_pages) == (3 * PAGE_SIZE, 1)
    assert last.offset == 300 * PAGE_SIZE


def test_applying_checks_the_block_bounds_and_zeroes():
    block = _block(4)
    blocks = {"ram": block}
    apply_ram(blocks, RamRecord("ram", PAGE_SIZE, b"\x07" * PAGE_SIZE))
    assert block.view[PAGE_SIZE] == 7
    apply_ram(blocks, RamRecord("ram", PAGE_SIZE, b"", zero_pages=1))
    assert block.view[PAGE_SIZE] == 0
    with pytest.raises(StreamError, match="outside block"):
        apply_ram(blocks, RamRecord("ram", 3 * PAGE_SIZE, b"", zero_pages=2))
    with pytest.raises(StreamError, match="unknown block"):
        apply_ram(blocks, RamRecord("rom", 0, b"\x01" * PAGE_SIZE))
    block.view[5] = 9
    zero_ram(block)
    assert not any(block.view[:4 * PAGE_SIZE])


def test_dirty_logging_marks_device_writes():
    from pemu.memory.address_space import AddressSpace

    space = AddressSpace()
    ram = space.add_ram("ram", 0x8000_0000, 16 * PAGE_SIZE)
    space.write(0x8000_0000, b"x")
    assert ram.dirty is None
    ram.dirty = set()
    space.write(0x8000_0000 + PAGE_SIZE - 1, b"ab")  # straddles pages 0 and 1
    space.view(0x8000_0000 + 5 * PAGE_SIZE, 10)
    space.store(0x8000_0000 + 9 * PAGE_SIZE, 4, 1)
    assert ram.dirty == {0, 1, 5, 9}
