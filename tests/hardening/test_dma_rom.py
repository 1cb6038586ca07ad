"""DMA into ROM: a device's write through a view of the boot ROM is dropped, and a
virtqueue refuses ROM for its used ring and device-writable buffers (the malicious
guest program checks the same end to end, test_malicious_guest.py)."""

from __future__ import annotations

import pytest

from pemu.memory.address_space import AddressSpace, GuestMemoryError

ROM, RAM = 0x1000, 0x8000_0000


@pytest.fixture
def space() -> AddressSpace:
    space = AddressSpace()
    space.add_ram("mrom", ROM, 0x1000, read_only=True)
    space.add_ram("dram", RAM, 0x10000)
    space.write(ROM, b"reset vector")  # the board's loader fills the ROM
    return space


def test_device_writes_through_a_rom_view_are_dropped(space):
    view = space.view(ROM, 12)
    assert bytes(view) == b"reset vector"
    view[:5] = b"EVIL!"  # what preadv/a PRP copy into guest memory does
    assert space.read(ROM, 12) == b"reset vector"
    ram = space.view(RAM, 4)  # RAM views stay zero-copy
    ram[:] = b"data"
    assert space.read(RAM, 4) == b"data"


def test_writable_view_refuses_rom(space):
    with pytest.raises(GuestMemoryError, match="read-only"):
        space.writable_view(ROM, 8)
    with pytest.raises(GuestMemoryError):
        space.writable_view(ROM + 0xFF8, 16)  # straddling the end
    assert len(space.writable_view(RAM, 8)) == 8
