"""ich9-ahci with an ide-hd and an ide-cd, driven through ABAR by tests/hw/ahci_driver.py."""

from __future__ import annotations

import os
import struct

import pytest
from ahci_driver import SECTOR, AhciDriver, h2d
from pci_driver import RAM_BASE, RAM_SIZE, PCIMachine

from pemu.block import open_drive
from pemu.hw.ahci import regs as R
from pemu.hw.ahci.ata import AtaDisk
from pemu.hw.ahci.atapi import AtapiCd
from pemu.hw.ahci.hba import AhciController
from pemu.hw.pci import config as C
from pemu.hw.pci.capability import CAP_ID_MSI

SLOT = 6
DISK_SIZE = 1 << 20
CD_BLOCKS = 64


class Rig:
    def __init__(self, tmp_path, read_only: bool = False) -> None:
        self.m = PCIMachine()
        self.ctrl = AhciController(self.m.space, id="ahci")
        self.disk_data = os.urandom(DISK_SIZE)
        self.disk_path = tmp_path / "disk.raw"
        self.disk_path.write_bytes(self.disk_data)
        self.iso_data = os.urandom(CD_BLOCKS * 2048)
        iso = tmp_path / "cd.iso"
        iso.write_bytes(self.iso_data)
        opts = {"file": str(self.disk_path), "format": "raw", "discard": "unmap"}
        if read_only:
            opts["read-only"] = "on"
        self.disk = open_drive(opts)
        self.cd = open_drive({"file": str(iso), "format": "raw", "read-only": "on"})
        self.ctrl.attach(AtaDisk(self.disk, serial="pemu-ahci-disk"), 0)
        self.ctrl.attach(AtapiCd(self.cd), 1)
        self.m.host.root_bus.plug(self.ctrl, SLOT << 3)
        self.drv = AhciDriver(self.m, SLOT << 3)
        self.drv.w(R.HBA_GHC, R.GHC_AE | R.GHC_IE)
        for port in (0, 1):
            self.drv.start_port(port)

    def settle(self) -> None:
        self.disk.drain()
        self.cd.drain()

    def run(self, port: int, slot: int, cfis: bytes, **kw) -> int:
        table = self.drv.issue(port, slot, cfis, **kw)
        self.settle()
        return table

    def buf(self, size: int) -> int:
        return self.m.ram.alloc(size, 512)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.disk.close()
    r.cd.close()


# -- identity and registers -------------------------------------------------------------------
def test_pci_identity_msi_and_hba_registers(rig):
    cfg, drv = rig.drv.cfg, rig.drv
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x8086, 0x2922)
    assert cfg.r(C.REVISION_ID, 4) >> 8 == 0x010601  # what Linux's ahci matches on
    assert CAP_ID_MSI in dict(cfg.capabilities())
    cap = drv.r(R.HBA_CAP)
    assert cap & 0x1F == 5 and (cap >> 8) & 0x1F == 31  # six ports, 32 slots
    assert cap & R.CAP_SNCQ and cap & R.CAP_S64A and cap & R.CAP_SAM
    assert drv.r(R.HBA_PI) == 0x3F and drv.r(R.HBA_VS) == 0x00010000
    assert drv.r(R.HBA_GHC) & R.GHC_AE
    assert drv.pr(0, R.PX_SIG) == R.SIG_ATA and drv.pr(1, R.PX_SIG) == R.SIG_ATAPI
    assert drv.pr(0, R.PX_SSTS) == R.SSTS_PRESENT and drv.pr(2, R.PX_SSTS) == 0
    assert drv.pr(0, R.PX_CMD) & (R.CMD_CR | R.CMD_FR) == R.CMD_CR | R.CMD_FR


def test_comreset_posts_the_signature_and_stop_clears_the_engine(rig):
    drv = rig.drv
    drv.pw(1, R.PX_SCTL, R.SCTL_DET_COMRESET)
    drv.pw(1, R.PX_SCTL, 0)
    fis = drv.fis(1, R.RX_D2H, 20)
    assert fis[0] == R.FIS_D2H
    assert (fis[12], fis[4], fis[5], fis[6]) == (0x01, 0x01, 0x14, 0xEB)  # ATAPI signature
    assert not drv.pr(1, R.PX_TFD) & 0x80  # not BSY: Linux's ahci_check_ready passes
    drv.pw(0, R.PX_CMD, R.CMD_FRE)  # ST off
    assert not drv.pr(0, R.PX_CMD) & R.CMD_CR
    drv.pw(0, R.PX_CI, 1)  # ignored while stopped
    assert drv.pr(0, R.PX_CI) == 0


