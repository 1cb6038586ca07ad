"""Scenarios for the storage controllers whose state issue 24 added: ich9-ahci (an
ide-hd and an ide-cd) and virtio-scsi (scsi-hd and scsi-cd units).  The images are
shared storage: the source and target rigs open the same files."""

from __future__ import annotations

import atexit
import os
import struct
import tempfile

from pemu.block import BlockBackend, open_drive
from pemu.hw.ahci import regs as R
from pemu.hw.ahci.ata import AtaDisk
from pemu.hw.ahci.atapi import AtapiCd
from pemu.hw.ahci.hba import AhciController
from pemu.hw.pci import config as C
from tests.migration.pci_rig import MEM_WINDOW_BASE, PCIRig
from tests.migration.scenarios import Rig, Scenario

SECTOR = 512
_images: dict[str, str] = {}
_opened: list[BlockBackend] = []  # closed after each test (close_shared_drives)


def shared_image(name: str, size: int) -> str:
    """One image file per name for the whole test run, random content."""
    if name not in _images:
        fd, path = tempfile.mkstemp(prefix=f"pemu-{name}-", suffix=".raw")
        os.write(fd, os.urandom(size))
        os.close(fd)
        atexit.register(os.unlink, path)
        _images[name] = path
    return _images[name]


def shared_drive(name: str, size: int, read_only: bool = False) -> BlockBackend:
    """A raw drive on the shared image ``name``, closed by close_shared_drives: a test
    that builds rigs by the hundred (test_bad_input) held two descriptors per rig."""
    opts = {"file": shared_image(name, size), "format": "raw"}
    if read_only:
        opts["read-only"] = "on"
    drive = open_drive(opts)
    _opened.append(drive)
    return drive


def close_shared_drives() -> None:
    while _opened:
        _opened.pop().close()


def h2d(command: int, lba: int = 0, count: int = 0) -> bytes:
    """A Register H2D FIS (command bit set, LBA mode)."""
    fis = bytearray(R.CFIS_SIZE)
    fis[0], fis[1], fis[2], fis[7] = R.FIS_H2D, 0x80, command, 0x40
    fis[4:7] = (lba & 0xFFFFFF).to_bytes(3, "little")
    fis[12:14] = count.to_bytes(2, "little")
    return bytes(fis)


class AhciGuest:
    """The host driver's side, through ABAR at a fixed address."""

    DEVFN = 4 << 3
    ABAR = MEM_WINDOW_BASE + 0x40_0000

    def __init__(self, pci: PCIRig) -> None:
        self.pci, self.space, self.ram = pci, pci.space, pci.ram
        self.lists: dict[int, tuple[int, int]] = {}

    def enable(self) -> None:
        self.pci.cfg_w(self.DEVFN, C.BAR0 + 4 * 5, 4, self.ABAR)
        self.pci.cfg_w(self.DEVFN, C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)
        self.w(R.HBA_GHC, R.GHC_AE | R.GHC_IE)

    def r(self, off: int) -> int:
        return self.space.load(self.ABAR + off, 4)

    def w(self, off: int, value: int) -> None:
        self.space.store(self.ABAR + off, 4, value)

    def pr(self, port: int, off: int) -> int:
        return self.r(R.PORTS_BASE + port * R.PORT_STRIDE + off)

    def pw(self, port: int, off: int, value: int) -> None:
        self.w(R.PORTS_BASE + port * R.PORT_STRIDE + off, value)

    def start_port(self, port: int) -> None:
        if port not in self.lists:
            self.lists[port] = (self.ram.alloc(R.NUM_SLOTS * R.HEADER_SIZE, 1024),
                                self.ram.alloc(R.RX_FIS_SIZE, 256))
        clb, fb = self.lists[port]
        self.pw(port, R.PX_CLB, clb)
        self.pw(port, R.PX_FB, fb)
        self.pw(port, R.PX_CMD, R.CMD_FRE | R.CMD_SUD | R.CMD_POD | R.CMD_ST)
        self.pw(port, R.PX_IE, 0xFFFFFFFF)

    def issue(self, port: int, slot: int, cfis: bytes, buf: tuple[int, int] | None = None,
              write: bool = False, atapi: bytes = b"") -> None:
        clb, _ = self.lists[port]
        table = self.ram.alloc(R.CT_PRDT + R.PRD_SIZE, 128)
        self.space.write(table, cfis)
        self.space.write(table + R.CT_ACMD, atapi.ljust(R.ACMD_SIZE, b"\0"))
        n = 0
        if buf is not None:
            self.space.write(table + R.CT_PRDT, struct.pack("<QII", buf[0], 0, buf[1] - 1))
            n = 1
        dw0 = 5 | (R.HEADER_WRITE if write else 0) | (R.HEADER_ATAPI if atapi else 0) | n << 16
        self.space.write(clb + slot * R.HEADER_SIZE, struct.pack("<IIQ", dw0, 0, table)
                         + bytes(16))
        self.pw(port, R.PX_CI, 1 << slot)

    def port_regs(self, port: int) -> list[int]:
        return [self.pr(port, off) for off in range(0, 0x40, 4)]


