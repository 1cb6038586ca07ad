"""virtio-balloon (spec 5.5): the host asks the guest to give memory back.

The host sets a target (``num_pages``, 4 KiB pages the guest should hold in its
balloon); the driver inflates by sending page frame numbers on the inflate queue and
reports how many it holds in ``actual``.  Pages put in the balloon, and with
``free-page-reporting=on`` the free ranges the guest reports on the reporting queue,
are dropped from pemu's RAM mapping (``AddressSpace.discard``: madvise DONTNEED), so
the pemu process's RSS falls; the next guest write faults in a zero page.  Deflating
needs nothing from the host.  Frame numbers outside RAM are ignored.

Queues, in QEMU's order (a queue only exists if its feature is offered, and the
drivers number the ones that exist from 0): inflateq, deflateq, statsq, reporting_vq.

The statistics queue holds one buffer: the driver sends its statistics, the device
keeps the buffer and gives it back (empty) when it wants fresh numbers, every
``guest-stats-polling-interval`` seconds (0: never).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.hw.core import VMState, VMStateField
from pemu.hw.virtio.balloon_stats import MAX_ENTRIES, BalloonStats
from pemu.hw.virtio.device import VirtioDevice, bit
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, VirtqueueError
from pemu.main_loop import Timer, get_main_loop
from pemu.qemuopts.keyval import parse_bool
from pemu.qom.registry import DEVICE, Property, TypeInfo, register

VIRTIO_ID_BALLOON = 5
PFN_SHIFT = 12  # the balloon's page is 4 KiB whatever the guest's page size
BALLOON_PAGE = 1 << PFN_SHIFT

# feature bits (spec 5.5.3)
VIRTIO_BALLOON_F_MUST_TELL_HOST = 0
VIRTIO_BALLOON_F_STATS_VQ = 1
VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2
VIRTIO_BALLOON_F_REPORTING = 5

INFLATE_QUEUE = 0
DEFLATE_QUEUE = 1
STATS_QUEUE = 2
REPORTING_QUEUE = 3

_CONFIG = struct.Struct("<IIII")  # num_pages, actual, free_page_hint_cmd_id, poison_val
ACTUAL_OFFSET = 4
MAX_INTERVAL = 0xFFFFFFFF


def _runs(pfns: list[int]) -> list[tuple[int, int]]:
    """Frame numbers as (first, count) runs of consecutive frames: one madvise each."""
    runs: list[tuple[int, int]] = []
    for pfn in sorted(set(pfns)):
        if runs and runs[-1][0] + runs[-1][1] == pfn:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((pfn, 1))
    return runs


class VirtioBalloon(VirtioDevice):
    """``VirtioBalloon(ram_size, deflate_on_oom=False, free_page_reporting=False)``;
    ``on_change(actual_bytes)`` is called when the guest's balloon size changes (the
    monitor turns it into BALLOON_CHANGE)."""

    device_id = VIRTIO_ID_BALLOON
    queue_size = 128
    type_name = "virtio-balloon-device"
    # The target, the driver's actual size, the polling interval (its timer is re-armed
    # on load) and whether the device holds the driver's statistics buffer (re-taken
    # from the ring on load, so the next poll can give it back).  The statistics
    # themselves are not state: the next poll refreshes them (QEMU does not carry them
    # either).  Free page reporting completes every report at once: nothing in flight.
    vmstate = VMState("virtio-balloon", 1, (
        VMStateField("deflate_on_oom", "bool", equal=True),
        VMStateField("free_page_reporting", "bool", equal=True),
        VMStateField("num_pages", "u32", max="max_pages"),
        VMStateField("actual", "u32"),
        VMStateField("stats_interval", "u32"),
        VMStateField("stats_held", "bool"),
    ))

    def __init__(self, ram_size: int, deflate_on_oom: bool = False,
                 free_page_reporting: bool = False, id: str | None = None) -> None:
        super().__init__(id)
        self.ram_size = ram_size
        self.deflate_on_oom = deflate_on_oom
        self.free_page_reporting = free_page_reporting
        self.num_queues = REPORTING_QUEUE + 1 if free_page_reporting else STATS_QUEUE + 1
        self.num_pages = 0  # the host's target, in balloon pages
        self.actual = 0  # what the driver says it holds
        self.discarded_bytes = 0  # host memory given back so far (for tests and info)
        self.stats = BalloonStats()
        self.stats_interval = 0
        self.on_change: Callable[[int], None] | None = None
        self._stats_elem: VirtqElement | None = None
        self._stats_timer: Timer | None = None
        self._stats_retake = False  # held when the state was saved: re-take on use

    # -- config and features ---------------------------------------------------------
    def device_features(self) -> int:
        features = bit(VIRTIO_BALLOON_F_STATS_VQ)
        if self.deflate_on_oom:
            features |= bit(VIRTIO_BALLOON_F_DEFLATE_ON_OOM)
        if self.free_page_reporting:
            features |= bit(VIRTIO_BALLOON_F_REPORTING)
        return features

    def config_bytes(self) -> bytes:
        return _CONFIG.pack(self.num_pages, self.actual, 0, 0)

    def config_write(self, offset: int, data: bytes) -> None:
        # Only ``actual`` is the driver's; a partial write patches the bytes it covers.
        config = bytearray(self.config_bytes())
        if offset < 0 or offset + len(data) > len(config):
            return
        config[offset:offset + len(data)] = data
        actual = _CONFIG.unpack(config)[1]
        self._set_actual(actual)

    def _set_actual(self, actual: int) -> None:
        if actual == self.actual:
            return
        self.actual = actual
        if self.on_change is not None:
            self.on_change(self.actual_bytes)

    # -- migration ---------------------------------------------------------------------
    @property
    def max_pages(self) -> int:
        return self.ram_size >> PFN_SHIFT

    @property
    def stats_held(self) -> bool:
        return self._stats_elem is not None or self._stats_retake

    @stats_held.setter
    def stats_held(self, held: bool) -> None:
        # The element itself is re-taken from the ring when it is given back: by then
        # the transport's queue state is loaded whatever the load order.
        self._stats_elem = None
        self._stats_retake = held

    def vmstate_post_load(self) -> None:
        self.set_stats_interval(self.stats_interval)  # (re-)arms the polling timer

    # -- the host's side (monitor thread) ------------------------------------------------
    @property
    def actual_bytes(self) -> int:
        """The guest's memory as QEMU's query-balloon counts it: RAM less the balloon."""
        return max(0, self.ram_size - (self.actual << PFN_SHIFT))

    def set_target(self, target_bytes: int) -> None:
        """Ask the guest to keep ``target_bytes`` of RAM (QMP ``balloon``)."""
        target = min(max(0, target_bytes), self.ram_size)
        with self.lock:
            self.num_pages = (self.ram_size - target) >> PFN_SHIFT
            self.config_changed()

    def set_stats_interval(self, seconds: int) -> None:
        """``guest-stats-polling-interval``: ask for fresh statistics this often."""
        if not 0 <= seconds <= MAX_INTERVAL:
            raise ValueError(f"guest-stats-polling-interval: {seconds} is not in "
                             f"0..{MAX_INTERVAL}")
        with self.lock:
            self.stats_interval = seconds
            if self._stats_timer is not None:
                self._stats_timer.cancel()
                self._stats_timer = None
            if seconds:
                self._stats_timer = get_main_loop().add_timer(seconds, self._stats_tick)

    def _stats_tick(self) -> None:
        with self.lock:
            self._stats_timer = None
            self.request_stats()
            if self.stats_interval:
                self._stats_timer = get_main_loop().add_timer(self.stats_interval,
                                                              self._stats_tick)

    def request_stats(self) -> None:
        """Give the held statistics buffer back: the driver refills and resends it."""
        with self.lock:
            if not self._retake_stats():
                return
            elem, self._stats_elem = self._stats_elem, None
            if elem is not None and self.driver_ok:
                self.complete(self.queues[STATS_QUEUE], elem, 0)

    def _retake_stats(self) -> bool:
        """After a load: take the buffer the source held back from the ring, before
        anything else is popped from it (False: the ring is broken)."""
        if not (self._stats_retake and self.driver_ok):
            return True
        self._stats_retake = False
        try:
            self._stats_elem = self.retake_held(self.queues[STATS_QUEUE])
        except VirtqueueError as e:
            if self.transport is not None:
                self.transport.device_error(str(e))
            return False
        return True

    # -- the guest's side ------------------------------------------------------------
    def queue_notified(self, vq: VirtQueue) -> None:
        if vq.index == INFLATE_QUEUE:
            self._inflate(vq)
        elif vq.index == STATS_QUEUE:
            self._take_stats(vq)
        elif vq.index == REPORTING_QUEUE and self.free_page_reporting:
            self._report(vq)
        else:  # deflate: the pages are the guest's again, nothing to do but return them
            while (elem := vq.pop()) is not None:
                self.complete(vq, elem, 0)

    def _inflate(self, vq: VirtQueue) -> None:
        space = self.transport.mem if self.transport is not None else None
        while (elem := vq.pop()) is not None:
            raw = elem.read_out(0, elem.out_len)
            pfns = list(struct.unpack_from(f"<{len(raw) // 4}I", raw))
            if space is not None:
                for first, count in _runs(pfns):
                    self.discarded_bytes += space.discard(first << PFN_SHIFT,
                                                          count << PFN_SHIFT)
            self.complete(vq, elem, 0)

    def _take_stats(self, vq: VirtQueue) -> None:
        if not self._retake_stats():
            return
        while (elem := vq.pop()) is not None:
            self.stats.update(elem.read_out(0, MAX_ENTRIES * 10))
            if self._stats_elem is not None:  # a second buffer: give the older back
                self.complete(vq, self._stats_elem, 0)
            self._stats_elem = elem

    def _report(self, vq: VirtQueue) -> None:
        space = self.transport.mem if self.transport is not None else None
        while (elem := vq.pop()) is not None:
            if space is not None:
                for buf in elem.in_bufs:
                    self.discarded_bytes += space.discard_view(buf)
            self.complete(vq, elem, 0)

    def device_reset(self) -> None:
        super().device_reset()
        self._stats_elem = None
        self._stats_retake = False
        self.stats.reset()
        self._set_actual(0)  # the guest's balloon went with its driver

    def close(self) -> None:
        with self.lock:
            self.stats_interval = 0
            if self._stats_timer is not None:
                self._stats_timer.cancel()
                self._stats_timer = None

    # -- QOM properties (qom-get / qom-set) ------------------------------------------------
    def qom_properties(self) -> dict[str, object]:
        return {"guest-stats-polling-interval": self.stats_interval,
                "guest-stats": self.stats.as_qom()}

    def qom_set(self, name: str, value: object) -> None:
        if name != "guest-stats-polling-interval":
            raise KeyError(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("guest-stats-polling-interval: an integer is expected")
        self.set_stats_interval(value)


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioBalloon:
    driver = opts.get("driver", "virtio-balloon-device")
    flags = {prop: parse_bool(opts.get(prop, "off"), f"-device {driver},{prop}")
             for prop in ("deflate-on-oom", "free-page-reporting")}
    device = VirtioBalloon(ctx.cfg.ram_size,  # type: ignore[attr-defined]
                           deflate_on_oom=flags["deflate-on-oom"],
                           free_page_reporting=flags["free-page-reporting"], id=name)
    ctx.closers.append(device)  # type: ignore[attr-defined] # the stats timer
    return device


BALLOON_PROPERTIES = (
    Property("deflate-on-oom", "bool", "off", "the guest may deflate when it runs out of "
             "memory"),
    Property("free-page-reporting", "bool", "off", "pages the guest reports free are given "
             "back to the host"),
)

register(TypeInfo("virtio-balloon-device", DEVICE, "Virtio memory balloon",
                  bus="virtio-bus", properties=BALLOON_PROPERTIES, factory=_create))
