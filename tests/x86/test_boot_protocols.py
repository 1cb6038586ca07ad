"""Zero page, e820 map, PVH start info, multiboot info and MP table, byte by byte against
the boot protocol documents (Linux Documentation/x86/boot.rst and zero-page.rst, Xen's
hvm start_info.h, Multiboot 0.6.96, Intel MP spec 1.4)."""

from __future__ import annotations

import struct

import pytest

from pemu.guests import guest_file
from pemu.hw.x86 import boot_layout
from pemu.hw.x86.boot_layout import BootError
from pemu.hw.x86.e820 import E820Entry, memory_map
from pemu.hw.x86.kernel_loader import load_kernel
from pemu.hw.x86.linux_boot import build_zero_page, parse_setup_header
from pemu.hw.x86.mptable import build_mptable
from pemu.hw.x86.multiboot_boot import find_header
from pemu.hw.x86.pvh_boot import build_start_info

GUESTS = guest_file("x86_64")
RAM = 64 << 20


class FakeRAM:
    """Guest RAM as a bytearray with the board's write() signature."""

    def __init__(self, size: int = RAM) -> None:
        self.data = bytearray(size)

    def write(self, addr: int, blob: bytes) -> None:
        assert 0 <= addr and addr + len(blob) <= len(self.data)
        self.data[addr:addr + len(blob)] = blob

    def u32(self, addr: int) -> int:
        return struct.unpack_from("<I", self.data, addr)[0]

    def u64(self, addr: int) -> int:
        return struct.unpack_from("<Q", self.data, addr)[0]


def fake_bzimage(version: int = 0x20F, xloadflags: int = 1, setup_sects: int = 2,
                 payload: bytes = b"\xAA" * 4096) -> bytes:
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x200:0x202] = b"\xeb\x66"  # jmp over the header: header ends at 0x268
    struct.pack_into("<I", img, 0x202, 0x53726448)
    struct.pack_into("<H", img, 0x206, version)
    img[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", img, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", img, 0x230, 0x200000)
    struct.pack_into("<H", img, 0x236, xloadflags)
    struct.pack_into("<I", img, 0x238, 2047)  # cmdline_size
    struct.pack_into("<Q", img, 0x258, 0x1000000)
    struct.pack_into("<I", img, 0x260, 0x800000)  # init_size
    return bytes(img) + payload


E820 = memory_map([(0, RAM)])


def test_e820_map_layout():
    assert E820 == [E820Entry(0, 0x9FC00, 1), E820Entry(0x9FC00, 0x400, 2),
                    E820Entry(0xF0000, 0x10000, 2), E820Entry(0x100000, RAM - 0x100000, 1)]
    assert E820Entry(0x100000, 0x200000, 1).pack() == bytes.fromhex(
        "0000100000000000" "0000200000000000" "01000000")
    high = memory_map([(0, 3 << 30), (1 << 32, 1 << 30)])
    assert high[-1] == E820Entry(1 << 32, 1 << 30, 1)


def test_zero_page_fields():
    img = fake_bzimage()
    hdr = parse_setup_header(img)
    zp = build_zero_page(hdr, 0x20000, (0x8000000, 0x12345), E820)
    assert len(zp) == 4096
    # the setup header is copied from 0x1f1 up to the end given by the jump at 0x200
    assert zp[0x1F1:0x200] == img[0x1F1:0x200]
    assert zp[0x202:0x206] == b"HdrS"
    assert zp[0x210] == 0xFF  # type_of_loader: undefined
    assert zp[0x211] == 0x81  # LOADED_HIGH | CAN_USE_HEAP
    assert struct.unpack_from("<H", zp, 0x224)[0] == 0xFE00  # heap_end_ptr
    assert struct.unpack_from("<I", zp, 0x228)[0] == 0x20000  # cmd_line_ptr
    assert struct.unpack_from("<I", zp, 0x218)[0] == 0x8000000  # ramdisk_image
    assert struct.unpack_from("<I", zp, 0x21C)[0] == 0x12345  # ramdisk_size
    assert struct.unpack_from("<III", zp, 0x0C0) == (0, 0, 0)  # ext_* high halves
    assert zp[0x1E8] == 4  # e820_entries
    for i, e in enumerate(E820):
        assert zp[0x2D0 + 20 * i:0x2D0 + 20 * (i + 1)] == e.pack()
    assert zp[0x2D0 + 20 * 4:] == bytes(4096 - 0x2D0 - 80)
    assert zp[:0x1E8] == bytes(0x1E8) or zp[0xC0:0xCC] == bytes(12)


