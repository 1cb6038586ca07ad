"""The virtio-mmio transport, version 2 (virtio 1.x "modern" only; spec 4.2.2).

Registers are 32-bit; config space starts at 0x100 and allows 8/16/32-bit reads.
A transport with no device (QEMU's virt has 8 slots, mostly empty) reads DeviceID 0,
which tells Linux to skip it.

Accelerators may bind QueueNotify (offset ``QUEUE_NOTIFY``) to an ioeventfd; when it
fires they call ``notify_queue(n)`` from their own thread (``None`` if the eventfd has
no datamatch: then every ready queue is polled).  All entry points take one lock, so
the vCPU thread and the I/O thread may call in concurrently.
"""

from __future__ import annotations

from pemu.hw.core import IRQLine, VMState, VMStateField
from pemu.hw.virtio.device import VirtioDevice
from pemu.hw.virtio.transport import TRANSPORT_HEAD, TRANSPORT_QUEUES, VirtioTransportBase
from pemu.hw.virtio.virtqueue import VirtQueue
from pemu.memory.address_space import AddressSpace

MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC
SHM_LEN_LOW = 0x0B0
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC
CONFIG = 0x100

MAGIC = 0x74726976  # "virt"
VENDOR_QEMU = 0x554D4551  # "QEMU": what Linux and firmware expect from QEMU's boards
INT_USED_BUFFER = 1
INT_CONFIG_CHANGE = 2
REGION_SIZE = 0x200

_QUEUE_ADDR_REGS = {
    QUEUE_DESC_LOW: ("desc_addr", 0), QUEUE_DESC_HIGH: ("desc_addr", 32),
    QUEUE_DRIVER_LOW: ("avail_addr", 0), QUEUE_DRIVER_HIGH: ("avail_addr", 32),
    QUEUE_DEVICE_LOW: ("used_addr", 0), QUEUE_DEVICE_HIGH: ("used_addr", 32),
}


class VirtioMMIO(VirtioTransportBase):
    """``VirtioMMIO(address_space, device, irq)``; map it with ``add_mmio(.., 0x200, t)``."""

    type_name = "virtio-mmio"
    transport_name = "virtio-mmio"
    # The shared transport state (transport.py) around the interrupt status register.
    vmstate = VMState("virtio-mmio", 1, (
        *TRANSPORT_HEAD,
        VMStateField("interrupt_status", "u32", max=INT_USED_BUFFER | INT_CONFIG_CHANGE),
        *TRANSPORT_QUEUES))

    def __init__(self, address_space: AddressSpace, device: VirtioDevice | None,
                 irq: IRQLine, id: str | None = None) -> None:
        self.irq = irq
        self.interrupt_status = 0
        super().__init__(address_space, device, id)
        self.reset()

    # -- migration ----------------------------------------------------------------------
    def vmstate_post_load(self) -> None:
        super().vmstate_post_load()
        self._update_irq()

    # -- interrupts: a status register and one wired line --------------------------------
    def transport_reset(self) -> None:
        self.interrupt_status = 0
        self._update_irq()

    def _update_irq(self) -> None:
        self.irq.set_level(self.interrupt_status != 0)

    def notify_used(self, vq: VirtQueue) -> None:
        self.interrupt_status |= INT_USED_BUFFER
        self._update_irq()

    def notify_config(self) -> None:
        self.interrupt_status |= INT_CONFIG_CHANGE
        self._update_irq()

    # -- registers ---------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset >= CONFIG:
                return self.read_device_config(offset - CONFIG, size)
            if size != 4:
                return 0  # registers are 32-bit only (spec 4.2.2.2)
            return self._register_read(offset)

    def _register_read(self, offset: int) -> int:
        vq = self.selected_queue()
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return 2
        if offset == VENDOR_ID:
            return VENDOR_QEMU
        if self.device is None:
            return 0  # an empty slot: DeviceID 0 and nothing else, as QEMU's
        if offset == DEVICE_ID:
            return self.device.device_id
        if offset == DEVICE_FEATURES:
            return self.device_features_word()
        if offset == QUEUE_NUM_MAX:
            return vq.max_size if vq is not None else 0
        if offset == QUEUE_READY:
            return int(vq.ready) if vq is not None else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if offset in (SHM_LEN_LOW, SHM_LEN_HIGH):
            return 0xFFFFFFFF  # no shared memory regions: length -1
        if offset == CONFIG_GENERATION:
            return self.config_generation
        if offset in _QUEUE_ADDR_REGS and vq is not None:
            attr, shift = _QUEUE_ADDR_REGS[offset]
            return (getattr(vq, attr) >> shift) & 0xFFFFFFFF
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        kick: int | None = None
        with self.lock:
            if offset >= CONFIG:
                self.write_device_config(offset - CONFIG, size, value)
                return
            if size != 4:
                return
            value &= 0xFFFFFFFF
            if offset == QUEUE_NOTIFY:
                kick = value
            else:
                self._register_write(offset, value)
        if kick is not None:
            self.notify_queue(kick & 0xFFFF)

    def _register_write(self, offset: int, value: int) -> None:
        vq = self.selected_queue()
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES:
            self.write_driver_features_word(value)
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == QUEUE_NUM:
            if vq is not None and not vq.ready:
                vq.num = value
        elif offset == QUEUE_READY:
            self.set_queue_ready(vq, bool(value & 1))
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self._update_irq()
        elif offset == STATUS:
            self.write_status(value & 0xFF)
        elif offset == SHM_SEL:
            pass
        elif offset in _QUEUE_ADDR_REGS and vq is not None and not vq.ready:
            attr, shift = _QUEUE_ADDR_REGS[offset]
            old = getattr(vq, attr)
            setattr(vq, attr, (old & ~(0xFFFFFFFF << shift)) | (value << shift))
