"""The 16550A against QEMU's own: the same register program on both, same answers.

``riscv_probe`` runs a list of UART register reads and writes on QEMU's ``virt`` board
(its UART is QEMU's 16550A).  The same list is replayed on ``Serial16550``; the bytes
the guest transmitted and the values it read must match exactly.  The divisor is set to
its maximum first so that QEMU's character-timeout timer (four character times of
virtual time) cannot fire while the program runs.
"""

from __future__ import annotations

import random

import pytest
from hwtest_util import CaptureChardev
from riscv_probe import READ, WRITE, missing_tools, run_on_qemu

from pemu.hw.char import serial16550 as u
from pemu.hw.core import IRQLine

pytestmark = pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))

W, R = WRITE, READ
UART = 0x10000000


def scripted_ops() -> list[tuple[int, int, int]]:
    ops = [(R, reg, 0) for reg in (1, 2, 3, 4, 5, 6, 7)]  # power-on values
    ops += [(W, 3, 0x83), (W, 0, 0xFF), (W, 1, 0xFF), (R, 0, 0), (R, 1, 0), (W, 3, 0x03),
            (R, 1, 0), (R, 3, 0)]  # divisor latch, then leave DLAB
    ops += [(W, 1, 0x02), (R, 2, 0), (R, 2, 0), (W, 0, ord("A")), (R, 2, 0), (W, 1, 0),
            (R, 2, 0), (W, 1, 0x02), (R, 2, 0), (W, 1, 0)]  # THRE interrupt and its ack
    ops += [(W, 4, 0x1F), (R, 6, 0), (W, 4, 0x10), (R, 6, 0), (W, 4, 0x15), (R, 6, 0),
            (W, 0, 0x42), (R, 5, 0), (W, 0, 0x43), (R, 5, 0), (R, 5, 0), (R, 0, 0), (R, 0, 0),
            (R, 5, 0)]  # loopback without FIFO: modem lines, overrun, holding register
    ops += [(W, 1, 0x0F), (W, 0, 1), (W, 0, 2), (R, 2, 0), (R, 5, 0), (R, 2, 0), (R, 0, 0),
            (R, 2, 0), (R, 2, 0), (W, 1, 0)]  # interrupt priorities
    ops += [(W, 2, 0x01), (R, 2, 0), (W, 1, 0x05)]  # FIFO on, trigger 1
    ops += [(W, 0, b) for b in range(0x60, 0x74)]  # 20 bytes into a 16-byte FIFO
    ops += [(R, 5, 0), (R, 2, 0), (R, 5, 0)] + [(R, 0, 0) for _ in range(17)] + [(R, 5, 0)]
    ops += [(W, 2, 0xC1), (W, 0, 1), (W, 0, 2), (R, 2, 0)]  # trigger 14, 2 bytes: no RDI
    ops += [(W, 0, b) for b in range(12)] + [(R, 2, 0), (R, 0, 0), (R, 2, 0)]
    ops += [(W, 2, 0xC3), (R, 5, 0), (W, 1, 0x02), (R, 2, 0), (W, 2, 0xC5), (R, 2, 0)]
    ops += [(W, 2, 0x00), (R, 2, 0), (W, 1, 0), (W, 4, 0x08)]
    return ops


def random_ops(seed: int, count: int) -> list[tuple[int, int, int]]:
    rnd = random.Random(seed)
    ops = []
    for _ in range(count):
        reg = rnd.randrange(8)
        if rnd.random() < 0.5:
            ops.append((R, reg, 0))
        else:
            value = rnd.randrange(256)
            if reg == 3:
                value &= 0x7F  # keep DLAB off: the huge divisor must stay
            ops.append((W, reg, value))
    return ops


def run_on_model(ops) -> tuple[bytes, list[int]]:
    chardev = CaptureChardev()
    uart = u.Serial16550(chardev, IRQLine())
    reads = []
    for kind, reg, value in ops:
        if kind == W:
            uart.mmio_write(reg, 1, value)
        else:
            reads.append(uart.mmio_read(reg, 1))
    return bytes(chardev.output), reads


def test_register_behaviour_matches_qemu(tmp_path):
    ops = scripted_ops() + random_ops(seed=16550, count=400)
    ours_tx, ours = run_on_model(ops)
    theirs_tx, theirs = run_on_qemu([(k, 1, UART + reg, v) for k, reg, v in ops], tmp_path)
    assert ours_tx == theirs_tx, "transmitted bytes"
    reads = [op for op in ops if op[0] == R]
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"read #{i} of register {reads[i][1]}: pemu 0x{a:02x}, QEMU 0x{b:02x}"
