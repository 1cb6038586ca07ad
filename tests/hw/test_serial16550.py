"""The 16550A seen through its registers, as the Linux 8250 driver sees it."""

from __future__ import annotations

import pytest
from hwtest_util import wait_until

from pemu.hw.char import serial16550 as u
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

BASE = 0x10000000


def make(capture, irq, regshift=0):
    uart = u.Serial16550(capture, irq, regshift=regshift)
    space = AddressSpace()
    space.add_mmio("uart", BASE, 8 << regshift, uart)

    def rd(reg):
        return space.load(BASE + (reg << regshift), 1)

    def wr(reg, value):
        space.store(BASE + (reg << regshift), 1, value)

    return uart, rd, wr


def test_power_on_registers(capture, irq):
    _, rd, _ = make(capture, irq)
    assert rd(2) == u.IIR_NO_INT
    assert rd(5) == u.LSR_THRE | u.LSR_TEMT
    assert rd(1) == 0
    assert not irq.level


def test_transmit_goes_to_chardev(capture, irq):
    _, rd, wr = make(capture, irq)
    for b in b"hello\n":
        assert rd(5) & u.LSR_THRE
        wr(0, b)
    assert bytes(capture.output) == b"hello\n"


@pytest.mark.parametrize("regshift", [0, 2])
def test_divisor_latch_and_scratch(capture, irq, regshift):
    uart, rd, wr = make(capture, irq, regshift)
    wr(3, u.LCR_DLAB | 0x03)
    wr(0, 0x01)
    wr(1, 0x02)
    assert rd(0) == 0x01 and rd(1) == 0x02
    assert uart.divisor == 0x0201
    wr(3, 0x03)
    wr(1, 0x00)
    assert rd(1) == 0  # IER, not DLM
    assert rd(3) == 0x03
    wr(7, 0x5A)
    assert rd(7) == 0x5A
    assert capture.output == b""  # DLL writes are not data