def test_hba_reset_clears_the_ports(rig):
    drv = rig.drv
    drv.w(R.HBA_GHC, R.GHC_HR)
    assert drv.r(R.HBA_GHC) & (R.GHC_HR | R.GHC_IE) == 0
    assert drv.pr(0, R.PX_CMD) & R.CMD_ST == 0 and drv.pr(0, R.PX_CLB) == 0


# -- ATA ---------------------------------------------------------------------------------------
def test_identify_device(rig):
    buf = rig.buf(SECTOR)
    rig.run(0, 0, h2d(0xEC), prds=[(buf, SECTOR)])
    drv = rig.drv
    assert drv.pr(0, R.PX_CI) == 0 and drv.pr(0, R.PX_TFD) & 0xFF == 0x50
    assert drv.pr(0, R.PX_IS) & (R.IS_DHRS | R.IS_PSS) == R.IS_DHRS | R.IS_PSS
    assert drv.prdbc(0, 0) == SECTOR
    assert drv.fis(0, R.RX_PIO_SETUP, 20)[15] == 0x50  # E_Status, which libata reads
    words = struct.unpack("<256H", rig.m.space.read(buf, SECTOR))
    assert words[0] & 0x8000 == 0  # ATA, not ATAPI
    assert words[83] & (1 << 10) and words[76] & (1 << 8)  # LBA48, NCQ
    assert words[75] == 31 and words[169] & 1  # queue depth 32, TRIM
    blocks = words[100] | words[101] << 16 | words[102] << 32
    assert blocks == DISK_SIZE // SECTOR
    serial = b"".join(struct.pack(">H", w) for w in words[10:20])
    assert serial.rstrip() == b"pemu-ahci-disk"
    assert sum(rig.m.space.read(buf, SECTOR)) & 0xFF == 0 and words[255] & 0xFF == 0xA5


def test_read_log_ext_gives_an_empty_log_directory(rig):
    buf = rig.buf(SECTOR)
    rig.m.space.write(buf, b"\xff" * SECTOR)
    rig.run(0, 0, h2d(0x2F, lba=0, count=1), prds=[(buf, SECTOR)])
    assert rig.drv.pr(0, R.PX_TFD) & 1 == 0
    assert rig.m.space.read(buf, SECTOR) == b"\x01" + bytes(SECTOR - 1)
    rig.run(0, 1, h2d(0x2F, lba=0x10, count=1), prds=[(buf, SECTOR)])  # no NCQ error log
    assert rig.drv.pr(0, R.PX_TFD) & 1


def test_read_and_write_dma_ext(rig):
    buf = rig.buf(8 * SECTOR)
    rig.run(0, 3, h2d(0x25, lba=16, count=8), prds=[(buf, 4 * SECTOR),
                                                    (buf + 4 * SECTOR, 4 * SECTOR)])
    assert rig.m.space.read(buf, 8 * SECTOR) == rig.disk_data[16 * SECTOR:24 * SECTOR]
    assert rig.drv.prdbc(0, 3) == 8 * SECTOR and rig.drv.pr(0, R.PX_CI) == 0
    pattern = os.urandom(2 * SECTOR)
    rig.m.space.write(buf, pattern)
    rig.run(0, 4, h2d(0x35, lba=100, count=2), prds=[(buf, 2 * SECTOR)], write=True)
    rig.run(0, 5, h2d(0xEA))  # FLUSH CACHE EXT
    assert rig.drv.pr(0, R.PX_TFD) & 1 == 0
    assert rig.disk_path.read_bytes()[100 * SECTOR:102 * SECTOR] == pattern


