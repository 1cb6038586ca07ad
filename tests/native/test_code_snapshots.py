"""fence.i's compare of translated pages with their snapshots (code_snapshots.py):
the native routine (backend/x86_64/page_compare.py) must report exactly the pages
the Python compare reports, whichever byte of a page changed."""

from __future__ import annotations

import pytest

from pemu.accel.tcg.code_snapshots import CodeSnapshots
from pemu.memory.address_space import AddressSpace

BASE = 0x8000_0000
PAGES = 64


class NullDevice:
    def mmio_read(self, offset: int, size: int) -> int:
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        pass


@pytest.fixture
def space() -> tuple[AddressSpace, memoryview]:
    s = AddressSpace()
    ram = s.add_ram("ram", BASE, PAGES * 4096)
    s.add_mmio("dev", 0x1000_0000, 4096, NullDevice())
    for i in range(0, PAGES * 4096, 7):
        ram.view[i] = (i * 13) & 0xFF
    return s, ram.view


def _both(space: AddressSpace) -> tuple[CodeSnapshots, CodeSnapshots]:
    native, python = CodeSnapshots(space, True), CodeSnapshots(space, False)
    for snaps in (native, python):
        for ppn in range(BASE >> 12, (BASE >> 12) + PAGES, 3):
            snaps.add(ppn)
        snaps.add(0x1000_0000 >> 12)  # MMIO: an empty snapshot that never changes
    return native, python


@pytest.mark.parametrize("offset", [0, 8, 4088, 4095, 2049])
def test_native_compare_finds_the_changed_pages(space, offset):
    s, view = space
    native, python = _both(s)
    assert native.changed() == python.changed() == []
    changed_pages = (0, 9, 63)
    for page in changed_pages:
        view[page * 4096 + offset] ^= 0x5A
    view[1 * 4096 + offset] ^= 0x5A  # a page without a snapshot
    expect = [(BASE >> 12) + p for p in changed_pages]
    assert sorted(python.changed()) == expect
    assert sorted(native.changed()) == expect


def test_dropped_and_new_snapshots_reach_the_native_compare(space):
    s, view = space
    native, _ = _both(s)
    first = BASE >> 12
    view[0] ^= 1
    assert native.changed() == [first]
    native.pop(first)
    assert native.changed() == []
    native.add(first)  # the changed bytes are its snapshot now
    assert native.changed() == []
    view[4096 * 1] ^= 1
    native.add(first + 1)  # after the change: equal
    assert native.changed() == []
    native.clear()
    view[0] ^= 1
    assert native.changed() == [] and len(native) == 0
