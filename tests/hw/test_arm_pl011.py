"""The PL011 as Linux's amba-pl011 driver drives it, through a chardev."""

from __future__ import annotations

from hwtest_util import wait_until

from pemu.hw.char import pl011 as p
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

BASE = 0x0900_0000


def make(capture):
    uart = p.Pl011(capture)
    space = AddressSpace()
    uart.map(space, BASE)

    def rd(reg):
        return space.load(BASE + reg, 4)

    def wr(reg, value):
        space.store(BASE + reg, 4, value)

    return uart, rd, wr


def test_primecell_ids_and_reset_values(capture):
    _, rd, _ = make(capture)
    ids = [rd(0xFE0 + 4 * i) for i in range(8)]
    periph = ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24
    assert periph & 0x000F_FFFF == 0x0004_1011  # what amba-pl011 matches
    assert ids[4:] == [0x0D, 0xF0, 0x05, 0xB1]
    assert rd(p.FR) == p.FR_TXFE | p.FR_RXFE
    assert rd(p.CR) == 0x300
    assert rd(p.IFLS) == 0x12


def test_transmit_and_tx_interrupt(capture):
    uart, rd, wr = make(capture)
    wr(p.IMSC, p.INT_TX)
    assert not uart.irq.level, "nothing sent yet"
    for b in b"ok\n":
        assert not rd(p.FR) & p.FR_TXFF
        wr(p.DR, b)
    assert bytes(capture.output) == b"ok\n"
    assert uart.irq.level and rd(p.MIS) == p.INT_TX
    wr(p.ICR, p.INT_TX)
    assert not uart.irq.level
    wr(p.IMSC, 0)
    wr(p.DR, ord("x"))
    assert rd(p.RIS) & p.INT_TX and not uart.irq.level, "masked"


def test_tx_irq_kick_in_loopback(capture):
    """The driver's start-up kick: loopback on, one byte out, TXRIS asserts, and the
    byte comes back into the receive FIFO instead of reaching the host."""
    uart, rd, wr = make(capture)
    wr(p.CR, 0x301 | p.CR_LBE)
    wr(p.DR, 0)
    assert rd(p.RIS) & p.INT_TX
    assert capture.output == b""
    assert not rd(p.FR) & p.FR_RXFE
    assert rd(p.DR) == 0
    wr(p.CR, 0x301)
    wr(p.IMSC, p.INT_TX)
    assert uart.irq.level


def test_receive_with_fifo_and_interrupt(capture):
    uart, rd, wr = make(capture)
    wr(p.LCR_H, p.LCR_H_FEN | 0x60)
    wr(p.IMSC, p.INT_RX | p.INT_RT)
    capture.feed(b"hello, world: more than sixteen bytes")
    assert wait_until(lambda: rd(p.FR) & p.FR_RXFF)
    assert uart.irq.level
    got = bytearray()
    for _ in range(200):
        if rd(p.FR) & p.FR_RXFE:
            if len(got) == 37:
                break
            wait_until(lambda: not rd(p.FR) & p.FR_RXFE, timeout=1.0)
            continue
        got.append(rd(p.DR) & 0xFF)
    assert bytes(got) == b"hello, world: more than sixteen bytes"
    assert not uart.irq.level, "the FIFO is empty"


def test_receive_without_fifo_takes_one_byte_at_a_time(capture):
    uart, rd, wr = make(capture)
    wr(p.IMSC, p.INT_RX)
    capture.feed(b"ab")
    assert wait_until(lambda: not rd(p.FR) & p.FR_RXFE)
    assert rd(p.FR) & p.FR_RXFF, "depth 1 without FEN"
    assert uart.irq.level
    assert rd(p.DR) == ord("a")
    assert wait_until(lambda: not rd(p.FR) & p.FR_RXFE)
    assert rd(p.DR) == ord("b")
    assert not uart.irq.level


def test_break_marks_the_entry(capture):
    uart, rd, wr = make(capture)
    wr(p.IMSC, p.INT_BE)
    uart.send_break()
    assert uart.irq.level
    assert rd(p.DR) == p.DR_BE
    assert rd(p.RSR) == p.DR_BE >> 8
    wr(p.RSR, 0)
    assert rd(p.RSR) == 0


def test_migration_keeps_the_fifo(capture):
    uart, rd, wr = make(capture)
    wr(p.LCR_H, p.LCR_H_FEN)
    wr(p.IMSC, p.INT_RX)
    uart.receive(b"xyz")
    state = save_device(uart)
    other, rd2, _ = make(None)
    load_device(other, state)
    assert other.irq.level
    assert bytes(rd2(p.DR) for _ in range(3)) == b"xyz"
    assert not other.irq.level
