"""virtio-console (hvc0) on a chardev, and virtio-rng."""

from __future__ import annotations

from hwtest_util import CaptureChardev, wait_until
from virtio_driver import Driver, make_machine

from pemu.hw.virtio.console import VirtioConsole
from pemu.hw.virtio.rng import MAX_CHUNK, VirtioRng


def console():
    chardev = CaptureChardev()
    dev = VirtioConsole(chardev, cols=132, rows=43)
    space, transport, irq = make_machine(dev)
    drv = Driver(space)
    return chardev, dev, drv, irq


def test_console_config_and_output():
    chardev, _, drv, _ = console()
    rx, tx = drv.bring_up(2)
    assert (drv.config(0, 2), drv.config(2, 2), drv.config(4, 4)) == (132, 43, 1)
    a, b = drv.ram.alloc(6), drv.ram.alloc(7)
    drv.space.write(a, b"hello ")
    drv.space.write(b, b"world\r\n")
    tx.add([(a, 6, False), (b, 7, False)])
    tx.kick()
    assert tx.get_used() == [(0, 0)]
    assert chardev.output == b"hello world\r\n"


def test_console_emergency_write():
    chardev, _, drv, _ = console()
    drv.negotiate()
    drv.space.store(drv.base + 0x100 + 8, 4, ord("!"))
    assert chardev.output == b"!"


def test_console_input_waits_for_receive_buffers():
    chardev, _, drv, irq = console()
    rx, _ = drv.bring_up(2)
    chardev.feed(b"typed before the driver posted buffers")
    bufs = [drv.ram.alloc(16) for _ in range(3)]  # 38 bytes fit in exactly 3
    for addr in bufs:
        rx.add([(addr, 16, True)])
    rx.kick()
    got = bytearray()

    def collect():
        for head, n in rx.get_used():
            got.extend(drv.space.read(bufs[head], n))
        return got == b"typed before the driver posted buffers"

    assert wait_until(collect)
    assert irq.level
    # Input with no buffers left is held, not lost, until more are posted.
    chardev.feed(b"more")
    assert rx.get_used() == []
    head = rx.add([(bufs[0], 16, True)])
    rx.kick()
    assert wait_until(lambda: rx.get_used() == [(head, 4)])
    assert drv.space.read(bufs[0], 4) == b"more"


def test_rng_fills_buffers_with_fresh_entropy():
    space, transport, irq = make_machine(VirtioRng())
    drv = Driver(space)
    (q,) = drv.bring_up(1)
    a, b = drv.ram.alloc(32), drv.ram.alloc(32)
    q.add([(a, 32, True)])
    q.add([(b, 32, True)])
    q.kick()
    assert q.get_used() == [(0, 32), (1, 32)]
    assert drv.space.read(a, 32) != drv.space.read(b, 32)


def test_rng_caps_huge_requests():
    space, transport, irq = make_machine(VirtioRng())
    drv = Driver(space)
    (q,) = drv.bring_up(1)
    big = drv.ram.alloc(MAX_CHUNK * 2)
    q.add([(big, MAX_CHUNK * 2, True)])
    q.kick()
    assert q.get_used() == [(0, MAX_CHUNK)]
