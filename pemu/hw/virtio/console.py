"""virtio-console (spec 5.3) with a single port: Linux's hvc0, backed by a chardev.

Queue 0 (receiveq) holds driver buffers we fill with host input; queue 1 (transmitq)
carries guest output.  Host input waits in the chardev (flow control through
``can_receive``) until the driver has posted receive buffers.
"""

from __future__ import annotations

import struct

from pemu.chardev.base import Chardev
from pemu.hw.core import VMState, VMStateField
from pemu.hw.virtio.device import VIRTIO_ID_CONSOLE, VirtioDevice, bit
from pemu.hw.virtio.virtqueue import VirtQueue, VirtqueueError
from pemu.qom.registry import DEVICE, Property, TypeInfo, register

VIRTIO_CONSOLE_F_SIZE = 0
VIRTIO_CONSOLE_F_EMERG_WRITE = 2
RX_QUEUE = 0
TX_QUEUE = 1
RX_CHUNK = 4096  # most input taken from the chardev at once (and so ever pending)


class VirtioConsole(VirtioDevice):
    """``VirtioConsole(chardev, cols=80, rows=25)``."""

    device_id = VIRTIO_ID_CONSOLE
    num_queues = 2
    queue_size = 128
    type_name = "virtio-serial-device"
    # Input taken from the chardev that no guest buffer has room for yet: the host
    # already consumed it, so only the device's state still has it.  The queues and
    # features are the transport's state (virtio-mmio).
    vmstate = VMState("virtio-console", 1, (
        VMStateField("pending_input", "bytes", max=RX_CHUNK),))

    def __init__(self, chardev: Chardev, cols: int = 80, rows: int = 25,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.chardev = chardev
        self.cols = cols
        self.rows = rows
        self._pending = bytearray()  # input accepted from the chardev, not yet in a buffer
        chardev.set_receiver(self.receive, self.can_receive)

    @property
    def pending_input(self) -> bytes:
        return bytes(self._pending)

    @pending_input.setter
    def pending_input(self, data: bytes) -> None:
        self._pending = bytearray(data)

    def device_features(self) -> int:
        return bit(VIRTIO_CONSOLE_F_SIZE) | bit(VIRTIO_CONSOLE_F_EMERG_WRITE)

    def config_bytes(self) -> bytes:
        return struct.pack("<HHII", self.cols, self.rows, 1, 0)

    def config_write(self, offset: int, data: bytes) -> None:
        if offset == 8 and data:
            # emerg_wr: a character written before the queues work (early console).
            self.chardev.write(data[:1])

    # -- guest -> host ---------------------------------------------------------------
    def queue_notified(self, vq: VirtQueue) -> None:
        if vq.index == TX_QUEUE:
            while (elem := vq.pop()) is not None:
                for buf in elem.out_bufs:
                    self.chardev.write(bytes(buf))
                self.complete(vq, elem, 0)
        else:
            # New receive buffers: first what we already took, then what the chardev held.
            self._fill(vq)
            if not self._pending:
                self.chardev.accept_input()

    # -- host -> guest (I/O thread) ---------------------------------------------------
    def can_receive(self) -> int:
        with self.lock:
            if self._pending or not self.driver_ok or len(self.queues) <= RX_QUEUE:
                return 0
            try:
                return RX_CHUNK if self.queues[RX_QUEUE].has_work() else 0
            except Exception:  # noqa: BLE001 - ring outside RAM: treat as no room
                return 0

    def receive(self, data: bytes) -> None:
        with self.lock:
            self._pending += data
            self._fill(self.queues[RX_QUEUE])

    def _fill(self, vq: VirtQueue) -> None:
        """Move pending input into posted receive buffers; keep the rest for later."""
        try:
            while self._pending:
                elem = vq.pop()
                if elem is None:
                    return
                n = elem.write_in(0, bytes(self._pending))
                del self._pending[:n]
                self.complete(vq, elem, n)
        except VirtqueueError as e:
            if self.transport is not None:
                self.transport.device_error(str(e))

    def device_reset(self) -> None:
        super().device_reset()
        self._pending.clear()


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioConsole:
    chardev = ctx.chardev(opts["driver"], opts.get("chardev"), name)  # type: ignore[attr-defined]
    return VirtioConsole(chardev, id=name)


register(TypeInfo(
    "virtio-serial-device", DEVICE, "Virtio console (one port: the guest's hvc0)",
    bus="virtio-bus", aliases=("virtconsole", "virtio-console-device"), factory=_create,
    properties=(Property("chardev", "str", description="ID of the -chardev it talks to"),)))