def test_thre_interrupt_on_enable_and_ack_by_iir_read(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(1, u.IER_THRI)
    assert irq.level
    assert rd(2) == u.IIR_THRI
    assert not irq.level  # reading IIR acknowledged THRE
    assert rd(2) == u.IIR_NO_INT
    wr(0, ord("x"))  # the byte leaves at once; THR empty again -> interrupt
    assert irq.level
    wr(1, 0)
    assert not irq.level


def test_receive_without_fifo(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(1, u.IER_RDI)
    capture.feed(b"ab")
    assert wait_until(lambda: rd(5) & u.LSR_DR)
    assert irq.level
    assert rd(2) == u.IIR_RDI
    assert rd(0) == ord("a")
    # Without a FIFO the UART holds one byte; the chardev keeps the rest until then.
    assert wait_until(lambda: rd(5) & u.LSR_DR)
    assert rd(0) == ord("b")
    assert not rd(5) & u.LSR_DR
    assert not irq.level


def test_fifo_trigger_level_and_no_overrun_on_paste(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(2, u.FCR_ENABLE | u.FCR_CLEAR_RX | u.FCR_CLEAR_TX | (2 << u.FCR_TRIGGER_SHIFT))  # 8
    assert rd(2) & u.IIR_FIFO_ENABLED == u.IIR_FIFO_ENABLED
    wr(1, u.IER_RDI | u.IER_RLSI)
    data = bytes(range(32, 32 + 100))
    capture.feed(data)
    got = bytearray()
    saw_rdi = False
    while len(got) < len(data):
        assert wait_until(lambda: irq.level), "no RX interrupt with data waiting"
        iir = rd(2) & 0x0F
        assert iir in (u.IIR_RDI, u.IIR_CTI)
        saw_rdi |= iir == u.IIR_RDI
        while rd(5) & u.LSR_DR:
            got.append(rd(0))
    assert bytes(got) == data
    assert saw_rdi
    assert not rd(5) & u.LSR_OE


def test_character_timeout_below_trigger(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(2, u.FCR_ENABLE | (3 << u.FCR_TRIGGER_SHIFT))  # trigger 14
    wr(1, u.IER_RDI)
    capture.feed(b"xyz")
    assert wait_until(lambda: irq.level)
    assert rd(2) == u.IIR_CTI | u.IIR_FIFO_ENABLED
    assert bytes(rd(0) for _ in range(3)) == b"xyz"
    assert rd(2) == u.IIR_NO_INT | u.IIR_FIFO_ENABLED
    assert not irq.level


def test_loopback_and_modem_lines(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(4, u.MCR_LOOP | u.MCR_RTS | u.MCR_OUT2)
    assert rd(6) == u.MSR_CTS | u.MSR_DCD
    wr(4, u.MCR_LOOP | u.MCR_DTR | u.MCR_OUT1)
    assert rd(6) == u.MSR_DSR | u.MSR_RI
    wr(0, 0x42)
    assert capture.output == b""  # loopback never reaches the line
    assert rd(5) & u.LSR_DR
    assert rd(0) == 0x42
    wr(4, u.MCR_OUT2)
    assert rd(6) == u.MSR_DCD | u.MSR_DSR | u.MSR_CTS


def test_overrun_reported_as_line_status_interrupt(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(1, u.IER_RLSI)
    wr(4, u.MCR_LOOP)
    wr(0, 1)
    wr(0, 2)  # no FIFO: the second byte overruns the first
    assert irq.level
    assert rd(2) == u.IIR_RLSI
    assert rd(5) & u.LSR_OE
    assert not rd(5) & u.LSR_OE  # reading LSR clears the error
    assert not irq.level
    assert rd(0) == 2  # without a FIFO the newer byte destroyed the unread one


def test_interrupt_priority_rls_over_rdi_over_thre(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(4, u.MCR_LOOP)
    wr(1, u.IER_RDI | u.IER_THRI | u.IER_RLSI)
    wr(0, 1)
    wr(0, 2)
    assert rd(2) == u.IIR_RLSI
    rd(5)
    assert rd(2) == u.IIR_RDI
    rd(0)
    assert rd(2) == u.IIR_THRI


def test_fcr_clear_and_disable(capture, irq):
    _, rd, wr = make(capture, irq)
    wr(2, u.FCR_ENABLE)
    wr(4, u.MCR_LOOP)
    for b in b"abc":
        wr(0, b)
    assert rd(5) & u.LSR_DR
    wr(2, u.FCR_ENABLE | u.FCR_CLEAR_RX)
    assert not rd(5) & u.LSR_DR
    wr(2, 0)
    assert rd(2) & u.IIR_FIFO_ENABLED == 0


def test_reset_and_migration_state(capture, irq):
    uart, rd, wr = make(capture, irq)
    wr(2, u.FCR_ENABLE)
    wr(4, u.MCR_LOOP)
    wr(0, 0x33)
    wr(7, 0x99)
    state = save_device(uart)
    uart.reset()
    assert rd(7) == 0 and not rd(5) & u.LSR_DR
    load_device(uart, state)
    assert rd(7) == 0x99 and rd(0) == 0x33


def test_break_from_mux_is_line_status_interrupt(irq):
    from pemu.chardev.mux import MuxChardev
    from pemu.chardev.simple import NullChardev

    mux = MuxChardev(NullChardev("n"))
    fe = mux.add_frontend("serial0")
    uart = u.Serial16550(fe, irq)
    uart.mmio_write(1, 1, u.IER_RLSI)
    mux._on_input(b"\x01b")  # Ctrl-A b
    assert irq.level
    assert uart.mmio_read(2, 1) == u.IIR_RLSI
    assert uart.mmio_read(5, 1) & (u.LSR_BI | u.LSR_DR) == u.LSR_BI | u.LSR_DR
    assert uart.mmio_read(0, 1) == 0
    assert not irq.level