class AhciScenario(Scenario):
    """Port 0: a DMA write went to the disk on the drive's I/O thread and was drained
    (as the board's pre-save does), its interrupt not yet acknowledged.  Port 1: an
    ATAPI command failed: the slot waits for recovery, the CD holds sense data."""

    device_type = AhciController

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        pci = PCIRig()
        ctrl = AhciController(pci.space, id="sata0")
        ctrl.attach(AtaDisk(shared_drive("ahci-disk", 1 << 20)), 0)
        ctrl.attach(AtapiCd(shared_drive("ahci-cd", 64 * 2048, read_only=True)), 1)
        pci.host.root_bus.plug(ctrl, AhciGuest.DEVFN)
        pci.host.reset()
        new = Rig([pci.host.root_bus.find(0), ctrl], extra={"pci": pci,
                                                           "guest": AhciGuest(pci)})
        if rig is not None:
            pci.copy_ram_from(rig.extra["pci"])
            new.extra["guest"].lists = dict(rig.extra["guest"].lists)
            new.extra["data"] = rig.extra["data"]
        return new

    def configured(self) -> Rig:
        rig = self.fresh_like()
        guest, ctrl = rig.extra["guest"], rig.devices[1]
        guest.enable()
        for port in (0, 1):
            guest.start_port(port)
        data = rig.extra["data"] = os.urandom(SECTOR)
        buf = guest.ram.alloc(SECTOR, 512)
        guest.space.write(buf, data)
        guest.issue(0, 3, h2d(0xCA, lba=7, count=1), (buf, SECTOR), write=True)
        guest.issue(1, 5, h2d(0xA0), atapi=bytes([0xFF]))  # no such opcode: CHECK COND.
        ctrl.drain()  # what the board's migration_pre_save does: both complete
        assert guest.pr(0, R.PX_CI) == 0 and guest.pr(1, R.PX_CI) == 1 << 5
        return rig

    def probe(self, rig: Rig) -> list:
        guest, ctrl = rig.extra["guest"], rig.devices[1]
        out: list = [guest.r(off) for off in (R.HBA_CAP, R.HBA_GHC, R.HBA_IS, R.HBA_PI)]
        out += [guest.port_regs(p) for p in range(2)]
        # acknowledge, then read back what was written before the save
        guest.pw(0, R.PX_IS, 0xFFFFFFFF)
        guest.w(R.HBA_IS, 0xFFFFFFFF)
        buf = guest.ram.alloc(SECTOR, 512)
        guest.issue(0, 4, h2d(0xC8, lba=7, count=1), (buf, SECTOR))
        ctrl.drain()
        out += [guest.space.read(buf, SECTOR) == rig.extra["data"], guest.port_regs(0)]
        # recover port 1 (stop and start the engine), then REQUEST SENSE answers the
        # failure from before the save
        guest.pw(1, R.PX_CMD, R.CMD_FRE | R.CMD_SUD | R.CMD_POD)
        guest.start_port(1)
        sense = guest.ram.alloc(18)
        guest.issue(1, 0, h2d(0xA0), (sense, 18), atapi=bytes([0x03, 0, 0, 0, 18]))
        ctrl.drain()
        out += [guest.space.read(sense, 18), guest.port_regs(1)]
        return out
