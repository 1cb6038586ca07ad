"""One AHCI port (AHCI 1.3.1 section 3.3 and 5): its registers, and the command
engine that runs the command list the host builds in RAM.

The host writes a slot's bit to PxCI; the port reads the slot's command header, the
Register H2D FIS (and ATAPI packet) of its command table and the PRD table, and hands
the task file to the attached drive (``AtaDisk`` or ``AtapiCd``).  Disk work runs on
the drive's I/O thread; completion posts FISes into the host's received-FIS area:
  * non-queued: (a PIO Setup FIS for PIO data-in) a D2H Register FIS, PxCI bit clears,
    PxIS.DHRS;
  * NCQ (READ/WRITE FPDMA QUEUED, tag = slot): accepted at once (PxCI bit clears, BSY
    never seen), finished with a Set Device Bits FIS naming the tag, PxSACT bit clears,
    PxIS.SDBS;
  * an error: Status ERR and the Error register in PxTFD and in a D2H FIS, PxIS.TFES;
    the slot stays set until the host stops the port (PxCMD.ST 1 -> 0).
Bad guest input (a header, table or buffer outside RAM, a bad PRD) is such an error.
``hba`` provides ``space``, ``lock`` and ``port_event(port)`` (interrupts).
"""

from __future__ import annotations

import struct
import sys
from typing import Protocol

from pemu.hw.ahci import regs as R
from pemu.hw.ahci.ata import (
    ERROR_ABRT,
    STATUS_BSY,
    STATUS_DRQ,
    STATUS_ERR,
    STATUS_READY,
    AtaCommand,
    AtaError,
    TaskFile,
)
from pemu.hw.ahci.prd import prd_views
from pemu.hw.virtio.blk import BlockBackendLike
from pemu.memory.address_space import AddressSpace, GuestMemoryError

NO_DEVICE_STATUS = 0x7F  # what an empty port's task file reads


class AtaDrive(Protocol):
    """What the port needs of ide-hd and ide-cd."""

    signature: int
    reset_status: int
    backend: BlockBackendLike

    def prepare(self, tf: TaskFile, acmd: bytes, bufs: list[memoryview],
                write: bool) -> AtaCommand: ...


class HostBusAdapter(Protocol):
    space: AddressSpace
    lock: object

    def port_event(self, port: AhciPort) -> None: ...


def d2h_fis(status: int, error: int, signature: int = 0, interrupt: bool = True) -> bytes:
    fis = bytearray(20)
    fis[0], fis[1], fis[2], fis[3] = R.FIS_D2H, 0x40 if interrupt else 0, status, error
    if signature:  # count, LBA low/mid/high of a reset: the device's signature
        fis[12], fis[4], fis[5], fis[6] = (signature >> s & 0xFF for s in (0, 8, 16, 24))
    return bytes(fis)


