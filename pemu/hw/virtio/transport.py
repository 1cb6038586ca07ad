"""What every virtio transport does the same way, whatever its registers look like:
feature negotiation, the status byte, queue set-up checks, kicks, config generation
and the broken-driver path (spec 2, 3.1).

virtio-mmio (mmio.py) and virtio-pci (pci.py) subclass ``VirtioTransportBase`` and
add only their register layout and how an interrupt reaches the guest: they
implement ``notify_used(vq)`` and ``notify_config()`` (an interrupt-status bit and a
wired line for mmio; an MSI-X vector or INTx with the ISR for pci) and
``transport_reset()``.  The device models (blk, net, rng, console) see only the
``VirtioTransport`` protocol of device.py.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from pemu.hw.core import Device, VMStateField, VMStateInvalid
from pemu.hw.virtio.device import (
    STATUS_DEVICE_NEEDS_RESET,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
    VirtioDevice,
    bit,
)
from pemu.hw.virtio.virtqueue import VirtQueue, VirtqueueError
from pemu.memory.address_space import AddressSpace
from pemu.net.ratelimit import RateLimitedWarning


def _queue_view(attr: str) -> property:
    """One VirtQueue attribute of every queue, as a list in queue order (for vmstate)."""

    def get(self: VirtioTransportBase) -> list:
        return [getattr(vq, attr) for vq in self.queues]

    def set(self: VirtioTransportBase, values: list) -> None:
        for vq, value in zip(self.queues, values, strict=True):
            setattr(vq, attr, value)

    return property(get, set)


# The state every transport has, declared once; a transport's VMState is
# TRANSPORT_HEAD + its own interrupt registers + TRANSPORT_QUEUES.  Per queue: what the
# driver programmed plus the ring indices the device keeps (with where it last
# interrupted, for EVENT_IDX: without it a restored queue would send one interrupt the
# original would not).  Each queue's event_idx/indirect follow from driver_features;
# device_type makes a blk state refuse to load into an rng transport.
TRANSPORT_HEAD = (
    VMStateField("device_type", "u32", equal=True),
    VMStateField("status", "u8"),
)
TRANSPORT_QUEUES = (
    VMStateField("driver_features", "u64"),
    VMStateField("device_features_sel", "u32"), VMStateField("driver_features_sel", "u32"),
    VMStateField("queue_sel", "u32"), VMStateField("config_generation", "u32"),
    VMStateField("queue_num", "u32[]"), VMStateField("queue_ready", "bool[]"),
    VMStateField("queue_desc", "u64[]"), VMStateField("queue_driver", "u64[]"),
    VMStateField("queue_device", "u64[]"), VMStateField("queue_last_avail_idx", "u16[]"),
    VMStateField("queue_used_idx", "u16[]"), VMStateField("queue_signalled_used", "u16[]"),
    VMStateField("queue_signalled_used_valid", "bool[]"),
)


class VirtioTransportBase(Device):
    transport_name = "virtio"

    def __init__(self, address_space: AddressSpace, device: VirtioDevice | None,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.mem = address_space
        self.device = device
        self.lock = threading.RLock()
        self.config_generation = 0
        self.error: str | None = None
        # a guest may break and reset its device in a loop: one line a second at most
        self._error_log = RateLimitedWarning(f"pemu: {self.transport_name} {self.id or ''}")
        self.status = 0
        self.driver_features = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.queue_sel = 0
        if device is not None:
            device.bind(self)

    # -- migration: the views TRANSPORT_QUEUES names, checks, re-derivation ------------
    queue_num = _queue_view("num")
    queue_ready = _queue_view("ready")
    queue_desc = _queue_view("desc_addr")
    queue_driver = _queue_view("avail_addr")
    queue_device = _queue_view("used_addr")
    queue_last_avail_idx = _queue_view("last_avail_idx")
    queue_used_idx = _queue_view("used_idx")
    queue_signalled_used = _queue_view("signalled_used")
    queue_signalled_used_valid = _queue_view("signalled_used_valid")

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        status = state["status"]
        features = state["driver_features"]
        assert isinstance(status, int) and isinstance(features, int)
        if status & STATUS_FEATURES_OK and not self.features_accepted(features):
            raise VMStateInvalid("driver_features", f"0x{features:x} accepted (FEATURES_OK) "
                                 f"but not a modern subset of 0x{self.host_features:x}")
        # A live queue must be one this transport would have let go live: the same
        # check QueueReady runs, on a scratch queue (the real ones are untouched).
        # Its rings must lie in RAM: a savevm stream carries RAM before devices.
        for i, vq in enumerate(self.queues):
            if not state["queue_ready"][i]:  # type: ignore[index]
                continue
            scratch = VirtQueue(self.mem, i, vq.max_size)
            scratch.num = state["queue_num"][i]  # type: ignore[index]
            scratch.desc_addr = state["queue_desc"][i]  # type: ignore[index]
            scratch.avail_addr = state["queue_driver"][i]  # type: ignore[index]
            scratch.used_addr = state["queue_device"][i]  # type: ignore[index]
            try:
                scratch.check_layout()
            except VirtqueueError as e:
                raise VMStateInvalid("queue_ready", str(e)) from None

    def vmstate_post_load(self) -> None:
        """Subclasses re-derive their interrupt output after calling this."""
        if self.device is not None:
            # What FEATURES_OK told the device (event_idx, indirect per queue).
            accepted = self.status & STATUS_FEATURES_OK
            self.device.features_negotiated(self.driver_features if accepted else 0)

    # -- what a subclass provides -----------------------------------------------------
    def notify_used(self, vq: VirtQueue) -> None:
        """Interrupt the driver for used buffers on ``vq`` (suppression already checked)."""
        raise NotImplementedError

    def notify_config(self) -> None:
        """Interrupt the driver for a configuration (or device status) change."""
        raise NotImplementedError

    def transport_reset(self) -> None:
        """Forget the transport's own registers (interrupt state, vectors)."""

    # -- state --------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.status = 0
            self.driver_features = 0
            self.device_features_sel = 0
            self.driver_features_sel = 0
            self.queue_sel = 0
            self.error = None
            if self.device is not None:
                self.device.device_reset()
            self.transport_reset()

    @property
    def host_features(self) -> int:
        if self.device is None:
            return 0
        return (self.device.device_features() | bit(VIRTIO_F_VERSION_1)
                | bit(VIRTIO_F_INDIRECT_DESC) | bit(VIRTIO_F_EVENT_IDX))

    @property
    def queues(self) -> list[VirtQueue]:
        return self.device.queues if self.device is not None else []

    @property
    def device_type(self) -> int:
        return self.device.device_id if self.device is not None else 0

    def selected_queue(self) -> VirtQueue | None:
        qs = self.queues
        return qs[self.queue_sel] if self.queue_sel < len(qs) else None

    def features_accepted(self, features: int) -> bool:
        """May the driver accept ``features``: a subset of ours, and modern."""
        return not features & ~self.host_features and bool(features & bit(VIRTIO_F_VERSION_1))

    # -- feature words (32 bits selected by *_features_sel) -----------------------------
    def device_features_word(self) -> int:
        if self.device_features_sel > 1:
            return 0
        return (self.host_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF

    def driver_features_word(self) -> int:
        if self.driver_features_sel > 1:
            return 0
        return (self.driver_features >> (32 * self.driver_features_sel)) & 0xFFFFFFFF

    def write_driver_features_word(self, value: int) -> None:
        if self.driver_features_sel <= 1 and not self.status & STATUS_FEATURES_OK:
            shift = 32 * self.driver_features_sel
            self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | (
                (value & 0xFFFFFFFF) << shift)

    # -- interrupts and errors -----------------------------------------------------------
    def used_buffer_notify(self, vq: VirtQueue) -> None:
        with self.lock:
            if vq.should_notify():
                self.notify_used(vq)

    def config_changed(self) -> None:
        """Config space (or device status) changed: new generation, and tell a live driver."""
        with self.lock:
            self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
            if self.status & STATUS_DRIVER_OK:
                # Before DRIVER_OK the driver reads config itself; no notification yet.
                self.notify_config()

    def device_error(self, why: str) -> None:
        """The driver broke the rules: DEVICE_NEEDS_RESET, a config interrupt, no crash."""
        with self.lock:
            if self.error is None:
                self._error_log(f"{why}; device needs reset")
            self.error = why
            self.status |= STATUS_DEVICE_NEEDS_RESET
            self.config_changed()  # the status change is announced like a config change

    # -- queue kicks and set-up -------------------------------------------------------------
    def notify_queue(self, n: int | None) -> None:
        """A queue notification from a register write or an ioeventfd, on any thread
        (``None``: poll every ready queue)."""
        with self.lock:
            if self.device is None or self.status & STATUS_DEVICE_NEEDS_RESET:
                return
            targets = self.queues if n is None else self.queues[n:n + 1] if n >= 0 else []
            for vq in targets:
                if not vq.ready:
                    continue
                try:
                    self.device.queue_notified(vq)
                except VirtqueueError as e:
                    self.device_error(str(e))
                    return

    def set_queue_ready(self, vq: VirtQueue | None, ready: bool) -> None:
        if vq is None:
            return
        if not ready:
            vq.ready = False
            return
        try:
            vq.check_layout()
        except VirtqueueError as e:
            self.device_error(str(e))
            return
        vq.ready = True

    def write_status(self, value: int) -> None:
        if value == 0:
            self.reset()
            return
        if value & STATUS_FEATURES_OK and not self.status & STATUS_FEATURES_OK:
            # Accept the driver's subset only if it is a subset and is modern.
            wanted = self.driver_features
            if not self.features_accepted(wanted):
                value &= ~STATUS_FEATURES_OK
            elif self.device is not None:
                self.device.features_negotiated(wanted)
        # DEVICE_NEEDS_RESET is ours to set; the driver cannot clear it except by reset.
        self.status = value | (self.status & STATUS_DEVICE_NEEDS_RESET)

    # -- device config space -------------------------------------------------------------
    def read_device_config(self, offset: int, size: int) -> int:
        if self.device is None:
            return 0
        data = self.device.config_bytes()
        if offset + size > len(data):
            return 0
        return int.from_bytes(data[offset:offset + size], "little")

    def write_device_config(self, offset: int, size: int, value: int) -> None:
        if self.device is not None:
            self.device.config_write(offset, (value & ((1 << (8 * size)) - 1)).to_bytes(
                size, "little"))
