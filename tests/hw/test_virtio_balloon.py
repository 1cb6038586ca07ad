"""virtio-balloon driven from Python: target and actual, inflate (pages really leave
the host mapping), free page reporting, statistics, and the monitor's view of it."""

from __future__ import annotations

import ctypes
import mmap
import struct

import pytest
from hwtest_util import wait_until
from virtio_driver import RAM_BASE, RAM_SIZE, Driver, make_machine

from pemu.hw.virtio import balloon as b
from pemu.hw.virtio.balloon import VirtioBalloon
from pemu.monitor import balloon_commands, qom
from pemu.monitor.errors import QMPError
from pemu.monitor.hmp import HMPInterpreter
from pemu.monitor.machine import MonitoredMachine

PAGE = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def resident_pages(space, addr: int, size: int) -> int:
    """How many host pages of guest RAM [addr, addr+size) are resident (mincore)."""
    block = space.find_ram(addr, size)
    host = block.host_addr + (addr - block.base)
    vec = (ctypes.c_ubyte * (size // mmap.PAGESIZE))()
    assert _libc.mincore(ctypes.c_void_p(host), ctypes.c_size_t(size), vec) == 0
    return sum(v & 1 for v in vec)


def balloon(**kw):
    dev = VirtioBalloon(RAM_SIZE, **kw)
    space, transport, irq = make_machine(dev)
    return dev, Driver(space), transport, irq


def fill_pages(drv: Driver, count: int) -> int:
    addr = drv.ram.alloc(count * PAGE, PAGE)
    drv.space.write(addr, b"\xaa" * count * PAGE)
    return addr


def test_features_follow_the_options():
    for kw, want in (({}, {b.VIRTIO_BALLOON_F_STATS_VQ}),
                     ({"deflate_on_oom": True, "free_page_reporting": True},
                      {b.VIRTIO_BALLOON_F_STATS_VQ, b.VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
                       b.VIRTIO_BALLOON_F_REPORTING})):
        dev, drv, _, _ = balloon(**kw)
        offered = drv.device_features() & 0xFFFFFF
        assert {n for n in range(24) if offered >> n & 1} == want
        assert dev.num_queues == (4 if kw else 3)


def test_target_and_actual_with_change_callback():
    dev, drv, transport, irq = balloon()
    drv.bring_up(3)
    changes = []
    dev.on_change = changes.append
    dev.set_target(RAM_SIZE // 4)  # keep a quarter: the balloon takes three quarters
    assert drv.config(0, 4) == (RAM_SIZE * 3 // 4) // PAGE
    assert irq.level and drv.ack_interrupts() & 2  # a config change interrupt
    drv.space.store(drv.base + 0x100 + 4, 4, 1000)  # the driver's actual
    assert changes == [RAM_SIZE - 1000 * PAGE]
    assert dev.actual_bytes == RAM_SIZE - 1000 * PAGE
    drv.space.store(drv.base + 0x100 + 4, 4, 1000)  # unchanged: no event
    assert len(changes) == 1
    dev.set_target(RAM_SIZE * 2)  # more than the guest has: nothing to take
    assert drv.config(0, 4) == 0


def test_inflate_gives_pages_back_and_ignores_frames_outside_ram():
    dev, drv, transport, _ = balloon()
    inflate, deflate, _ = drv.bring_up(3)
    addr = fill_pages(drv, 8)
    assert resident_pages(drv.space, addr, 8 * PAGE) == 8
    pfns = [(addr >> 12) + i for i in (0, 1, 2, 5)]  # two runs
    bad = [0, 0x10001, (RAM_BASE + RAM_SIZE) >> 12, 0xFFFFFFFF]  # not RAM, MMIO, past RAM
    buf = drv.ram.alloc(4 * 8)
    drv.space.write(buf, struct.pack("<8I", *pfns, *bad))
    inflate.add([(buf, 32, False)])
    inflate.kick()
    assert inflate.get_used() == [(0, 0)]
    assert transport.error is None
    assert dev.discarded_bytes == 4 * PAGE
    assert resident_pages(drv.space, addr, 8 * PAGE) == 4
    for i in range(8):
        page = drv.space.read(addr + i * PAGE, PAGE)
        assert page == (bytes(PAGE) if i in (0, 1, 2, 5) else b"\xaa" * PAGE)
    # deflate: the pages are the guest's again; the device only returns the buffer
    deflate.add([(buf, 16, False)])
    deflate.kick()
    assert deflate.get_used() == [(0, 0)]
    drv.space.write(addr, b"reused")
    assert drv.space.read(addr, 6) == b"reused"


def test_free_page_reporting_drops_the_reported_ranges():
    dev, drv, transport, _ = balloon(free_page_reporting=True)
    queues = drv.bring_up(4)
    reporting = queues[b.REPORTING_QUEUE]
    addr = fill_pages(drv, 16)
    # two reported ranges (device-writable, as the driver posts them), 4 pages apart
    reporting.add([(addr, 8 * PAGE, True), (addr + 12 * PAGE, 4 * PAGE, True)])
    reporting.kick()
    assert reporting.get_used() == [(0, 0)]
    assert transport.error is None
    assert resident_pages(drv.space, addr, 16 * PAGE) == 4
    assert drv.space.read(addr + 8 * PAGE, 4 * PAGE) == b"\xaa" * 4 * PAGE
    assert dev.discarded_bytes == 12 * PAGE


def test_reporting_queue_absent_without_the_option():
    dev, drv, transport, _ = balloon()
    drv.negotiate()
    drv.w32(0x030, b.REPORTING_QUEUE)  # QueueSel
    assert drv.r32(0x034) == 0  # QueueNumMax: no such queue


def _post_stats(drv: Driver, stats_q, entries: dict[int, int]) -> int:
    raw = b"".join(struct.pack("<HQ", tag, value) for tag, value in entries.items())
    buf = drv.ram.alloc(len(raw))
    drv.space.write(buf, raw)
    stats_q.add([(buf, len(raw), False)])
    stats_q.kick()
    return buf


def test_statistics_are_kept_and_requested_again():
    dev, drv, _, _ = balloon()
    _, _, stats_q = drv.bring_up(3)
    _post_stats(drv, stats_q, {4: 111 * PAGE, 5: 222 * PAGE, 99: 7})  # 99: unknown tag
    assert stats_q.get_used() == []  # the device keeps the buffer
    got = dev.qom_properties()["guest-stats"]
    assert got["stats"]["stat-free-memory"] == 111 * PAGE
    assert got["stats"]["stat-total-memory"] == 222 * PAGE
    assert got["stats"]["stat-swap-in"] == (1 << 64) - 1  # never reported
    assert got["last-update"] > 0
    dev.request_stats()
    assert stats_q.get_used() == [(0, 0)]
    # the polling interval returns the buffer by itself
    _post_stats(drv, stats_q, {4: 5})
    dev.qom_set("guest-stats-polling-interval", 1)
    try:
        assert wait_until(lambda: stats_q.get_used() != [], timeout=5)
    finally:
        dev.qom_set("guest-stats-polling-interval", 0)
    assert dev.qom_properties()["guest-stats"]["stats"]["stat-free-memory"] == 5


class BalloonMachine(MonitoredMachine):
    def __init__(self, devices: dict[str, object]) -> None:
        super().__init__()
        self._devices = devices

    def device_models(self) -> dict[str, object]:
        return self._devices

    def qom_children(self) -> dict[str, str]:
        return {name: "virtio-balloon-device" for name in self._devices}


def test_monitor_balloon_commands_events_and_qom():
    dev, drv, _, _ = balloon()
    drv.bring_up(3)
    machine = BalloonMachine({"bal0": dev})
    balloon_commands.connect_balloon_events(machine)
    assert balloon_commands.query_balloon(machine) == {"actual": RAM_SIZE}
    balloon_commands.set_balloon(machine, RAM_SIZE // 2)
    assert drv.config(0, 4) == RAM_SIZE // 2 // PAGE
    drv.space.store(drv.base + 0x100 + 4, 4, RAM_SIZE // 2 // PAGE)
    assert machine.events.history[-1]["event"] == "BALLOON_CHANGE"
    assert machine.events.history[-1]["data"] == {"actual": RAM_SIZE // 2}
    hmp = HMPInterpreter(machine)
    assert hmp.execute("info balloon") == f"balloon: actual={RAM_SIZE // 2 >> 20}\n"
    assert hmp.execute("balloon 4") == ""
    assert drv.config(0, 4) == (RAM_SIZE - (4 << 20)) // PAGE
    with pytest.raises(QMPError, match="target"):
        balloon_commands.set_balloon(machine, 0)
    tree = qom.build_tree(machine)
    path = "/machine/peripheral/bal0"
    qom.qom_set(tree, path, "guest-stats-polling-interval", 7)
    try:
        assert dev.stats_interval == 7
        assert qom.qom_get(qom.build_tree(machine), path,
                           "guest-stats-polling-interval") == 7
    finally:
        qom.qom_set(tree, path, "guest-stats-polling-interval", 0)
    for prop, value in (("guest-stats", 1), ("guest-stats-polling-interval", "x"),
                        ("nonexistent", 1)):
        with pytest.raises(QMPError):
            qom.qom_set(tree, path, prop, value)


def test_monitor_without_balloon():
    machine = BalloonMachine({})
    with pytest.raises(QMPError) as e:
        balloon_commands.query_balloon(machine)
    assert e.value.cls == "DeviceNotActive"
    assert "No balloon device" in HMPInterpreter(machine).execute("info balloon")
