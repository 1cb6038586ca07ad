"""The NS16550A UART, as on QEMU's RISC-V virt (MMIO, stride 1) and the PC (port I/O).

Registers (index = offset >> regshift):
  0 RBR (read) / THR (write) / DLL when LCR.DLAB   1 IER / DLM when LCR.DLAB
  2 IIR (read) / FCR (write)                         3 LCR
  4 MCR   5 LSR   6 MSR   7 SCR

Transmission is instantaneous (the byte goes to the chardev as THR is written), so THR
empties at once and the THRE interrupt follows every write, as QEMU does.  Reception
goes through a 16-byte FIFO; the frontend only accepts as many bytes as the FIFO has
room for, so host input is never lost to overruns.  Interrupt priorities follow the
datasheet: line status > received data / character timeout > THRE > modem status.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping

from pemu.chardev.base import Chardev
from pemu.hw.core import Device, IRQLine, VMState, VMStateField, VMStateInvalid
from pemu.main_loop import Timer, get_main_loop

# IER bits
IER_RDI = 0x01  # received data available (and character timeout)
IER_THRI = 0x02  # transmitter holding register empty
IER_RLSI = 0x04  # receiver line status
IER_MSI = 0x08  # modem status

# IIR values
IIR_NO_INT = 0x01
IIR_MSI = 0x00
IIR_THRI = 0x02
IIR_RDI = 0x04
IIR_RLSI = 0x06
IIR_CTI = 0x0C
IIR_FIFO_ENABLED = 0xC0

# FCR bits
FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02
FCR_CLEAR_TX = 0x04
FCR_TRIGGER_SHIFT = 6
FCR_STORED = FCR_ENABLE | 0xC8  # what FCR keeps: enable, DMA mode, RX trigger level
RX_TRIGGER_LEVELS = (1, 4, 8, 14)

# LCR / MCR bits
LCR_DLAB = 0x80
MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10

# LSR bits
LSR_DR = 0x01
LSR_OE = 0x02
LSR_PE = 0x04
LSR_FE = 0x08
LSR_BI = 0x10
LSR_THRE = 0x20
LSR_TEMT = 0x40
LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI

# MSR bits
MSR_DCTS = 0x01
MSR_DDSR = 0x02
MSR_TERI = 0x04
MSR_DDCD = 0x08
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
MSR_DELTAS = 0x0F

FIFO_SIZE = 16
# The input clock QEMU's boards advertise (1.8432 MHz * 2); only used to pace timeouts.
DEFAULT_CLOCK_HZ = 3_686_400


class Serial16550(Device):
    """A 16550A behind ``mmio_read``/``mmio_write`` (MMIO and port I/O alike).

    Wire it with ``AddressSpace.add_mmio(name, base, 8 << regshift, uart)`` (the virt
    board maps 0x100 at 0x10000000) and connect ``irq`` to the interrupt controller.
    """

    type_name = "serial16550"
    # ``max`` bounds are the bits the registers keep (IER 4 bits, MCR 5); FCR is checked
    # in vmstate_check.  The RX FIFO's bytes are state: a guest mid-read keeps them.
    vmstate = VMState("serial16550", 1, (
        VMStateField("divisor", "u16"), VMStateField("ier", "u8", max=0x0F),
        VMStateField("lcr", "u8"), VMStateField("mcr", "u8", max=0x1F),
        VMStateField("lsr", "u8"), VMStateField("msr", "u8"), VMStateField("scr", "u8"),
        VMStateField("fcr", "u8"), VMStateField("thr_ipending", "bool"),
        VMStateField("timeout_ipending", "bool"),
        VMStateField("rx_fifo_bytes", "bytes", max=FIFO_SIZE), VMStateField("rbr", "u8")))

    def __init__(self, chardev: Chardev | None, irq: IRQLine, regshift: int = 0,
                 clock_hz: int = DEFAULT_CLOCK_HZ, id: str | None = None) -> None:
        super().__init__(id)
        self.chardev = chardev
        self.irq = irq
        self.regshift = regshift
        self.clock_hz = clock_hz
        self.lock = threading.RLock()
        self.rx_fifo: deque[int] = deque()
        self._timeout_timer: Timer | None = None
        self.reset()
        if chardev is not None:
            chardev.set_receiver(self.receive, self.can_receive)
            if hasattr(chardev, "on_break"):
                chardev.on_break = self.send_break  # Ctrl-A b on a mux (magic SysRq)

    # -- state -------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.divisor = 0x0C  # 9600 baud at 1.8432 MHz, the PC's power-on value
            self.ier = 0
            self.lcr = 0
            self.mcr = MCR_OUT2
            self.lsr = LSR_THRE | LSR_TEMT
            self.msr = MSR_DCD | MSR_DSR | MSR_CTS  # a connected, ready peer
            self.scr = 0
            self.fcr = 0
            self.thr_ipending = False
            self.timeout_ipending = False
            self.rx_fifo.clear()
            self.rbr = 0
            self._cancel_timeout()
            self._update_irq()

    @property
    def rx_fifo_bytes(self) -> bytes:
        return bytes(self.rx_fifo)

    @rx_fifo_bytes.setter
    def rx_fifo_bytes(self, value: bytes) -> None:
        self.rx_fifo = deque(value[:FIFO_SIZE])

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        fcr = state.get("fcr", 0)
        assert isinstance(fcr, int)
        if fcr & ~FCR_STORED or (fcr and not fcr & FCR_ENABLE):
            raise VMStateInvalid("fcr", f"0x{fcr:02x} is not a value FCR can hold")
        if state.get("rx_fifo_bytes") and not fcr & FCR_ENABLE:
            raise VMStateInvalid("rx_fifo_bytes", "data in the FIFO while FIFOs are off")

    def vmstate_post_load(self) -> None:
        # The character-timeout timer is host state: data that sat in the FIFO before
        # the save starts a fresh timeout here.
        self._cancel_timeout()
        if self.rx_fifo and self.fifo_enabled and not self.timeout_ipending:
            self._arm_timeout()
        self._update_irq()

    @property
    def fifo_enabled(self) -> bool:
        return bool(self.fcr & FCR_ENABLE)

    @property
    def rx_trigger(self) -> int:
        return RX_TRIGGER_LEVELS[self.fcr >> FCR_TRIGGER_SHIFT] if self.fifo_enabled else 1

    # -- interrupts ---------------------------------------------------------------
    def _pending_iir(self) -> int:
        if self.ier & IER_RLSI and self.lsr & LSR_ERRORS:
            return IIR_RLSI
        if self.ier & IER_RDI and self.timeout_ipending:
            return IIR_CTI
        if self.ier & IER_RDI and self.lsr & LSR_DR and (
                not self.fifo_enabled or len(self.rx_fifo) >= self.rx_trigger):
            return IIR_RDI
        if self.ier & IER_THRI and self.thr_ipending:
            return IIR_THRI
        if self.ier & IER_MSI and self.msr & MSR_DELTAS:
            return IIR_MSI
        return IIR_NO_INT

    def _update_irq(self) -> None:
        self.irq.set_level(self._pending_iir() != IIR_NO_INT)

    # -- receive path (I/O thread) --------------------------------------------------
    def can_receive(self) -> int:
        with self.lock:
            if self.mcr & MCR_LOOP:
                return 0  # in loopback the line is disconnected from the outside
            return FIFO_SIZE - len(self.rx_fifo) if self.fifo_enabled else int(
                not self.lsr & LSR_DR)

    def receive(self, data: bytes) -> None:
        with self.lock:
            for b in data:
                self._push_rx(b)
            self._update_irq()

    def send_break(self) -> None:
        """The line was held low for a character time: a NUL with LSR.BI set."""
        with self.lock:
            self._push_rx(0)
            self.lsr |= LSR_BI
            self._update_irq()

    def _push_rx(self, byte: int) -> None:
        if not self.fifo_enabled:
            # Without a FIFO, a new character destroys an unread one (datasheet: OE).
            if self.lsr & LSR_DR:
                self.lsr |= LSR_OE
            self.rbr = byte
            self.lsr |= LSR_DR
            return
        if len(self.rx_fifo) >= FIFO_SIZE:
            self.lsr |= LSR_OE  # a full FIFO keeps its contents; the new byte is lost
            return
        self.rx_fifo.append(byte)
        self.lsr |= LSR_DR
        self.timeout_ipending = False
        self._arm_timeout()

    def _char_time(self) -> float:
        # 10 bits per character (start, 8 data, stop) at clock / (16 * divisor) baud.
        baud = self.clock_hz / (16 * max(1, self.divisor))
        return 10.0 / baud

    def _arm_timeout(self) -> None:
        """Character timeout: data sat in the FIFO for 4 character times untouched."""
        self._cancel_timeout()
        self._timeout_timer = get_main_loop().add_timer(4 * self._char_time(), self._timeout)

    def _cancel_timeout(self) -> None:
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None

    def _timeout(self) -> None:
        with self.lock:
            self._timeout_timer = None
            if self.rx_fifo and self.fifo_enabled:
                self.timeout_ipending = True
                self._update_irq()

    # -- transmit path (vCPU thread) ------------------------------------------------
    def _transmit(self, byte: int) -> None:
        if self.mcr & MCR_LOOP:
            self._push_rx(byte)
        elif self.chardev is not None:
            self.chardev.write(bytes((byte,)))
        # The byte left at once: THR and the shift register are empty again.
        self.lsr |= LSR_THRE | LSR_TEMT
        self.thr_ipending = True

    # -- register interface ------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        reg = (offset >> self.regshift) & 7
        accepted_more = False
        with self.lock:
            if reg == 0:
                if self.lcr & LCR_DLAB:
                    return self.divisor & 0xFF
                if not self.fifo_enabled:
                    value = self.rbr  # the holding register keeps its last byte
                    self.lsr &= ~LSR_DR
                else:
                    value = self.rx_fifo.popleft() if self.rx_fifo else 0
                    if not self.rx_fifo:
                        self.lsr &= ~LSR_DR
                        self._cancel_timeout()
                    else:
                        self._arm_timeout()
                self.timeout_ipending = False
                accepted_more = True
                self._update_irq()
            elif reg == 1:
                value = (self.divisor >> 8) if self.lcr & LCR_DLAB else self.ier
            elif reg == 2:
                value = self._pending_iir()
                if value == IIR_THRI:
                    # Reading IIR while it reports THRE acknowledges that interrupt.
                    self.thr_ipending = False
                    self._update_irq()
                if self.fifo_enabled:
                    value |= IIR_FIFO_ENABLED
            elif reg == 3:
                value = self.lcr
            elif reg == 4:
                value = self.mcr
            elif reg == 5:
                value = self.lsr
                if self.lsr & LSR_ERRORS:
                    self.lsr &= ~LSR_ERRORS
                    self._update_irq()
            elif reg == 6:
                value = self._read_msr()
            else:
                value = self.scr
        if accepted_more and self.chardev is not None:
            self.chardev.accept_input()
        return value

    def _read_msr(self) -> int:
        if self.mcr & MCR_LOOP:
            # Loopback wires the modem outputs back to the inputs.
            m = self.mcr
            return ((MSR_CTS if m & MCR_RTS else 0) | (MSR_DSR if m & MCR_DTR else 0)
                    | (MSR_RI if m & MCR_OUT1 else 0) | (MSR_DCD if m & MCR_OUT2 else 0))
        value = self.msr
        if self.msr & MSR_DELTAS:
            self.msr &= ~MSR_DELTAS
            self._update_irq()
        return value

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        reg = (offset >> self.regshift) & 7
        value &= 0xFF
        accepted_more = False
        with self.lock:
            if reg == 0:
                if self.lcr & LCR_DLAB:
                    self.divisor = (self.divisor & 0xFF00) | value
                else:
                    self.thr_ipending = False
                    self._transmit(value)
            elif reg == 1:
                if self.lcr & LCR_DLAB:
                    self.divisor = (self.divisor & 0x00FF) | (value << 8)
                else:
                    changed = (self.ier ^ value) & IER_THRI
                    self.ier = value & 0x0F
                    if changed:
                        # Enabling THRE with an empty THR interrupts at once (Linux's
                        # 8250 driver probes for this); disabling forgets it.
                        self.thr_ipending = bool(self.ier & IER_THRI and self.lsr & LSR_THRE)
            elif reg == 2:
                accepted_more = self._write_fcr(value)
            elif reg == 3:
                self.lcr = value
            elif reg == 4:
                was_loop = self.mcr & MCR_LOOP
                self.mcr = value & 0x1F
                accepted_more = bool(was_loop and not self.mcr & MCR_LOOP)
            elif reg == 5 or reg == 6:
                pass  # LSR and MSR are read-only; writes are ignored as on the chip
            else:
                self.scr = value
            self._update_irq()
        if accepted_more and self.chardev is not None:
            self.chardev.accept_input()

    def _write_fcr(self, value: int) -> bool:
        """Returns True if the RX FIFO gained room."""
        emptied = False
        if (value ^ self.fcr) & FCR_ENABLE:
            # Switching FIFO mode on or off clears both FIFOs (datasheet).
            value |= FCR_CLEAR_RX | FCR_CLEAR_TX
        if value & FCR_CLEAR_RX:
            emptied = bool(self.rx_fifo)
            self.rx_fifo.clear()
            self.lsr &= ~LSR_DR
            self.timeout_ipending = False
            self._cancel_timeout()
        if value & FCR_CLEAR_TX:
            # Transmission never queues, so the FIFO is already empty; clearing it
            # still reports "THR empty" again, as the chip (and QEMU) do.
            self.lsr |= LSR_THRE
            self.thr_ipending = True
        self.fcr = value & FCR_STORED if value & FCR_ENABLE else 0
        return emptied or bool(value & FCR_ENABLE)