def test_bzimage_load_places_everything():
    ram = FakeRAM()
    img = fake_bzimage()
    initrd = b"\x1f\x8b" + b"I" * 5000
    entry = load_kernel(img, initrd, "console=ttyS0", ram.write, RAM, E820)
    assert entry.mode == "long64" and entry.rip == 0x100200
    assert entry.regs == {"rsi": boot_layout.BOOT_INFO_ADDR}
    assert ram.data[0x100000:0x101000] == b"\xAA" * 4096
    zp = boot_layout.BOOT_INFO_ADDR
    assert ram.data[ram.u32(zp + 0x228):][:14] == b"console=ttyS0\0"
    rd, rd_size = ram.u32(zp + 0x218), ram.u32(zp + 0x21C)
    assert rd_size == len(initrd) and rd % 4096 == 0 and rd + rd_size <= RAM
    assert RAM - (rd + rd_size) < 4096  # as high as possible
    assert ram.data[rd:rd + rd_size] == initrd


def test_bzimage_checks():
    with pytest.raises(BootError, match="no 64-bit entry"):
        parse_setup_header(fake_bzimage(xloadflags=0))
    with pytest.raises(BootError, match="too old"):
        parse_setup_header(fake_bzimage(version=0x20A))
    with pytest.raises(BootError, match="accepts at most 2047"):
        load_kernel(fake_bzimage(), None, "x" * 3000, FakeRAM().write, RAM, E820)
    with pytest.raises(BootError, match="does not fit"):  # init_size 8 MiB from 16 MiB
        load_kernel(fake_bzimage(), None, "", FakeRAM(16 << 20).write, 16 << 20,
                    memory_map([(0, 16 << 20)]))
    with pytest.raises(BootError, match="initrd of"):
        load_kernel(fake_bzimage(), b"x" * (50 << 20), "", FakeRAM().write, RAM, E820)


def test_not_a_kernel():
    with pytest.raises(BootError, match="not a bzImage, an ELF"):
        load_kernel(b"\0" * 10000, None, "", FakeRAM().write, RAM, E820)
    elf = bytearray(64)
    elf[:6] = b"\x7fELF\x02\x01"
    with pytest.raises(BootError):
        load_kernel(bytes(elf), None, "", FakeRAM().write, RAM, E820)


def test_pvh_start_info_layout():
    info = build_start_info(0x20000, 0x30000, 1, 0x7100, 4)
    assert len(info) == 56
    assert info == struct.pack("<IIIIQQQQII", 0x336EC578, 1, 0, 1, 0x30000, 0x20000, 0, 0x7100,
                               4, 0)
    assert build_start_info(0x20000, 0x30000, 0, 0x7100, 4)[16:24] == bytes(8)  # no modules


@pytest.mark.skipif(not (GUESTS / "vmlinux-lean").exists(), reason="shared guests missing")
def test_pvh_boot_of_the_lean_vmlinux():
    ram = FakeRAM()
    entry = load_kernel((GUESTS / "vmlinux-lean").read_bytes(), b"INITRD", "console=ttyS0",
                        ram.write, RAM, E820)
    # README section E: the PVH note's entry point is 0x0100_04a0
    assert (entry.mode, entry.rip) == ("protected32", 0x10004A0)
    si = entry.regs["rbx"]
    assert ram.u32(si) == 0x336EC578 and ram.u32(si + 4) == 1 and ram.u32(si + 12) == 1
    mod = ram.u64(si + 16)
    assert ram.data[ram.u64(mod):ram.u64(mod) + 6] == b"INITRD" and ram.u64(mod + 8) == 6
    assert ram.data[ram.u64(si + 24):][:14] == b"console=ttyS0\0"
    mm, n = ram.u64(si + 40), ram.u32(si + 48)
    assert n == 4
    assert [struct.unpack_from("<QQII", ram.data, mm + 24 * i)[:3] for i in range(n)] == [
        (e.addr, e.size, e.type) for e in E820]