def test_ncq_writes_and_reads_complete_with_set_device_bits(rig):
    drv, space = rig.drv, rig.m.space
    data = {tag: os.urandom(4 * SECTOR) for tag in (1, 7, 30)}
    bufs = {}
    for tag, payload in data.items():
        bufs[tag] = rig.buf(4 * SECTOR)
        space.write(bufs[tag], payload)
        drv.issue(0, tag, h2d(0x61, lba=200 + 8 * tag, features=4, count=tag << 3),
                  prds=[(bufs[tag], 4 * SECTOR)], write=True, ncq=True)
    assert drv.pr(0, R.PX_CI) == 0  # NCQ commands leave PxCI at once
    rig.settle()
    assert drv.pr(0, R.PX_SACT) == 0
    assert drv.pr(0, R.PX_IS) & R.IS_SDBS
    sdb = drv.fis(0, R.RX_SDB, 8)
    assert sdb[0] == R.FIS_SDB and sdb[1] & 0x40
    for tag, payload in data.items():
        readback = rig.buf(4 * SECTOR)
        rig.run(0, tag, h2d(0x60, lba=200 + 8 * tag, features=4, count=tag << 3),
                prds=[(readback, 4 * SECTOR)], ncq=True)
        assert space.read(readback, 4 * SECTOR) == payload
    raw = rig.disk_path.read_bytes()
    assert all(raw[(200 + 8 * t) * SECTOR:(204 + 8 * t) * SECTOR] == p for t, p in data.items())


def test_trim_discards_the_ranges(rig):
    ranges = rig.buf(SECTOR)
    rig.m.space.write(ranges, struct.pack("<Q", 64 | 8 << 48))
    rig.run(0, 0, h2d(0x06, features=1, count=1), prds=[(ranges, SECTOR)], write=True)
    assert rig.drv.pr(0, R.PX_TFD) & 1 == 0
    assert rig.disk_path.read_bytes()[64 * SECTOR:72 * SECTOR] == bytes(8 * SECTOR)


@pytest.mark.parametrize("case", ["prd-outside-ram", "odd-prd", "table-outside-ram",
                                  "beyond-the-disk", "short-prd", "unknown-command"])
def test_bad_commands_give_a_task_file_error(rig, case):
    drv = rig.drv
    buf = rig.buf(SECTOR)
    cfis, kw = h2d(0x25, lba=0, count=1), {"prds": [(buf, SECTOR)]}
    if case == "prd-outside-ram":
        kw = {"prds": [(RAM_BASE + RAM_SIZE + 0x1000, SECTOR)]}
    elif case == "odd-prd":
        kw = {"raw_prds": struct.pack("<QII", buf, 0, SECTOR - 2)}  # 511 bytes
    elif case == "beyond-the-disk":
        cfis = h2d(0x25, lba=DISK_SIZE // SECTOR, count=1)
    elif case == "short-prd":
        cfis = h2d(0x25, lba=0, count=4)
    elif case == "unknown-command":
        cfis = h2d(0xB0)
    if case == "table-outside-ram":
        clb, _ = drv.ports[0]
        rig.m.space.write(clb, struct.pack("<IIQ", 5 | 1 << 16, 0, RAM_BASE + RAM_SIZE))
        drv.pw(0, R.PX_CI, 1)
    else:
        rig.run(0, 0, cfis, **kw)
    tfd = drv.pr(0, R.PX_TFD)
    assert tfd & 0x01 and (tfd >> 8) & 0x04, hex(tfd)  # ERR, ABRT
    assert drv.pr(0, R.PX_IS) & R.IS_TFES
    d2h = drv.fis(0, R.RX_D2H, 4)
    assert d2h[2] & 1 and d2h[3] & 0x04
    assert drv.pr(0, R.PX_CI) == 1  # held until the host stops the port
    drv.pw(0, R.PX_CMD, R.CMD_FRE)
    assert drv.pr(0, R.PX_CI) == 0


def test_write_to_a_read_only_drive_is_aborted(tmp_path):
    rig = Rig(tmp_path, read_only=True)
    buf = rig.buf(SECTOR)
    rig.run(0, 0, h2d(0x35, lba=0, count=1), prds=[(buf, SECTOR)], write=True)
    assert rig.drv.pr(0, R.PX_TFD) & 1
    assert rig.disk_path.read_bytes() == rig.disk_data


# -- interrupts --------------------------------------------------------------------------------
def test_intx_follows_the_interrupt_status(rig):
    line = rig.m.intx[(SLOT + 0) % 4]  # INTA# of slot 6 after the swizzle
    rig.run(0, 0, h2d(0xE7))  # FLUSH CACHE
    assert rig.ctrl.intx_level and line.level
    rig.drv.pw(0, R.PX_IS, 0xFFFFFFFF)
    assert rig.ctrl.intx_level  # HBA IS still set
    rig.drv.w(R.HBA_IS, 1)
    assert not rig.ctrl.intx_level and not line.level


def test_msi_message_per_completion(rig):
    drv, space = rig.drv, rig.m.space
    target = rig.buf(4)
    cap = dict(drv.cfg.capabilities())[CAP_ID_MSI]
    drv.cfg.w(cap + 4, 4, target & 0xFFFFFFFF)
    drv.cfg.w(cap + 8, 4, target >> 32)
    drv.cfg.w(cap + 12, 2, 0x4321)
    drv.cfg.w(cap + 2, 2, 1)  # MSI enable
    rig.run(0, 0, h2d(0xE7))
    assert struct.unpack("<I", space.read(target, 4))[0] == 0x4321
    assert not rig.ctrl.intx_level
    space.write(target, bytes(4))
    drv.w(R.HBA_IS, 1)  # the port's event is still pending: IS is set again, a message
    assert struct.unpack("<I", space.read(target, 4))[0] == 0x4321
    drv.pw(0, R.PX_IS, 0xFFFFFFFF)
    space.write(target, bytes(4))
    drv.w(R.HBA_IS, 1)
    assert struct.unpack("<I", space.read(target, 4))[0] == 0
    drv.w(R.HBA_GHC, R.GHC_AE)  # GHC.IE off: no message
    rig.run(0, 1, h2d(0xE7))
    assert struct.unpack("<I", space.read(target, 4))[0] == 0


# -- ATAPI -------------------------------------------------------------------------------------
def packet(rig, slot, cdb, length, write=False):
    buf = rig.buf(max(length, 2))
    rig.run(1, slot, h2d(0xA0, features=1), prds=[(buf, max(length, 2))], atapi=cdb,
            write=write)
    return rig.m.space.read(buf, length)


def test_identify_packet_and_ata_identify_is_aborted(rig):
    buf = rig.buf(SECTOR)
    rig.run(1, 0, h2d(0xEC), prds=[(buf, SECTOR)])
    assert rig.drv.pr(1, R.PX_TFD) & 1  # how libata learns it is a packet device
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE)
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE | R.CMD_ST)
    rig.run(1, 1, h2d(0xA1), prds=[(buf, SECTOR)])
    words = struct.unpack("<256H", rig.m.space.read(buf, SECTOR))
    assert words[0] >> 14 == 2 and (words[0] >> 8) & 0x1F == 5  # ATAPI, CD-ROM


