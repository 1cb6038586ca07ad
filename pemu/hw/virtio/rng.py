"""virtio-rng (spec 5.4): entropy from the host's os.urandom into the driver's buffers."""

from __future__ import annotations

import os

from pemu.hw.virtio.device import VIRTIO_ID_RNG, VirtioDevice
from pemu.hw.virtio.virtqueue import VirtQueue
from pemu.qom.registry import DEVICE, TypeInfo, register

# One request never gets more than this, so a guest asking for a gigabyte buffer
# cannot make us allocate one.
MAX_CHUNK = 64 * 1024


class VirtioRng(VirtioDevice):
    """``VirtioRng()``: one queue, no config space, no features."""

    device_id = VIRTIO_ID_RNG
    num_queues = 1
    queue_size = 8  # as QEMU's: the driver keeps one buffer in flight
    type_name = "virtio-rng-device"

    def queue_notified(self, vq: VirtQueue) -> None:
        while (elem := vq.pop()) is not None:
            n = min(elem.in_len, MAX_CHUNK)
            written = elem.write_in(0, os.urandom(n)) if n else 0
            self.complete(vq, elem, written)


register(TypeInfo("virtio-rng-device", DEVICE, "Virtio random number generator",
                  bus="virtio-bus", factory=lambda ctx, opts, name: VirtioRng(id=name)))