@pytest.mark.skipif(not (GUESTS / "bzImage-lean").exists(), reason="shared guests missing")
def test_setup_header_of_the_lean_bzimage():
    hdr = parse_setup_header((GUESTS / "bzImage-lean").read_bytes())
    # README section E: protocol 2.15, xloadflags 0x21, 2 MiB alignment, init_size 0xfd4000
    assert hdr.version == 0x20F and hdr.xloadflags == 0x21
    assert hdr.kernel_alignment == 0x200000 and hdr.init_size == 0xFD4000
    assert not hdr.relocatable


def test_multiboot_flat_binary_info():
    load = 0x100000
    header = struct.pack("<IIIIIIII", 0x1BADB002, 0x10000, (-(0x1BADB002 + 0x10000)) & 0xFFFFFFFF,
                         load + 8, load, 0, load + 0x2000, load + 40)
    img = b"\x90" * 8 + header + b"\xf4" * 100
    assert find_header(img).offset == 8
    ram = FakeRAM()
    entry = load_kernel(img, b"MOD", "hi", ram.write, RAM, E820)
    assert entry.mode == "protected32" and entry.rip == load + 40
    assert entry.regs["rax"] == 0x2BADB002
    assert ram.data[load:load + len(img)] == img
    assert ram.data[load + len(img):load + 0x2000] == bytes(0x2000 - len(img))  # bss
    mbi = entry.regs["rbx"]
    flags, lower, upper = struct.unpack_from("<III", ram.data, mbi)
    assert flags == 1 | 4 | 8 | 64 and lower == 640 and upper == (RAM - 0x100000) >> 10
    assert ram.data[ram.u32(mbi + 16):][:3] == b"hi\0"
    assert ram.u32(mbi + 20) == 1  # mods_count
    mods = ram.u32(mbi + 24)
    start, end = ram.u32(mods), ram.u32(mods + 4)
    assert ram.data[start:end] == b"MOD"
    mmap_len, mmap_addr = ram.u32(mbi + 44), ram.u32(mbi + 48)
    assert mmap_len == 24 * len(E820)
    assert ram.data[mmap_addr:mmap_addr + 24] == struct.pack("<I", 20) + E820[0].pack()


def test_mp_table():
    base = 0x9FC00
    t = build_mptable(2, base)
    assert t[:4] == b"_MP_" and sum(t[:16]) & 0xFF == 0
    assert struct.unpack_from("<I", t, 4)[0] == base + 16 and t[8] == 1 and t[9] == 4
    cfg = t[16:]
    length, rev = struct.unpack_from("<HB", cfg, 4)
    assert cfg[:4] == b"PCMP" and rev == 4 and length == len(cfg) and sum(cfg) & 0xFF == 0
    count, lapic = struct.unpack_from("<HI", cfg, 34)
    pos, kinds = 44, []
    for _ in range(count):
        kinds.append(cfg[pos])
        pos += 20 if cfg[pos] == 0 else 8
    assert pos == len(cfg) and lapic == 0xFEE00000
    assert kinds.count(0) == 2 and kinds.count(2) == 1 and kinds.count(3) == 15
    assert cfg[44 + 3] == 3 and cfg[64 + 3] == 1  # CPU 0 enabled+BSP, CPU 1 enabled
    io = [cfg[p:p + 8] for p in range(44 + 40 + 16, len(cfg) - 16, 8)]
    timer = io[0]
    assert timer[0] == 3 and timer[5] == 0 and timer[7] == 2  # ISA IRQ 0 -> IOAPIC pin 2
