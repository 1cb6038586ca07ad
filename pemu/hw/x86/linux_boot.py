"""Boot a bzImage through the Linux/x86 64-bit boot protocol (Documentation/x86/boot.rst).

The loader reads the setup header from the image, copies it into a zeroed boot_params
("zero page"), fills in the fields a boot loader owns (type_of_loader, loadflags,
cmd_line_ptr, ramdisk_image/size, e820 table), loads the protected-mode kernel at
1 MiB and enters its 64-bit entry point (load address + 0x200) with RSI = zero page,
in long mode with identity-mapped page tables, as the protocol requires.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pemu.hw.x86.boot_layout import (
    BOOT_INFO_ADDR,
    KERNEL_HIGH_ADDR,
    BootEntry,
    BootError,
    WriteFn,
    check_fits,
    write_cmdline,
)
from pemu.hw.x86.e820 import E820Entry

HDRS_MAGIC = 0x53726448  # "HdrS"
BOOT_FLAG = 0xAA55
XLF_KERNEL_64 = 1 << 0
LOADED_HIGH = 1 << 0
CAN_USE_HEAP = 1 << 7
ZERO_PAGE_SIZE = 0x1000
E820_MAX_ENTRIES_ZEROPAGE = 128

# Offsets in boot_params (the zero page) and, from 0x1f1, in the image's first sector.
OFF_EXT_RAMDISK_IMAGE = 0x0C0
OFF_EXT_RAMDISK_SIZE = 0x0C4
OFF_EXT_CMD_LINE_PTR = 0x0C8
OFF_E820_ENTRIES = 0x1E8
OFF_SETUP_SECTS = 0x1F1
OFF_BOOT_FLAG = 0x1FE
OFF_JUMP = 0x200
OFF_HEADER = 0x202
OFF_VERSION = 0x206
OFF_TYPE_OF_LOADER = 0x210
OFF_LOADFLAGS = 0x211
OFF_CODE32_START = 0x214
OFF_RAMDISK_IMAGE = 0x218
OFF_RAMDISK_SIZE = 0x21C
OFF_HEAP_END_PTR = 0x224
OFF_CMD_LINE_PTR = 0x228
OFF_INITRD_ADDR_MAX = 0x22C
OFF_KERNEL_ALIGNMENT = 0x230
OFF_RELOCATABLE = 0x234
OFF_XLOADFLAGS = 0x236
OFF_CMDLINE_SIZE = 0x238
OFF_PREF_ADDRESS = 0x258
OFF_INIT_SIZE = 0x260
OFF_E820_TABLE = 0x2D0


@dataclass(frozen=True)
class SetupHeader:
    setup_sects: int
    version: int
    loadflags: int
    initrd_addr_max: int
    kernel_alignment: int
    relocatable: bool
    xloadflags: int
    cmdline_size: int
    pref_address: int
    init_size: int
    header_bytes: bytes  # 0x1f1 .. end of the header, copied into the zero page


def is_bzimage(image: bytes) -> bool:
    return (len(image) >= 0x264 and struct.unpack_from("<I", image, OFF_HEADER)[0] == HDRS_MAGIC
            and struct.unpack_from("<H", image, OFF_BOOT_FLAG)[0] == BOOT_FLAG)


def parse_setup_header(image: bytes) -> SetupHeader:
    if not is_bzimage(image):
        raise BootError("kernel: not a bzImage (no 'HdrS' setup header)")
    version = struct.unpack_from("<H", image, OFF_VERSION)[0]
    if version < 0x20C:
        raise BootError(f"kernel: boot protocol {version >> 8}.{version & 0xff} is too old; "
                        "the 64-bit entry needs 2.12 or later")
    end = OFF_JUMP + 2 + image[OFF_JUMP + 1]  # the jump at 0x200 skips the header
    u32 = lambda off: struct.unpack_from("<I", image, off)[0]  # noqa: E731
    hdr = SetupHeader(
        setup_sects=image[OFF_SETUP_SECTS] or 4, version=version,
        loadflags=image[OFF_LOADFLAGS], initrd_addr_max=u32(OFF_INITRD_ADDR_MAX),
        kernel_alignment=u32(OFF_KERNEL_ALIGNMENT), relocatable=bool(image[OFF_RELOCATABLE]),
        xloadflags=struct.unpack_from("<H", image, OFF_XLOADFLAGS)[0],
        cmdline_size=u32(OFF_CMDLINE_SIZE),
        pref_address=struct.unpack_from("<Q", image, OFF_PREF_ADDRESS)[0],
        init_size=u32(OFF_INIT_SIZE), header_bytes=image[OFF_SETUP_SECTS:end])
    if not hdr.xloadflags & XLF_KERNEL_64:
        raise BootError("kernel: this bzImage has no 64-bit entry point (XLF_KERNEL_64)")
    if not hdr.loadflags & LOADED_HIGH:
        raise BootError("kernel: zImage (loaded low) kernels are not supported")
    return hdr


def build_zero_page(hdr: SetupHeader, cmdline_addr: int, initrd: tuple[int, int] | None,
                    e820: list[E820Entry]) -> bytes:
    """boot_params for the 64-bit entry, per boot.rst and zero-page.rst."""
    zp = bytearray(ZERO_PAGE_SIZE)
    zp[OFF_SETUP_SECTS:OFF_SETUP_SECTS + len(hdr.header_bytes)] = hdr.header_bytes
    zp[OFF_TYPE_OF_LOADER] = 0xFF  # "undefined" boot loader id
    zp[OFF_LOADFLAGS] = (hdr.loadflags | LOADED_HIGH | CAN_USE_HEAP) & 0xFF
    struct.pack_into("<H", zp, OFF_HEAP_END_PTR, 0xFE00)
    struct.pack_into("<I", zp, OFF_CMD_LINE_PTR, cmdline_addr & 0xFFFFFFFF)
    struct.pack_into("<I", zp, OFF_EXT_CMD_LINE_PTR, cmdline_addr >> 32)
    struct.pack_into("<I", zp, OFF_CODE32_START, KERNEL_HIGH_ADDR)
    if initrd is not None:
        addr, size = initrd
        struct.pack_into("<I", zp, OFF_RAMDISK_IMAGE, addr & 0xFFFFFFFF)
        struct.pack_into("<I", zp, OFF_RAMDISK_SIZE, size & 0xFFFFFFFF)
        struct.pack_into("<I", zp, OFF_EXT_RAMDISK_IMAGE, addr >> 32)
        struct.pack_into("<I", zp, OFF_EXT_RAMDISK_SIZE, size >> 32)
    if len(e820) > E820_MAX_ENTRIES_ZEROPAGE:
        raise BootError("too many e820 entries for the zero page")
    zp[OFF_E820_ENTRIES] = len(e820)
    for i, entry in enumerate(e820):
        off = OFF_E820_TABLE + 20 * i
        zp[off:off + 20] = entry.pack()
    return bytes(zp)


def place_initrd(size: int, low_ram_end: int, kernel_end: int, addr_max: int) -> int:
    """Highest page-aligned address below RAM end and initrd_addr_max, above the kernel."""
    top = min(low_ram_end, addr_max + 1)
    addr = (top - size) & ~0xFFF
    if addr < kernel_end:
        raise BootError(f"initrd of {size} bytes does not fit between the kernel (ends at "
                        f"0x{kernel_end:x}) and 0x{top:x}; give the guest more memory with -m")
    return addr


def load_bzimage(image: bytes, initrd: bytes | None, cmdline: str, write: WriteFn,
                 low_ram_end: int, e820: list[E820Entry]) -> BootEntry:
    hdr = parse_setup_header(image)
    kernel_off = (hdr.setup_sects + 1) * 512
    if kernel_off >= len(image):
        raise BootError("kernel: bzImage is truncated (no protected-mode part)")
    pm_kernel = image[kernel_off:]
    # The decompressor runs in place at 1 MiB and needs init_size bytes from the larger of
    # the load address and the kernel's preferred address.
    run_base = max(KERNEL_HIGH_ADDR, 0 if hdr.relocatable else hdr.pref_address)
    kernel_end = max(KERNEL_HIGH_ADDR + len(pm_kernel), run_base + hdr.init_size)
    check_fits("kernel", KERNEL_HIGH_ADDR, kernel_end - KERNEL_HIGH_ADDR, low_ram_end)
    write(KERNEL_HIGH_ADDR, pm_kernel)
    limit = hdr.cmdline_size + 1 if hdr.version >= 0x206 else 256
    cmd_addr, _ = write_cmdline(write, cmdline, limit)
    initrd_range = None
    if initrd:
        addr = place_initrd(len(initrd), low_ram_end, kernel_end, hdr.initrd_addr_max)
        write(addr, initrd)
        initrd_range = (addr, len(initrd))
    write(BOOT_INFO_ADDR, build_zero_page(hdr, cmd_addr, initrd_range, e820))
    v = hdr.version
    return BootEntry("long64", KERNEL_HIGH_ADDR + 0x200, {"rsi": BOOT_INFO_ADDR},
                     f"bzImage, boot protocol {v >> 8}.{v & 0xff}, 64-bit entry")
