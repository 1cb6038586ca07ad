"""What every virtio device (blk, rng, console, ...) shares, independent of transport.

A device declares its id, queues, feature bits and config space; the transport
(virtio-mmio here) owns the registers, the negotiated state and the interrupt line,
and calls ``queue_notified`` when the driver kicks a queue.  Devices complete
requests with ``self.complete(vq, elem, written)`` and report a broken driver by
raising ``VirtqueueError`` from ``queue_notified``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from pemu.hw.core import Device
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, VirtqueueError
from pemu.memory.address_space import AddressSpace

# Device types (spec 5)
VIRTIO_ID_NET = 1
VIRTIO_ID_BLOCK = 2
VIRTIO_ID_CONSOLE = 3
VIRTIO_ID_RNG = 4

# Transport-independent feature bits (spec 6)
VIRTIO_F_INDIRECT_DESC = 28
VIRTIO_F_EVENT_IDX = 29
VIRTIO_F_VERSION_1 = 32

# Device status bits (spec 2.1)
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_DEVICE_NEEDS_RESET = 64
STATUS_FAILED = 128


def bit(n: int) -> int:
    return 1 << n


class VirtioTransport(Protocol):
    """What a device needs of its transport (virtio-mmio today, virtio-pci next): the
    transport imports the devices' constants, so the device side names only this."""

    lock: threading.RLock
    mem: AddressSpace
    status: int

    def used_buffer_notify(self, vq: VirtQueue) -> None: ...
    def config_changed(self) -> None: ...
    def device_error(self, why: str) -> None: ...


class VirtioDevice(Device):
    """Base class; subclasses set ``device_id``, ``num_queues`` and ``queue_size``."""

    device_id = 0
    num_queues = 1
    queue_size = 256
    migratable = True  # False: the board refuses to migrate (state not declared yet)

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.transport: VirtioTransport | None = None
        self.queues: list[VirtQueue] = []
        self.lock = threading.RLock()  # replaced by the transport's lock on bind
        self.driver_features = 0
        # bumped by every reset: a request finished on an I/O thread after a reset
        # belongs to rings that are gone, and its completion is dropped
        self._generation = 0

    # -- what the device offers -------------------------------------------------------
    def device_features(self) -> int:
        """Device-specific feature bits; the transport adds the common ones."""
        return 0

    def config_bytes(self) -> bytes:
        """The current device-specific config space, little-endian as the spec lays out."""
        return b""

    def config_write(self, offset: int, data: bytes) -> None:
        """The driver wrote config space (most fields are read-only)."""

    # -- lifecycle, called by the transport -------------------------------------------
    def bind(self, transport: VirtioTransport) -> None:
        self.transport = transport
        self.lock = transport.lock
        self.queues = [VirtQueue(transport.mem, i, self.queue_size)
                       for i in range(self.num_queues)]

    def features_negotiated(self, features: int) -> None:
        self.driver_features = features
        for vq in self.queues:
            vq.event_idx = bool(features & bit(VIRTIO_F_EVENT_IDX))
            vq.indirect = bool(features & bit(VIRTIO_F_INDIRECT_DESC))

    def device_reset(self) -> None:
        """The driver wrote 0 to Status: forget in-flight state."""
        self._generation += 1
        self.driver_features = 0
        for vq in self.queues:
            vq.reset()

    def completion_for(self, vq: VirtQueue, elem: VirtqElement
                       ) -> Callable[[int | None, BaseException | None], None]:
        """The ``done(written, exc)`` callback of a request run on an I/O thread: it
        completes ``elem`` unless the device was reset meanwhile (an exception, a bug's
        trace, completes it with nothing written)."""
        generation = self._generation

        def done(written: int | None, exc: BaseException | None) -> None:
            with self.lock:
                if generation == self._generation:
                    self.complete(vq, elem, written if exc is None else 0)
        return done

    def queue_notified(self, vq: VirtQueue) -> None:
        """The driver added buffers to ``vq``; runs with the transport lock held."""

    # -- migration: elements a device holds across a save ----------------------------------
    def retake_held(self, vq: VirtQueue) -> VirtqElement:
        """After a load: the element the source had popped from ``vq`` and still held
        (a statistics buffer, output its chardev had not taken yet).  It is the last one
        the source popped from that queue, so the loaded ring position is one past it:
        step back and pop it again, from the guest RAM that came with the migration.
        Raises ``VirtqueueError`` if the ring has no such element (a bad state)."""
        if not vq.ready:
            raise VirtqueueError(f"queue {vq.index} holds an element but is not ready")
        vq.unpop()
        elem = vq.pop()
        if elem is None:
            vq.last_avail_idx = (vq.last_avail_idx + 1) & 0xFFFF
            raise VirtqueueError(f"queue {vq.index}: the held element is not in the ring")
        return elem

    # -- helpers for subclasses ----------------------------------------------------------
    def complete(self, vq: VirtQueue, elem: VirtqElement, written: int) -> None:
        vq.push(elem, written)
        if self.transport is not None:
            self.transport.used_buffer_notify(vq)

    def config_changed(self) -> None:
        if self.transport is not None:
            self.transport.config_changed()

    @property
    def driver_ok(self) -> bool:
        t = self.transport
        return (t is not None and bool(t.status & STATUS_DRIVER_OK)
                and not t.status & STATUS_DEVICE_NEEDS_RESET)
