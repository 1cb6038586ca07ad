"""Random guest behaviour must never raise out of a device or break its invariants."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtio_driver import RAM_BASE, Driver, make_machine

from pemu.block import open_drive
from pemu.hw.char import serial16550 as u
from pemu.hw.core import IRQLine
from pemu.hw.intc.plic import PLIC
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.blk import VirtioBlk
from pemu.hw.virtio.device import STATUS_DEVICE_NEEDS_RESET

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# Addresses around and inside the first 64 KiB of RAM, to hit every edge.
addr = st.one_of(st.integers(RAM_BASE - 0x100, RAM_BASE + 0x10000),
                 st.integers(0, 2**64 - 1))
desc = st.tuples(addr, st.integers(0, 0x3000) | st.integers(0, 2**32 - 1),
                 st.integers(0, 7), st.integers(0, 20))


@FUZZ
@given(descs=st.lists(desc, min_size=1, max_size=16),
       heads=st.lists(st.integers(0, 20), min_size=1, max_size=8),
       header=st.tuples(st.integers(0, 15), st.integers(0, 2**64 - 1)),
       indirect_table=st.lists(desc, max_size=6))
def test_virtio_blk_survives_random_rings(tmp_path_factory, descs, heads, header,
                                          indirect_table):
    path = tmp_path_factory.mktemp("fuzz") / "disk"
    path.write_bytes(b"\x11" * 65536)
    backend = open_drive({"file": str(path), "format": "raw"})
    try:
        space, transport, irq = make_machine(VirtioBlk(backend))
        drv = Driver(space)
        (q,) = drv.bring_up(1, num=16)
        # Plant a plausible request header and an indirect table at fixed places.
        space.write(RAM_BASE + 0x8000, struct.pack("<IIQ", header[0], 0, header[1] % (2**64)))
        for i, (a, n, f, nx) in enumerate(indirect_table):
            space.write(RAM_BASE + 0x9000 + 16 * i, struct.pack("<QIHH", a % 2**64, n, f, nx))
        for i, (a, n, f, nx) in enumerate(descs):
            q.write_desc(q.desc, i, a % 2**64, n, f, nx)
        for h in heads:
            q.publish(h)
        q.kick()
        status = drv.r32(r.STATUS)
        used = q.get_used()
        assert len(used) <= len(heads)
        if not status & STATUS_DEVICE_NEEDS_RESET:
            assert len(used) == len(heads)  # every well-formed request completed
        drv.w32(r.STATUS, 0)  # and a reset always brings the device back
        assert drv.r32(r.STATUS) == 0
    finally:
        backend.close()
    assert path.stat().st_size == 65536  # writes stay inside the disk


ops = st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 255)), max_size=60)


@FUZZ
@given(ops=ops, feed=st.binary(max_size=40))
def test_uart_irq_always_matches_iir(ops, feed):
    from hwtest_util import CaptureChardev

    chardev = CaptureChardev()
    irq = IRQLine()
    uart = u.Serial16550(chardev, irq)
    chardev.feed(feed)
    for is_write, reg, value in ops:
        if is_write:
            uart.mmio_write(reg, 1, value)
        else:
            assert 0 <= uart.mmio_read(reg, 1) <= 0xFF
        with uart.lock:
            assert irq.level == (uart._pending_iir() != u.IIR_NO_INT)
            assert len(uart.rx_fifo) <= u.FIFO_SIZE


@FUZZ
@given(ops=st.lists(st.tuples(st.sampled_from(["r", "w", "irq"]),
                              st.integers(0, 0x203000 // 4), st.integers(0, 2**32 - 1)),
                    max_size=60))
def test_plic_random_accesses(ops):
    plic = PLIC(num_harts=1)
    for kind, word, value in ops:
        if kind == "r":
            assert 0 <= plic.mmio_read(4 * word, 4) <= 0xFFFFFFFF
        elif kind == "w":
            plic.mmio_write(4 * word, 4, value)
        else:
            plic.set_irq(word % 100, bool(value & 1))
        for ctx, line in enumerate(plic.outputs):
            assert line.level == (plic._best(ctx) != 0)
