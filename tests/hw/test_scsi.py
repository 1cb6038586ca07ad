"""The SCSI target layer (pemu/hw/scsi) on its own: CDBs in, data and sense out."""

from __future__ import annotations

import os
import struct

import pytest

from pemu.block import open_drive
from pemu.hw.scsi import sense as K
from pemu.hw.scsi.bus import ScsiBus
from pemu.hw.scsi.disk import ScsiDisk

BLOCKS = 2048


@pytest.fixture
def disk(tmp_path):
    data = os.urandom(BLOCKS * 512)
    path = tmp_path / "disk.raw"
    path.write_bytes(data)
    backend = open_drive({"file": str(path), "format": "raw", "discard": "unmap"})
    yield ScsiDisk(backend, serial="pemu-scsi-0"), path, data
    backend.close()


def run(unit, cdb, in_len=0, out=b""):
    buf = bytearray(in_len)
    result = unit.execute(bytes(cdb), [memoryview(bytearray(out))] if out else [],
                          [memoryview(buf)] if in_len else [])
    return result, bytes(buf[:result.data_in])


def test_inquiry_standard_and_vpd_pages(disk):
    unit, _, _ = disk
    r, data = run(unit, [0x12, 0, 0, 0, 96, 0], 96)
    assert r.status == K.GOOD and data[0] == 0 and data[2] == 5
    assert data[8:16] == b"QEMU    " and data[16:29] == b"QEMU HARDDISK"
    _, pages = run(unit, [0x12, 1, 0x00, 0, 255, 0], 255)
    assert list(pages[4:]) == [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]
    _, serial = run(unit, [0x12, 1, 0x80, 0, 255, 0], 255)
    assert serial[4:] == b"pemu-scsi-0"
    _, limits = run(unit, [0x12, 1, 0xB0, 0, 255, 0], 255)
    assert struct.unpack_from(">I", limits, 20)[0] > 0  # max unmap LBA count
    _, lbp = run(unit, [0x12, 1, 0xB2, 0, 255, 0], 255)
    assert lbp[5] & 0x80  # LBPU: UNMAP
    r, _ = run(unit, [0x12, 1, 0x89, 0, 255, 0], 255)
    assert r.status == K.CHECK_CONDITION and r.sense[2] == K.ILLEGAL_REQUEST
    assert r.sense[12] == 0x24  # invalid field in CDB


def test_capacity_read_write_and_sync(disk):
    unit, path, data = disk
    _, cap10 = run(unit, [0x25] + [0] * 9, 8)
    assert struct.unpack(">II", cap10) == (BLOCKS - 1, 512)
    _, cap16 = run(unit, [0x9E, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0], 32)
    assert struct.unpack_from(">QI", cap16) == (BLOCKS - 1, 512) and cap16[14] & 0x80
    r, got = run(unit, [0x28, 0, 0, 0, 0, 10, 0, 0, 4, 0], 4 * 512)
    assert r.data_in == 2048 and got == data[10 * 512:14 * 512]
    r, got = run(unit, [0x08, 0, 0, 10, 1, 0], 512)  # READ(6)
    assert got == data[10 * 512:11 * 512]
    payload = os.urandom(3 * 512)
    r, _ = run(unit, [0x8A, 0x08] + list((7).to_bytes(8, "big")) + [0, 0, 0, 3, 0, 0],
               out=payload)  # WRITE(16), FUA
    assert r.status == K.GOOD
    assert run(unit, [0x35] + [0] * 9)[0].status == K.GOOD
    assert path.read_bytes()[7 * 512:10 * 512] == payload


def test_errors_are_check_condition_and_request_sense_repeats_them(disk):
    unit, _, _ = disk
    r, _ = run(unit, [0x28, 0, 0, 0, 0x08, 0, 0, 0, 1, 0], 512)  # LBA 2048: the end
    assert r.status == K.CHECK_CONDITION
    assert (r.sense[0], r.sense[2], r.sense[12]) == (0x70, K.ILLEGAL_REQUEST, 0x21)
    r, sense = run(unit, [0x03, 0, 0, 0, 18, 0], 18)
    assert r.status == K.GOOD and sense[2] == K.ILLEGAL_REQUEST and sense[12] == 0x21
    _, sense = run(unit, [0x03, 0, 0, 0, 18, 0], 18)
    assert sense[2] == K.NO_SENSE  # reported once
    r, _ = run(unit, [0xC0] + [0] * 9)
    assert r.sense[12] == 0x20  # invalid opcode
    r, _ = run(unit, [0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], 512)  # buffer too small
    assert r.status == K.CHECK_CONDITION


