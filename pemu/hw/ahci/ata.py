"""ATA commands as an AHCI port hands them over: the task file of a Register H2D FIS,
and what the device makes of it (``AtaCommand``).  ``AtaDisk`` is ``ide-hd``: the ATA
command set Linux's libata sends to a SATA disk, on a block backend.

A command's ``run()`` does the work and returns the bytes transferred; it raises
``AtaError`` for the device's error status (ERR in Status, the Error register).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pemu.hw.ahci import identify
from pemu.hw.ahci.regs import SIG_ATA
from pemu.hw.scsi.buffers import clip, gather, scatter, total
from pemu.hw.virtio.blk import BlockBackendLike

SECTOR = 512
STATUS_ERR = 0x01
STATUS_DRQ = 0x08
STATUS_DRDY = 0x40
STATUS_BSY = 0x80
STATUS_READY = STATUS_DRDY | 0x10  # DRDY and DSC (seek complete), as disks report
ERROR_ABRT = 0x04
ERROR_IDNF = 0x10  # the address is beyond the end of the disk
ERROR_UNC = 0x40  # uncorrectable data

LOG_DIRECTORY_VERSION = 0x0001

CMD_READ_FPDMA, CMD_WRITE_FPDMA = 0x60, 0x61
NCQ_COMMANDS = (CMD_READ_FPDMA, CMD_WRITE_FPDMA)
# opcode -> (48-bit addressing, write)
_READ_WRITE = {0x20: (False, False), 0xC8: (False, False), 0x24: (True, False),
               0x25: (True, False), 0x30: (False, True), 0xCA: (False, True),
               0x34: (True, True), 0x35: (True, True)}
_PIO = {0x20, 0x24, 0x30, 0x34}
# commands that are accepted and have nothing to do on an emulated disk: SET FEATURES,
# STANDBY/IDLE IMMEDIATE, READ VERIFY (EXT), SET MULTIPLE MODE, INITIALIZE DEVICE
# PARAMETERS, RECALIBRATE, DEVICE RESET
NO_DATA_OK = {0xEF, 0xE0, 0xE1, 0x40, 0x42, 0xC6, 0x91, 0x10, 0x08}


class AtaError(Exception):
    def __init__(self, error: int = ERROR_ABRT, why: str = "") -> None:
        super().__init__(why or f"ATA error {error:#x}")
        self.error = error


@dataclass
class TaskFile:
    command: int
    features: int
    count: int
    lba: int
    device: int

    @classmethod
    def from_fis(cls, fis: bytes) -> TaskFile:
        """A Register Host to Device FIS (SATA 10.5.5)."""
        lba = fis[4] | fis[5] << 8 | fis[6] << 16 | fis[8] << 24 | fis[9] << 32 | fis[10] << 40
        return cls(command=fis[2], features=fis[3] | fis[11] << 8,
                   count=fis[12] | fis[13] << 8, lba=lba, device=fis[7])


@dataclass
class AtaCommand:
    run: Callable[[], int]
    blocking: bool = False  # touches the backend: run it on the drive's I/O thread
    ncq: bool = False
    pio_in: bool = False  # PIO data-in: the host reads the status of a PIO Setup FIS
    status: int = STATUS_READY  # the status register once it completes


class AtaDisk:
    """``ide-hd``: LBA48, NCQ (32 tags), FLUSH CACHE, TRIM (DATA SET MANAGEMENT)."""

    signature = SIG_ATA
    is_atapi = False
    reset_status = STATUS_READY
    type_name = "ide-hd"

    def __init__(self, backend: BlockBackendLike, serial: str = "",
                 id: str | None = None) -> None:
        self.backend = backend
        self.id = id
        self.serial = serial or "QM00001"
        self._error_reported = False

    @property
    def blocks(self) -> int:
        return self.backend.size // SECTOR

    def identify_data(self) -> bytes:
        return identify.disk_identify(self.blocks, self.serial, trim=True)

    def prepare(self, tf: TaskFile, acmd: bytes, bufs: list[memoryview],
                write: bool) -> AtaCommand:
        op = tf.command
        if op == 0xEC:  # IDENTIFY DEVICE
            data = self.identify_data()
            return AtaCommand(lambda: scatter(clip(bufs, SECTOR), data), pio_in=True)
        if op in NO_DATA_OK:
            return AtaCommand(lambda: 0)
        if op == 0xE5:  # CHECK POWER MODE: active (the count register says so)
            return AtaCommand(lambda: 0)
        if op in (0xE7, 0xEA):  # FLUSH CACHE (EXT)
            return AtaCommand(lambda: self._io(self.backend.flush, True) or 0, blocking=True)
        if op in _READ_WRITE:
            lba48, is_write = _READ_WRITE[op]
            count = tf.count or (65536 if lba48 else 256)
            lba = tf.lba if lba48 else (tf.lba & 0xFFFFFF) | (tf.device & 0xF) << 24
            cmd = self._transfer(lba, count if lba48 else count & 0xFF or 256, is_write, bufs)
            cmd.pio_in = op in _PIO and not is_write
            return cmd
        if op in NCQ_COMMANDS:
            count = tf.features or 65536
            cmd = self._transfer(tf.lba, count, op == CMD_WRITE_FPDMA, bufs,
                                 fua=bool(tf.device & 0x80))
            cmd.ncq = True
            return cmd
        if op == 0x06 and tf.features & 1:  # DATA SET MANAGEMENT: TRIM
            return self._trim(tf.count or 65536, bufs)
        if op == 0x2F and tf.lba & 0xFFFFFF == 0 and tf.count:  # READ LOG EXT, directory
            # only the General Purpose Log directory, which lists no logs: Linux reads
            # it before it asks for any log, and then asks for none
            directory = LOG_DIRECTORY_VERSION.to_bytes(2, "little").ljust(SECTOR, b"\0")
            return AtaCommand(lambda: scatter(clip(bufs, SECTOR), directory), pio_in=True)
        raise AtaError(why=f"ATA command {op:#x}")

    # -- data ------------------------------------------------------------------------------
    def _io(self, fn, write: bool, *args: object) -> None:  # noqa: ANN001 - backend method
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a failing disk is an ATA error
            if not self._error_reported:  # once: a failing disk must not flood stderr
                self._error_reported = True
                print(f"pemu: ide-hd {self.id or ''}: I/O error: {e}", file=sys.stderr)
            raise AtaError(ERROR_ABRT if write else ERROR_UNC, str(e)) from None

    def _transfer(self, lba: int, count: int, write: bool, bufs: list[memoryview],
                  fua: bool = False) -> AtaCommand:
        if lba + count > self.blocks:
            raise AtaError(ERROR_IDNF | ERROR_ABRT, f"LBA {lba}+{count} beyond the disk")
        length = count * SECTOR
        if total(bufs) < length:
            raise AtaError(why="the PRD table is shorter than the transfer")
        views, offset = clip(bufs, length), lba * SECTOR
        if not write:
            def read() -> int:
                self._io(self.backend.preadv, False, offset, views)
                return length
            return AtaCommand(read, blocking=True)
        if self.backend.read_only:
            raise AtaError(why="write to a read-only drive")

        def write_data() -> int:
            self._io(self.backend.pwritev, True, offset, views)
            if fua:
                self._io(self.backend.flush, True)
            return length
        return AtaCommand(write_data, blocking=True)

    def _trim(self, nblocks: int, bufs: list[memoryview]) -> AtaCommand:
        if self.backend.read_only:
            raise AtaError(why="trim on a read-only drive")
        raw = gather(bufs, nblocks * SECTOR)
        if len(raw) < nblocks * SECTOR:
            raise AtaError(why="the PRD table is shorter than the range list")
        ranges = []
        for (entry,) in struct.iter_unpack("<Q", raw):
            lba, count = entry & 0xFFFFFFFFFFFF, entry >> 48
            if count == 0:
                continue
            if lba + count > self.blocks:
                raise AtaError(ERROR_IDNF | ERROR_ABRT, "trim range beyond the disk")
            ranges.append((lba * SECTOR, count * SECTOR))

        def trim() -> int:
            for offset, length in ranges:
                self._io(self.backend.discard, True, offset, length)
            return len(raw)
        return AtaCommand(trim, blocking=True)
