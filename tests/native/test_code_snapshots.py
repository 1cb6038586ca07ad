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


# -- only pages marked as written are compared (memory/code_writes.py) -----------------

def _tracked(space: AddressSpace) -> tuple[CodeSnapshots, CodeSnapshots]:
    ram = space.find(BASE)
    native = CodeSnapshots(space, True, tracked=ram)
    python = CodeSnapshots(space, False, tracked=ram)
    for snaps in (native, python):
        for ppn in range(BASE >> 12, (BASE >> 12) + 8):
            snaps.add(ppn)
    return native, python


@pytest.mark.parametrize("which", [0, 1], ids=["native", "python"])
def test_only_marked_pages_are_compared(space, which):
    s, view = space
    snaps = _tracked(s)[which]
    first = BASE >> 12
    assert snaps.changed() == []  # (every new snapshot is compared once)
    view[2 * 4096] ^= 1  # written behind the marks' back: not looked at
    assert snaps.changed() == []
    s.write(BASE + 3 * 4096 + 5, b"\x99")  # the memory API marks the page
    assert snaps.changed() == [first + 3]
    snaps.pop(first + 3)
    s.find(BASE).note_unknown_writes()  # a restore: every page is compared
    assert snaps.changed() == [first + 2]
    snaps.pop(first + 2)
    s.store(BASE + 4 * 4096, 4, 0x12345678)
    assert snaps.changed() == [first + 4]
    assert snaps.changed() == []  # the mark went with the compare


@pytest.mark.parametrize("which", [0, 1], ids=["native", "python"])
def test_a_device_view_of_code_is_compared_until_its_code_changes(space, which):
    s, _ = space
    snaps = _tracked(s)[which]
    first = BASE >> 12
    assert snaps.changed() == []
    dma = s.writable_view(BASE + 5 * 4096, 64)  # a device's buffer on a code page
    other = s.writable_view(BASE + 20 * 4096, 64)  # and on a page without code
    assert snaps.changed() == []  # nothing written yet
    assert snaps.changed() == []
    dma[3] ^= 0xFF  # the device writes after fences (its I/O thread)
    other[3] ^= 0xFF
    assert snaps.changed() == [first + 5]
    snaps.pop(first + 5)
    assert snaps.changed() == []
    snaps.add(first + 20)  # the other page's write came before its snapshot
    assert snaps.changed() == []
