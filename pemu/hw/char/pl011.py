"""The Arm PrimeCell PL011 UART, as on QEMU's Arm virt board (0x09000000, SPI 1);
Linux's amba-pl011 driver calls it ttyAMA0.

  0x000 DR     data; a read also returns the byte's errors in bits 8-11
  0x004 RSR    receive errors (read) / ECR (write clears)
  0x018 FR     flags: RXFE, TXFF, RXFF, TXFE, BUSY
  0x020 ILPR   0x024 IBRD   0x028 FBRD   0x02C LCR_H (FEN: FIFOs on)   0x030 CR (LBE)
  0x034 IFLS   0x038 IMSC   0x03C RIS    0x040 MIS   0x044 ICR   0x048 DMACR
  0xFE0..0xFFC PrimeCell peripheral and cell IDs (what the AMBA bus matches)

Transmission is immediate: the byte goes to the chardev as DR is written, so the
transmit FIFO is always empty and TXFE set.  The transmit interrupt (TXRIS) is raised
each time a written byte leaves (the FIFO has fallen to its trigger level) and cleared
through ICR; this is also what answers Linux's start-up "TX IRQ kick" (a byte written
in loopback mode to make TXRIS assert).  Bytes are sent whether or not UARTEN/TXE are
set, as QEMU does, so an early console that finds the UART unconfigured still prints.

Reception: a 16-entry FIFO (1 entry with LCR_H.FEN clear).  As in QEMU, the receive
interrupt (RXRIS) asserts as soon as a byte is there rather than at the IFLS level, so
no receive-timeout interrupt is ever needed; it drops when DR reads empty the FIFO
below that level.  In loopback (CR.LBE) transmitted bytes come back into the FIFO and
host input waits.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping

from pemu.chardev.base import Chardev
from pemu.hw.core import Device, IRQLine, VMState, VMStateField, VMStateInvalid

DR = 0x000
RSR = 0x004
FR = 0x018
ILPR = 0x020
IBRD = 0x024
FBRD = 0x028
LCR_H = 0x02C
CR = 0x030
IFLS = 0x034
IMSC = 0x038
RIS = 0x03C
MIS = 0x040
ICR = 0x044
DMACR = 0x048
ID_BASE = 0xFE0
REGION_SIZE = 0x1000

# FR bits
FR_BUSY = 1 << 3
FR_RXFE = 1 << 4
FR_TXFF = 1 << 5
FR_RXFF = 1 << 6
FR_TXFE = 1 << 7

# DR error bits of a received byte, and RSR's copy of them (shifted down by 8)
DR_FE = 1 << 8
DR_PE = 1 << 9
DR_BE = 1 << 10
DR_OE = 1 << 11

LCR_H_FEN = 1 << 4
CR_LBE = 1 << 7
CR_RESET = 0x300  # TXE | RXE

# Interrupt bits (RIS, MIS, IMSC, ICR)
INT_RX = 1 << 4
INT_TX = 1 << 5
INT_RT = 1 << 6
INT_BE = 1 << 9
INT_OE = 1 << 10
INT_ALL = 0x7FF

FIFO_DEPTH = 16
IFLS_RESET = 0x12  # both trigger levels at half
# PeriphID0-3 (part 0x011, designer Arm 0x41, revision r1p5), CellID0-3.
PRIMECELL_IDS = (0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1)


class Pl011(Device):
    """``Pl011(chardev)``: connect ``irq`` to the GIC, map ``REGION_SIZE`` bytes with
    ``map(space, base)``.  ``chardev`` may be None (output is dropped)."""

    type_name = "pl011"
    # The RX FIFO holds 11-bit entries (byte + error bits): two little-endian bytes each.
    vmstate = VMState("pl011", 1, (
        VMStateField("lcr_h", "u8"), VMStateField("cr", "u16"), VMStateField("dmacr", "u8"),
        VMStateField("imsc", "u16", max=INT_ALL), VMStateField("ris", "u16", max=INT_ALL),
        VMStateField("ilpr", "u8"), VMStateField("ibrd", "u16"),
        VMStateField("fbrd", "u8", max=0x3F), VMStateField("ifls", "u8", max=0x3F),
        VMStateField("rsr", "u8", max=0xF),
        VMStateField("rx_fifo_bytes", "bytes", max=2 * FIFO_DEPTH)))

    def __init__(self, chardev: Chardev | None, id: str | None = None) -> None:
        super().__init__(id)
        self.chardev = chardev
        self.irq = IRQLine(name="pl011")
        self.lock = threading.RLock()
        self.rx_fifo: deque[int] = deque()
        self.reset()
        if chardev is not None:
            chardev.set_receiver(self.receive, self.can_receive)
            if hasattr(chardev, "on_break"):
                chardev.on_break = self.send_break  # Ctrl-A b on a mux (magic SysRq)

    def map(self, space, base: int) -> None:  # noqa: ANN001 - an AddressSpace
        space.add_mmio("pl011", base, REGION_SIZE, self)

    def reset(self) -> None:
        with self.lock:
            self.lcr_h = 0
            self.cr = CR_RESET
            self.dmacr = 0
            self.imsc = 0
            self.ris = 0
            self.ilpr = 0
            self.ibrd = 0
            self.fbrd = 0
            self.ifls = IFLS_RESET
            self.rsr = 0
            self.rx_fifo.clear()
            self._update_irq()

    # -- migration ---------------------------------------------------------------------
    @property
    def rx_fifo_bytes(self) -> bytes:
        return b"".join(v.to_bytes(2, "little") for v in self.rx_fifo)

    @rx_fifo_bytes.setter
    def rx_fifo_bytes(self, value: bytes) -> None:
        self.rx_fifo = deque(int.from_bytes(value[i:i + 2], "little")
                             for i in range(0, len(value), 2))

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        data = state.get("rx_fifo_bytes", b"")
        assert isinstance(data, bytes)
        depth = FIFO_DEPTH if int(state.get("lcr_h", 0)) & LCR_H_FEN else 1  # type: ignore[call-overload]
        if len(data) % 2 or len(data) // 2 > depth:
            raise VMStateInvalid("rx_fifo_bytes", f"{len(data)} bytes do not fit a FIFO of "
                                                  f"{depth} entries")

    def vmstate_post_load(self) -> None:
        self._update_irq()

    # -- state helpers -------------------------------------------------------------------
    @property
    def fifo_depth(self) -> int:
        return FIFO_DEPTH if self.lcr_h & LCR_H_FEN else 1

    def _update_irq(self) -> None:
        self.irq.set_level(bool(self.ris & self.imsc))

    def _flags(self) -> int:
        flags = FR_TXFE
        if not self.rx_fifo:
            flags |= FR_RXFE
        if len(self.rx_fifo) >= self.fifo_depth:
            flags |= FR_RXFF
        return flags

    # -- receive path (I/O thread) ---------------------------------------------------
    def can_receive(self) -> int:
        with self.lock:
            if self.cr & CR_LBE:
                return 0  # in loopback the receive line is not connected to the outside
            return max(0, self.fifo_depth - len(self.rx_fifo))

    def receive(self, data: bytes) -> None:
        with self.lock:
            for b in data:
                self._push_rx(b)
            self._update_irq()

    def send_break(self) -> None:
        """A break on the line: a NUL entry with BE, and the break interrupt."""
        with self.lock:
            self._push_rx(DR_BE)
            self.ris |= INT_BE
            self._update_irq()

    def _push_rx(self, entry: int) -> None:
        if len(self.rx_fifo) >= self.fifo_depth:
            # A full FIFO keeps its contents; the overrun marks the last entry (TRM).
            self.rx_fifo[-1] |= DR_OE
            self.ris |= INT_OE
            return
        self.rx_fifo.append(entry)
        self.ris |= INT_RX

    # -- registers ---------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        took = False
        with self.lock:
            if offset == DR:
                value = self.rx_fifo.popleft() if self.rx_fifo else 0
                self.rsr = value >> 8 & 0xF
                if not self.rx_fifo:
                    self.ris &= ~(INT_RX | INT_RT)
                took = True
                self._update_irq()
            elif offset == RSR:
                value = self.rsr
            elif offset == FR:
                value = self._flags()
            elif offset >= ID_BASE:
                index = (offset - ID_BASE) >> 2
                value = PRIMECELL_IDS[index] if index < len(PRIMECELL_IDS) else 0
            else:
                value = {ILPR: self.ilpr, IBRD: self.ibrd, FBRD: self.fbrd,
                         LCR_H: self.lcr_h, CR: self.cr, IFLS: self.ifls, IMSC: self.imsc,
                         RIS: self.ris, MIS: self.ris & self.imsc,
                         DMACR: self.dmacr}.get(offset, 0)
        if took and self.chardev is not None:
            self.chardev.accept_input()
        return value

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        room = False
        with self.lock:
            if offset == DR:
                self._transmit(value & 0xFF)
            elif offset == RSR:
                self.rsr = 0  # ECR: any write clears the errors
            elif offset == ILPR:
                self.ilpr = value & 0xFF
            elif offset == IBRD:
                self.ibrd = value & 0xFFFF
            elif offset == FBRD:
                self.fbrd = value & 0x3F
            elif offset == LCR_H:
                if (value ^ self.lcr_h) & LCR_H_FEN:
                    # Switching the FIFOs on or off empties them (what QEMU and the
                    # TRM's "flush" on FEN changes amount to).
                    self.rx_fifo.clear()
                    self.ris &= ~(INT_RX | INT_RT)
                    room = True
                self.lcr_h = value & 0xFF
            elif offset == CR:
                left_loopback = self.cr & CR_LBE and not value & CR_LBE
                self.cr = value & 0xFFFF
                room = bool(left_loopback)
            elif offset == IFLS:
                self.ifls = value & 0x3F
            elif offset == IMSC:
                self.imsc = value & INT_ALL
            elif offset == ICR:
                self.ris &= ~value
            elif offset == DMACR:
                self.dmacr = value & 0x7
            self._update_irq()
        if room and self.chardev is not None:
            self.chardev.accept_input()

    def _transmit(self, byte: int) -> None:
        if self.cr & CR_LBE:
            self._push_rx(byte)
        elif self.chardev is not None:
            self.chardev.write(bytes((byte,)))
        self.ris |= INT_TX  # the byte left: the transmit FIFO is at its trigger level
