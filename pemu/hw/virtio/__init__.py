"""virtio: split virtqueues, the virtio-mmio transport, and the devices behind it.

A board wires a device as ``VirtioMMIO(address_space, VirtioBlk(backend), irq)`` and
maps the transport with ``add_mmio(name, base, REGION_SIZE, transport)``.
"""

from pemu.hw.virtio.blk import VirtioBlk
from pemu.hw.virtio.console import VirtioConsole
from pemu.hw.virtio.device import VirtioDevice
from pemu.hw.virtio.mmio import REGION_SIZE, VirtioMMIO
from pemu.hw.virtio.rng import VirtioRng
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, VirtqueueError

__all__ = ["REGION_SIZE", "VirtioBlk", "VirtioConsole", "VirtioDevice", "VirtioMMIO",
           "VirtioRng", "VirtqElement", "VirtQueue", "VirtqueueError"]