def test_atapi_inquiry_capacity_and_read(rig):
    inquiry = packet(rig, 0, bytes([0x12, 0, 0, 0, 36, 0]), 36)
    assert inquiry[0] == 5 and inquiry[1] & 0x80 and inquiry[16:27] == b"QEMU CD-ROM"
    cap = packet(rig, 1, bytes([0x25]) + bytes(9), 8)
    assert struct.unpack(">II", cap) == (CD_BLOCKS - 1, 2048)
    data = packet(rig, 2, bytes([0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0]), 4096)
    assert data == rig.iso_data[3 * 2048:5 * 2048]
    assert rig.drv.prdbc(1, 2) == 4096
    toc = packet(rig, 3, bytes([0x43, 0, 0, 0, 0, 0, 1, 0, 20, 0]), 20)
    assert toc[2:4] == b"\x01\x01" and toc[5] & 0x04  # one data track
    assert struct.unpack(">I", toc[16:20])[0] == CD_BLOCKS  # lead-out


def test_atapi_error_carries_the_sense_key_and_request_sense_explains(rig):
    packet(rig, 0, bytes([0x28, 0, 0, 0, 0x10, 0, 0, 0, 1, 0]), 2048)  # beyond the disc
    tfd = rig.drv.pr(1, R.PX_TFD)
    assert tfd & 1 and (tfd >> 12) == 0x5, hex(tfd)  # ILLEGAL REQUEST
    assert rig.drv.pr(1, R.PX_IS) & R.IS_TFES
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE)  # the host's error handling restarts the port
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE | R.CMD_ST)
    sense = packet(rig, 1, bytes([0x03, 0, 0, 0, 18, 0]), 18)
    assert sense[2] == 0x5 and sense[12] == 0x21  # LBA out of range
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE)
    rig.drv.pw(1, R.PX_CMD, R.CMD_FRE | R.CMD_ST)
    packet(rig, 2, bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), 2048, write=True)
    assert rig.drv.pr(1, R.PX_TFD) >> 12 == 0x7  # DATA PROTECT: a CD is read-only
