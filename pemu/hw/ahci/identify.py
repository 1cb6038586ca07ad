"""IDENTIFY DEVICE and IDENTIFY PACKET DEVICE data (ACS-3 7.12, 7.13): 256 words.

Strings are ATA strings: space padded, the two bytes of each word swapped.  Word 255
carries the integrity signature 0xA5 and a checksum that makes the 512 bytes sum to 0.
"""

from __future__ import annotations

import struct

WORDS = 256


def ata_string(text: str, nbytes: int) -> list[int]:
    raw = text.encode("ascii", "replace")[:nbytes].ljust(nbytes)
    return [raw[i] << 8 | raw[i + 1] for i in range(0, nbytes, 2)]


def pack(words: dict[int, int], serial: str, firmware: str, model: str) -> bytes:
    w = [0] * WORDS
    for index, value in words.items():
        w[index] = value & 0xFFFF
    w[10:20] = ata_string(serial, 20)
    w[23:27] = ata_string(firmware, 8)
    w[27:47] = ata_string(model, 40)
    w[255] = 0xA5
    data = bytearray(struct.pack(f"<{WORDS}H", *w))
    data[511] = -sum(data[:511]) & 0xFF
    return bytes(data)


def common_words() -> dict[int, int]:
    """What disk and CD share: DMA and LBA, PIO 3-4, MWDMA 0-2, UDMA 0-5 (5 selected),
    SATA Gen1/Gen2, ATA8-ACS."""
    return {49: 0x0F00, 50: 0x4000, 53: 0x0007, 63: 0x0007, 64: 0x0003,
            65: 120, 66: 120, 67: 120, 68: 120, 76: 0x0006, 80: 0x01F0,
            84: 0x4000, 87: 0x4000, 88: 0x203F}


def disk_identify(blocks: int, serial: str, trim: bool) -> bytes:
    cylinders = min(blocks // (16 * 63), 16383)
    lba28 = min(blocks, 0x0FFFFFFF)
    words = common_words() | {
        0: 0x0040,  # fixed, not removable
        1: cylinders, 3: 16, 6: 63, 54: cylinders, 55: 16, 56: 63,
        57: (cylinders * 16 * 63) & 0xFFFF, 58: (cylinders * 16 * 63) >> 16,
        47: 0x8010, 59: 0x0110,  # READ/WRITE MULTIPLE: 16 sectors
        60: lba28 & 0xFFFF, 61: lba28 >> 16,
        75: 31,  # NCQ queue depth - 1
        76: 0x0106,  # NCQ, Gen1, Gen2
        82: 0x0060, 85: 0x0060,  # write cache and look-ahead, enabled
        83: 0x7400, 86: 0x3400,  # LBA48, FLUSH CACHE (EXT)
        100: blocks & 0xFFFF, 101: (blocks >> 16) & 0xFFFF, 102: (blocks >> 32) & 0xFFFF,
        103: blocks >> 48,
        106: 0x4000,  # one 512-byte logical sector per physical sector
        217: 1,  # not rotating
    }
    if trim:
        words |= {105: 1, 169: 0x0001}  # DATA SET MANAGEMENT TRIM, one block of ranges
    return pack(words, serial, "2.5+", "QEMU HARDDISK")


def packet_identify(serial: str) -> bytes:
    words = common_words() | {
        0: 0x85C0,  # ATAPI, CD-ROM, removable, 12-byte packets
        82: 0x0010, 85: 0x0010, 83: 0x4000,  # PACKET feature set
    }
    return pack(words, serial, "2.5+", "QEMU DVD-ROM")