def test_mode_sense_caching_page(disk):
    unit, _, _ = disk
    _, six = run(unit, [0x1A, 0, 0x08, 0, 255, 0], 255)
    assert six[0] == len(six) - 1 and six[3] == 8  # a block descriptor
    assert six[12] == 0x08 and six[14] & 0x04  # caching page, WCE
    _, ten = run(unit, [0x5A, 0x08, 0x3F, 0, 0, 0, 0, 1, 0, 0], 256)
    assert struct.unpack_from(">H", ten)[0] == len(ten) - 2 and ten[7] == 0  # DBD
    assert ten[8] == 0x08 and ten[8 + 20] == 0x0A  # all pages
    r, _ = run(unit, [0x1A, 0, 0x1C, 0, 255, 0], 255)
    assert r.status == K.CHECK_CONDITION


def test_unmap_discards(disk):
    unit, path, _ = disk
    param = struct.pack(">HH4x", 22, 16) + struct.pack(">QI4x", 100, 8)
    r, _ = run(unit, [0x42, 0, 0, 0, 0, 0, 0, 0, len(param), 0], out=param)
    assert r.status == K.GOOD
    assert path.read_bytes()[100 * 512:108 * 512] == bytes(8 * 512)
    bad = struct.pack(">HH4x", 22, 16) + struct.pack(">QI4x", BLOCKS - 1, 8)
    r, _ = run(unit, [0x42, 0, 0, 0, 0, 0, 0, 0, len(bad), 0], out=bad)
    assert r.sense[12] == 0x21


def test_cdrom_toc_configuration_events_and_write_protect(tmp_path):
    iso = tmp_path / "cd.iso"
    iso.write_bytes(os.urandom(100 * 2048))
    backend = open_drive({"file": str(iso), "format": "raw", "read-only": "on"})
    cd = ScsiDisk(backend, cdrom=True)
    _, inq = run(cd, [0x12, 0, 0, 0, 36, 0], 36)
    assert inq[0] == 5 and inq[1] & 0x80
    _, cap = run(cd, [0x25] + [0] * 9, 8)
    assert struct.unpack(">II", cap) == (99, 2048)
    _, toc = run(cd, [0x43, 0x02, 0, 0, 0, 0, 0, 0, 100, 0], 100)  # MSF
    assert toc[3] == 1 and toc[6] == 1 and toc[14] == 0xAA
    assert toc[9:12] == bytes([0, 2, 0])  # track 1 at 00:02:00
    _, conf = run(cd, [0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0], 64)
    assert struct.unpack_from(">H", conf, 6)[0] == 0x0008  # current profile: CD-ROM
    _, ev = run(cd, [0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8)
    assert ev[2] == 0x04 and ev[5] & 0x02  # media class, medium present
    r, _ = run(cd, [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0], out=bytes(2048))
    assert r.sense[2] == K.DATA_PROTECT
    backend.close()


def test_bus_report_luns_and_missing_luns(disk):
    unit, _, _ = disk
    bus = ScsiBus("scsi0.0", 255, 16383)
    bus.attach(unit, 0, 2, 0)
    bus.attach(ScsiDisk(unit.backend), 0, 2, 300)
    buf = bytearray(64)
    r = bus.execute(0, 2, 0, bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0]), [],
                    [memoryview(buf)])
    assert struct.unpack_from(">I", buf)[0] == 16
    assert buf[8:10] == b"\x00\x00" and buf[16:18] == bytes([0x41, 0x2C])
    buf = bytearray(36)
    bus.execute(0, 2, 5, bytes([0x12, 0, 0, 0, 36, 0]), [], [memoryview(buf)])
    assert buf[0] == 0x7F  # no unit at LUN 5
    r = bus.execute(0, 2, 5, bytes([0x00] * 6), [], [])
    assert r.status == K.CHECK_CONDITION and r.sense[12] == 0x25
    with pytest.raises(ValueError):
        bus.attach(unit, 0, 2, 0)
    assert bus.attach(ScsiDisk(unit.backend))[1] == 0  # first free target