class AhciPort:
    def __init__(self, hba: HostBusAdapter, index: int) -> None:
        self.hba = hba
        self.index = index
        self.drive: AtaDrive | None = None
        self.generation = 0
        self._error_reported = False
        self.reset()

    def attach(self, drive: AtaDrive) -> None:
        self.drive = drive
        self.reset()

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Power-on / HBA reset state of the port registers."""
        self.clb = self.fb = 0
        self.is_ = self.ie = 0
        self.cmd = R.CMD_SUD | R.CMD_POD
        self.sctl = self.serr = self.sact = self.ci = self.sntf = 0
        self.generation += 1  # completions of commands from before are dropped
        self._device_reset()

    def _device_reset(self) -> None:
        drive = self.drive
        self.tfd = drive.reset_status if drive else NO_DEVICE_STATUS
        self.sig = drive.signature if drive else 0xFFFFFFFF
        self.ssts = R.SSTS_PRESENT if drive else 0

    @property
    def pending(self) -> int:
        return self.is_ & self.ie

    # -- registers ------------------------------------------------------------------------------
    def read(self, offset: int) -> int:
        values = {R.PX_CLB: self.clb & 0xFFFFFFFF, R.PX_CLBU: self.clb >> 32,
                  R.PX_FB: self.fb & 0xFFFFFFFF, R.PX_FBU: self.fb >> 32,
                  R.PX_IS: self.is_, R.PX_IE: self.ie, R.PX_CMD: self._cmd_value(),
                  R.PX_TFD: self.tfd, R.PX_SIG: self.sig, R.PX_SSTS: self.ssts,
                  R.PX_SCTL: self.sctl, R.PX_SERR: self.serr, R.PX_SACT: self.sact,
                  R.PX_CI: self.ci, R.PX_SNTF: self.sntf}
        return values.get(offset, 0)

    def _cmd_value(self) -> int:
        value = self.cmd
        if value & R.CMD_ST:
            value |= R.CMD_CR  # the list engine runs exactly while ST is set
        if value & R.CMD_FRE:
            value |= R.CMD_FR
        return value

    def write(self, offset: int, value: int) -> None:
        if offset == R.PX_CLB:
            self.clb = (self.clb & ~0xFFFFFFFF) | (value & ~0x3FF)
        elif offset == R.PX_CLBU:
            self.clb = (self.clb & 0xFFFFFFFF) | value << 32
        elif offset == R.PX_FB:
            self.fb = (self.fb & ~0xFFFFFFFF) | (value & ~0xFF)
        elif offset == R.PX_FBU:
            self.fb = (self.fb & 0xFFFFFFFF) | value << 32
        elif offset == R.PX_IS:
            self.is_ &= ~value
            self.hba.port_event(self)
        elif offset == R.PX_IE:
            self.ie = value
            self.hba.port_event(self)
        elif offset == R.PX_CMD:
            self._write_cmd(value)
        elif offset == R.PX_SCTL:
            self._write_sctl(value)
        elif offset == R.PX_SERR:
            self.serr &= ~value
        elif offset == R.PX_SNTF:
            self.sntf &= ~value
        elif offset == R.PX_SACT and self.cmd & R.CMD_ST:
            self.sact |= value
        elif offset == R.PX_CI and self.cmd & R.CMD_ST:
            new = value & ~self.ci
            self.ci |= new
            for slot in range(R.NUM_SLOTS):
                if new >> slot & 1:
                    self._start(slot)

    def _write_cmd(self, value: int) -> None:
        was_running = self.cmd & R.CMD_ST
        self.cmd = (self.cmd & ~R.CMD_WRITABLE) | (value & R.CMD_WRITABLE)
        if value & R.CMD_CLO:  # command list override: forget a stuck BSY/DRQ
            self.tfd &= ~(STATUS_BSY | STATUS_DRQ)
        if was_running and not self.cmd & R.CMD_ST:
            # stopping the engine drops every outstanding command
            self.ci = self.sact = 0
            self.generation += 1

    def _write_sctl(self, value: int) -> None:
        old_det = self.sctl & R.SCTL_DET_MASK
        self.sctl = value & 0xFFF
        if old_det == R.SCTL_DET_COMRESET and not value & R.SCTL_DET_MASK:
            self._comreset()

    def _comreset(self) -> None:
        """COMRESET done: the device resets and sends its signature in a D2H FIS."""
        self._device_reset()
        if self.drive is not None:
            self._post(R.RX_D2H, d2h_fis(self.tfd, 0, self.sig, interrupt=False))

    # -- commands ---------------------------------------------------------------------------------
    def _start(self, slot: int) -> None:
        space = self.hba.space
        bit = 1 << slot
        try:
            try:
                header = space.read(self.clb + slot * R.HEADER_SIZE, R.HEADER_SIZE)
                dw0, _prdbc, ctba = struct.unpack_from("<IIQ", header)
                ctba &= ~0x7F
                cfis = space.read(ctba + R.CT_CFIS, R.CFIS_SIZE)
                acmd = space.read(ctba + R.CT_ACMD, R.ACMD_SIZE)
            except GuestMemoryError:
                raise AtaError(why="command header or table outside RAM") from None
            if cfis[0] != R.FIS_H2D:
                raise AtaError(why=f"FIS type {cfis[0]:#x} in slot {slot}")
            if not cfis[1] & 0x80:
                self._control(bit, cfis[15])
                return
            if self.drive is None:
                raise AtaError(why="no device on the port")
            tf = TaskFile.from_fis(cfis)
            bufs = prd_views(space, ctba, dw0 >> 16)
            command = self.drive.prepare(tf, acmd, bufs, bool(dw0 & R.HEADER_WRITE))
        except AtaError as e:
            self._fail(bit, e)
            return
        if command.ncq:  # accepted: BSY clears at once, the slot is free for the host
            self.ci &= ~bit
            self.tfd = STATUS_READY
            self._post(R.RX_D2H, d2h_fis(STATUS_READY, 0, interrupt=False))
        self._run(slot, command)

    def _control(self, bit: int, control: int) -> None:
        """A control FIS: software reset.  SRST set: the device holds in reset; SRST
        cleared: it comes out with its signature.  Either way the slot is done."""
        self.ci &= ~bit
        if not control & 0x04:
            self._comreset()

    def _run(self, slot: int, command: AtaCommand) -> None:
        generation = self.generation
        submit = getattr(self.drive.backend, "submit", None) if self.drive else None
        if command.blocking and callable(submit):
            def done(written: int | None, exc: BaseException | None) -> None:
                with self.hba.lock:  # type: ignore[attr-defined]
                    if generation == self.generation:
                        self._finish(slot, command, written or 0, exc)
            submit(command.run, done)
            return
        try:
            written, exc = command.run(), None
        except Exception as e:  # noqa: BLE001 - handed to _finish as the device's error
            written, exc = 0, e
        self._finish(slot, command, written, exc)

    def _finish(self, slot: int, command: AtaCommand, written: int,
                exc: BaseException | None) -> None:
        bit = 1 << slot
        if exc is not None:
            if not isinstance(exc, AtaError):
                self._report(exc)
                exc = AtaError(ERROR_ABRT, str(exc))
            self._fail(bit, exc)
            return
        if command.ncq:
            self.sact &= ~bit
            sdb = struct.pack("<BBBBI", R.FIS_SDB, 0x40, command.status & 0x77, 0, bit)
            self._post(R.RX_SDB, sdb)
            self.is_ |= R.IS_SDBS
        else:
            try:  # PRDBC: the bytes transferred
                self.hba.space.write(self.clb + slot * R.HEADER_SIZE + 4,
                                     struct.pack("<I", written))
            except GuestMemoryError:
                pass
            self.ci &= ~bit
            self.tfd = command.status
            if command.pio_in:
                pio = bytearray(20)
                pio[0], pio[1], pio[2], pio[15] = R.FIS_PIO_SETUP, 0x60, command.status, \
                    command.status
                pio[16:18] = struct.pack("<H", written & 0xFFFF)
                self._post(R.RX_PIO_SETUP, bytes(pio))
                self.is_ |= R.IS_PSS
            self._post(R.RX_D2H, d2h_fis(command.status, 0))
            self.is_ |= R.IS_DHRS
        self.hba.port_event(self)

    def _fail(self, bit: int, error: AtaError) -> None:
        """The device's error status; the slot stays busy until the host recovers."""
        status = STATUS_READY | STATUS_ERR
        self.tfd = error.error << 8 | status
        self._post(R.RX_D2H, d2h_fis(status, error.error))
        self.is_ |= R.IS_TFES
        self.hba.port_event(self)

    def _post(self, offset: int, fis: bytes) -> None:
        """A FIS into the received-FIS area (only while FIS receive is enabled)."""
        if not self.cmd & R.CMD_FRE:
            return
        try:
            self.hba.space.write(self.fb + offset, fis)
        except GuestMemoryError:
            pass  # the host pointed PxFB outside RAM: the FIS is lost, the status stays

    def _report(self, exc: BaseException) -> None:
        if not self._error_reported:
            self._error_reported = True
            print(f"pemu: ahci port {self.index}: {exc}", file=sys.stderr)
