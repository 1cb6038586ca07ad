"""The virtio-mmio transport and split virtqueues, driven like a guest kernel would."""

from __future__ import annotations

import struct

import pytest
from virtio_driver import EVENT_IDX, INDIRECT, MODERN, Driver, make_machine

from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.device import (
    STATUS_DEVICE_NEEDS_RESET,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    VIRTIO_ID_RNG,
)
from pemu.hw.virtio.rng import VirtioRng
from pemu.hw.virtio.virtqueue import (
    VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)
from pemu.migration import load_device, save_device


@pytest.fixture
def rng():
    space, transport, irq = make_machine(VirtioRng())
    return Driver(space), transport, irq


def test_identity_registers(rng):
    drv, _, _ = rng
    assert drv.r32(r.MAGIC_VALUE) == 0x74726976
    assert drv.r32(r.VERSION) == 2
    assert drv.r32(r.DEVICE_ID) == VIRTIO_ID_RNG
    assert drv.r32(r.VENDOR_ID) == 0x554D4551
    assert drv.r32(r.SHM_LEN_LOW) == 0xFFFFFFFF  # no shared memory region


def test_empty_slot_reads_device_id_zero():
    space, _, _ = make_machine(None)
    drv = Driver(space)
    assert drv.r32(r.MAGIC_VALUE) == 0x74726976
    assert drv.r32(r.DEVICE_ID) == 0
    drv.w32(r.QUEUE_NOTIFY, 0)  # harmless


def test_feature_negotiation_requires_version_1(rng):
    drv, _, _ = rng
    offered = drv.device_features()
    assert offered & MODERN and offered & INDIRECT and offered & EVENT_IDX
    drv.negotiate(want=INDIRECT)  # a legacy driver without VERSION_1
    assert not drv.r32(r.STATUS) & STATUS_FEATURES_OK
    drv.negotiate(want=MODERN | (1 << 50))  # a feature never offered
    assert not drv.r32(r.STATUS) & STATUS_FEATURES_OK
    drv.negotiate(want=MODERN)
    assert drv.r32(r.STATUS) & STATUS_FEATURES_OK


def test_queue_registers_and_reset(rng):
    drv, transport, _ = rng
    drv.negotiate()
    drv.w32(r.QUEUE_SEL, 0)
    assert drv.r32(r.QUEUE_NUM_MAX) == 8
    q = drv.setup_queue(0, 4)
    assert drv.r32(r.QUEUE_READY) == 1
    assert drv.r32(r.QUEUE_DESC_LOW) == q.desc & 0xFFFFFFFF
    drv.w32(r.QUEUE_SEL, 5)
    assert drv.r32(r.QUEUE_NUM_MAX) == 0  # no such queue
    drv.w32(r.STATUS, 0)
    assert drv.r32(r.STATUS) == 0
    drv.w32(r.QUEUE_SEL, 0)
    assert drv.r32(r.QUEUE_READY) == 0 and drv.r32(r.QUEUE_DESC_LOW) == 0


def test_registers_need_32bit_access(rng):
    drv, _, _ = rng
    assert drv.space.load(drv.base + r.MAGIC_VALUE, 2) == 0
    assert drv.space.load(drv.base + r.MAGIC_VALUE, 1) == 0


def test_rng_request_and_interrupt_ack(rng):
    drv, _, irq = rng
    (q,) = drv.bring_up(1)
    buf = drv.ram.alloc(64)
    q.add([(buf, 64, True)])
    q.kick()
    assert q.get_used() == [(0, 64)]
    assert drv.space.read(buf, 64) != bytes(64)
    assert irq.level
    assert drv.ack_interrupts() == r.INT_USED_BUFFER
    assert not irq.level


def test_indirect_descriptors(rng):
    drv, _, _ = rng
    (q,) = drv.bring_up(1)
    a, b = drv.ram.alloc(8), drv.ram.alloc(24)
    head = q.add([(a, 8, True), (b, 24, True)], indirect=True)
    q.kick()
    assert q.get_used() == [(head, 32)]
    assert drv.space.read(a, 8) != bytes(8) and drv.space.read(b, 24) != bytes(24)


def test_no_interrupt_flag_suppresses_irq(rng):
    drv, _, irq = rng
    (q,) = drv.bring_up(1, want=MODERN)
    q.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    q.add([(drv.ram.alloc(4), 4, True)])
    q.kick()
    assert len(q.get_used()) == 1
    assert not irq.level


def test_event_idx_interrupts_only_when_used_event_passed(rng):
    drv, _, irq = rng
    (q,) = drv.bring_up(1, want=MODERN | EVENT_IDX)
    q.add([(drv.ram.alloc(4), 4, True)])
    q.kick()
    assert irq.level  # the first completion after setup always interrupts
    drv.ack_interrupts()
    q.set_used_event(3)  # "interrupt me when the used idx moves past 3"
    for expected_irq in (False, False, True):
        q.add([(drv.ram.alloc(4), 4, True)])
        q.kick()
        assert irq.level == expected_irq
    # The device publishes avail_event so the driver knows when to kick.
    avail_event = struct.unpack("<H", drv.space.read(q.used + 4 + 8 * q.num, 2))[0]
    assert avail_event == 4


def _broken(drv, transport, irq):
    assert drv.r32(r.STATUS) & STATUS_DEVICE_NEEDS_RESET
    assert drv.r32(r.INTERRUPT_STATUS) & r.INT_CONFIG_CHANGE
    assert irq.level
    assert transport.error


def _write_raw_desc(drv, q, i, addr, length, flags, nxt):
    q.write_desc(q.desc, i, addr, length, flags, nxt)


@pytest.mark.parametrize("case", ["loop", "outside_ram", "next_out_of_range", "head_out_of_range",
                                  "indirect_in_indirect", "indirect_not_negotiated",
                                  "readable_after_writable", "avail_idx_jump", "too_long"])
def test_malformed_chains_set_needs_reset(rng, case):
    drv, transport, irq = rng
    want = MODERN | (0 if case == "indirect_not_negotiated" else INDIRECT)
    (q,) = drv.bring_up(1, want=want, num=8)
    buf = drv.ram.alloc(16)
    W, N = VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_NEXT
    if case == "loop":
        _write_raw_desc(drv, q, 0, buf, 4, W | N, 1)
        _write_raw_desc(drv, q, 1, buf, 4, W | N, 0)
        q.publish(0)
    elif case == "outside_ram":
        _write_raw_desc(drv, q, 0, 0x1000, 4096, W, 0)
        q.publish(0)
    elif case == "next_out_of_range":
        _write_raw_desc(drv, q, 0, buf, 4, W | N, 99)
        q.publish(0)
    elif case == "head_out_of_range":
        q.publish(200)
    elif case in ("indirect_in_indirect", "indirect_not_negotiated"):
        inner = drv.ram.alloc(16)
        q.write_desc(inner, 0, buf, 16, VIRTQ_DESC_F_INDIRECT, 0)
        _write_raw_desc(drv, q, 0, inner, 16, VIRTQ_DESC_F_INDIRECT, 0)
        q.publish(0)
    elif case == "readable_after_writable":
        _write_raw_desc(drv, q, 0, buf, 4, W | N, 1)
        _write_raw_desc(drv, q, 1, buf, 4, 0, 0)
        q.publish(0)
    elif case == "avail_idx_jump":
        drv.space.write(q.avail + 2, struct.pack("<H", 100))
    elif case == "too_long":
        table = drv.ram.alloc(16 * 1025)
        for i in range(1025):
            q.write_desc(table, i, buf, 1, W | N, i + 1)
        _write_raw_desc(drv, q, 0, table, 16 * 1025, VIRTQ_DESC_F_INDIRECT, 0)
        q.publish(0)
    q.kick()  # must not raise
    _broken(drv, transport, irq)
    # Further kicks are ignored until reset; a reset brings the device back.
    q.kick()
    drv.w32(r.STATUS, 0)
    assert drv.r32(r.STATUS) == 0 and not transport.error
    (q2,) = drv.bring_up(1)
    q2.add([(drv.ram.alloc(4), 4, True)])
    q2.kick()
    assert len(q2.get_used()) == 1
    assert drv.r32(r.STATUS) & STATUS_DRIVER_OK


def test_ring_outside_ram_refuses_queue_ready(rng):
    drv, transport, _ = rng
    drv.negotiate()
    drv.w32(r.QUEUE_SEL, 0)
    drv.w32(r.QUEUE_NUM, 8)
    drv.w32(r.QUEUE_DESC_LOW, 0x1000)
    drv.w32(r.QUEUE_READY, 1)
    assert drv.r32(r.QUEUE_READY) == 0
    assert drv.r32(r.STATUS) & STATUS_DEVICE_NEEDS_RESET


def test_notify_queue_from_another_thread(rng):
    import threading

    drv, transport, _ = rng
    (q,) = drv.bring_up(1)
    q.add([(drv.ram.alloc(8), 8, True)])
    # An ioeventfd handler would call this instead of the register write.
    t = threading.Thread(target=transport.notify_queue, args=(0,))
    t.start()
    t.join()
    assert len(q.get_used()) == 1
    q.add([(drv.ram.alloc(8), 8, True)])
    transport.notify_queue(None)  # eventfd without datamatch: poll all queues
    assert len(q.get_used()) == 1


def test_migration_state_round_trip(rng):
    drv, transport, _ = rng
    (q,) = drv.bring_up(1)
    q.add([(drv.ram.alloc(8), 8, True)])
    q.kick()
    assert q.get_used() == [(0, 8)]
    state = save_device(transport)
    space2, t2, _ = make_machine(VirtioRng())
    # Same RAM layout: copy guest RAM over as migration would.
    space2.write(0x80000000, drv.space.read(0x80000000, 1 << 20))
    load_device(t2, state)
    drv2 = Driver(space2)
    drv2.ram.next = drv.ram.next
    assert drv2.r32(r.STATUS) == drv.r32(r.STATUS)
    q.drv = drv2
    q.add([(drv2.ram.alloc(8), 8, True)])
    q.kick()
    assert q.get_used() == [(1, 8)]
