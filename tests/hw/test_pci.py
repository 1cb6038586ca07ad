"""The PCI core and virtio-pci, driven through ECAM and the host's windows as a guest
would: config space masks, BAR sizing and mapping, capabilities, INTx swizzle, MSI and
MSI-X (messages land in RAM, where a test can see them; on a board an IMSIC page takes
them), addressing and multifunction."""

from __future__ import annotations

import pytest
from pci_driver import RAM_BASE, PCIMachine, VirtioPCIDriver, msix_entry, u32_at

from pemu.hw.pci import config as C
from pemu.hw.pci.address import parse_devfn
from pemu.hw.pci.bar import BAR_IO, BAR_MEM32
from pemu.hw.pci.bus import PCIBusError
from pemu.hw.pci.capability import CAP_ID_EXP, CAP_ID_MSI, CAP_ID_MSIX, CAP_ID_VENDOR
from pemu.hw.pci.device import PCIDevice
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio.rng import VirtioRng


class Scratch:
    """A BAR's backing: a dword register file."""

    def __init__(self, size: int) -> None:
        self.regs = bytearray(size)

    def mmio_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.regs[offset:offset + size], "little")

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.regs[offset:offset + size] = value.to_bytes(size, "little")


class ProbeDevice(PCIDevice):
    device_id = 0x0005  # QEMU's "PCI test device"
    class_code = 0x00FF00

    def __init__(self, express: bool = False) -> None:
        super().__init__("t", express=express)
        self.io = Scratch(0x20)
        self.mem = Scratch(0x1000)
        self.add_bar(0, 0x20, BAR_IO, self.io)
        self.add_bar(2, 0x1000, BAR_MEM32, self.mem, prefetchable=True)
        self.set_interrupt_pin(2)  # INTB#
        self.add_msi(vectors=4)
        if express:
            self.add_pcie_endpoint()


def virtio_rng_machine(slot: int = 1, vectors: int | None = None):
    m = PCIMachine()
    fn = vp.VirtioPCI(m.space, VirtioRng(), vectors=vectors, id="rng")
    m.host.root_bus.plug(fn, slot << 3)
    return m, fn, VirtioPCIDriver(m, slot << 3)


def rng_request(drv: VirtioPCIDriver, q, n: int = 16) -> int:
    buf = drv.ram.alloc(n)
    q.set_used_event(q.avail_idx)  # EVENT_IDX: interrupt for this very request
    q.add([(buf, n, True)])
    q.kick()
    return buf


def test_host_bridge_and_empty_slots():
    m = PCIMachine()
    cfg = m.cfg(0)
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1B36, 0x0008)
    assert cfg.r(C.CLASS_DEVICE, 2) == 0x0600
    assert m.cfg(1 << 3).r(C.VENDOR_ID, 4) == 0xFFFFFFFF  # nobody home
    assert m.cfg(0, bus=5).r(0, 2) == 0xFFFF  # no such bus


def test_config_space_write_masks_and_w1c_status():
    m = PCIMachine()
    m.host.root_bus.plug(dev := ProbeDevice(), 2 << 3)
    cfg = m.cfg(2 << 3)
    cfg.w(C.VENDOR_ID, 4, 0x12345678)  # IDs are read-only
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1B36, 0x0005)
    cfg.w(C.COMMAND, 2, 0xFFFF)
    assert cfg.r(C.COMMAND, 2) == C.COMMAND_WRITABLE
    assert cfg.r(C.INTERRUPT_PIN, 1) == 2
    cfg.w(C.INTERRUPT_LINE, 1, 0x2A)
    assert cfg.r(C.INTERRUPT_LINE, 1) == 0x2A
    # a W1C bit: set by the device, cleared only by writing one; Cap List stays
    dev.config.set(C.STATUS, 2, dev.config.get(C.STATUS, 2) | 0x2000)  # master abort
    cfg.w(C.STATUS, 2, 0)
    assert cfg.r(C.STATUS, 2) & 0x2000
    cfg.w(C.STATUS, 2, 0x2000 | C.STATUS_CAP_LIST)
    assert not cfg.r(C.STATUS, 2) & 0x2000
    assert cfg.r(C.STATUS, 2) & C.STATUS_CAP_LIST
    # a conventional device has 256 bytes: extended space reads as all ones
    assert cfg.r(0x100, 4) == 0xFFFFFFFF


def test_bar_sizing_type_bits_and_mapping():
    m = PCIMachine()
    m.host.root_bus.plug(dev := ProbeDevice(), 2 << 3)
    cfg = m.cfg(2 << 3)
    cfg.w(C.BAR0, 4, 0xFFFFFFFF)
    assert cfg.r(C.BAR0, 4) == 0xFFFFFFE1  # 32 bytes of I/O
    cfg.w(C.BAR0 + 8, 4, 0xFFFFFFFF)
    assert cfg.r(C.BAR0 + 8, 4) == 0xFFFFF008  # 4 KiB, 32-bit, prefetchable
    cfg.w(C.BAR0 + 4, 4, 0xFFFFFFFF)
    assert cfg.r(C.BAR0 + 4, 4) == 0  # no BAR1
    # programmed but decoding off: the window is empty (master abort: all ones)
    cfg.w(C.BAR0 + 8, 4, 0x40010000)
    dev.mem.regs[0:4] = (0xCAFEF00D).to_bytes(4, "little")
    assert m.space.load(0x40010000, 4) == 0xFFFFFFFF
    cfg.w(C.COMMAND, 2, C.COMMAND_MEMORY)
    assert m.space.load(0x40010000, 4) == 0xCAFEF00D
    m.space.store(0x40010004, 4, 0x11223344)
    assert dev.mem.mmio_read(4, 4) == 0x11223344
    cfg.w(C.BAR0 + 8, 4, 0x40020000)  # moved: the old address is empty
    assert m.space.load(0x40010000, 4) == 0xFFFFFFFF
    assert m.space.load(0x40020000, 4) == 0xCAFEF00D
    # the I/O BAR appears in the PIO window once I/O decoding is on
    cfg.w(C.BAR0, 4, 0x1040)
    assert m.space.load(0x0300_1040, 4) == 0xFFFFFFFF
    cfg.w(C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_IO)
    m.space.store(0x0300_1044, 2, 0xBEEF)
    assert dev.io.mmio_read(4, 2) == 0xBEEF
    cfg.w(C.COMMAND, 2, 0)
    assert m.space.load(0x40020000, 4) == 0xFFFFFFFF


def test_virtio_pci_identity_bars_and_capabilities():
    m, fn, drv = virtio_rng_machine()
    cfg = drv.cfg
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1AF4, 0x1044)
    assert cfg.r(C.REVISION_ID, 1) == 1
    assert cfg.r(C.SUBSYSTEM_VENDOR_ID, 2) == 0x1AF4
    assert set(drv.bars) == {1, 4}
    assert drv.bars[4] >= 0x4_0000_0000  # the 64-bit BAR went to the high window
    ids = [cap for cap, _ in cfg.capabilities()]
    assert ids.count(CAP_ID_VENDOR) == 4 and CAP_ID_MSIX in ids
    assert drv.notify_mult == 4
    assert drv.r(vp.NUM_QUEUES, 2) == 1
    drv.w(vp.QUEUE_SELECT, 2, 0)
    assert drv.r(vp.QUEUE_SIZE, 2) == 8
    assert drv.r(vp.QUEUE_MSIX_VECTOR, 2) == vp.NO_VECTOR
    features = drv.device_features()
    assert features & (1 << 32)  # VERSION_1: modern only


def test_virtio_pci_intx_isr_and_swizzle():
    m, fn, drv = virtio_rng_machine(slot=3)
    (q,) = drv.bring_up(1)
    line = m.intx[(3 + 0) % 4]  # INTA# of slot 3
    assert not any(i.level for i in m.intx)
    buf = rng_request(drv, q)
    assert q.get_used() == [(0, 16)]
    assert drv.space.read(buf, 16) != bytes(16)
    assert line.level and sum(i.level for i in m.intx) == 1
    assert drv.cfg.r(C.STATUS, 2) & C.STATUS_INTERRUPT
    assert drv.read_isr() == vp.ISR_QUEUE
    assert not line.level and drv.read_isr() == 0
    # Interrupt Disable keeps the wire low while Status still shows the interrupt
    drv.cfg.w(C.COMMAND, 2, drv.cfg.r(C.COMMAND, 2) | C.COMMAND_INTX_DISABLE)
    rng_request(drv, q)
    assert not line.level and drv.cfg.r(C.STATUS, 2) & C.STATUS_INTERRUPT
    drv.cfg.w(C.COMMAND, 2, drv.cfg.r(C.COMMAND, 2) & ~C.COMMAND_INTX_DISABLE)
    assert line.level


def test_intx_lines_are_shared_and_follow_pin_and_slot():
    m = PCIMachine()
    a, b = ProbeDevice(), ProbeDevice()  # INTB#
    m.host.root_bus.plug(a, 1 << 3)
    m.host.root_bus.plug(b, 5 << 3)  # slot 5, INTB -> (5 + 1) % 4 == 2, as slot 1
    a.set_irq(True)
    assert [i.level for i in m.intx] == [False, False, True, False]
    b.set_irq(True)
    a.set_irq(False)
    assert m.intx[2].level  # still held by b
    b.set_irq(False)
    assert not m.intx[2].level


def test_msix_vectors_masks_and_pba():
    m, fn, drv = virtio_rng_machine(vectors=2)
    table = drv.bars[1]
    pba = table + vp.MSIX_PBA_OFFSET
    msg = drv.ram.alloc(16)
    msix_cap = dict(drv.cfg.capabilities())[CAP_ID_MSIX]
    assert drv.cfg.r(msix_cap + 2, 2) & 0x7FF == 1  # table size - 1
    assert m.space.load(table + 12, 4) == 1  # every vector masked at reset
    msix_entry(m.space, table, 1, msg, 0x1234, masked=False)
    drv.cfg.w(msix_cap + 2, 2, 0x8000)  # enable
    (q,) = drv.bring_up(1, vectors=[1])
    assert drv.r(vp.QUEUE_MSIX_VECTOR, 2) == 1
    drv.w(vp.QUEUE_MSIX_VECTOR, 2, 7)  # a vector it does not have reads back NO_VECTOR
    assert drv.r(vp.QUEUE_MSIX_VECTOR, 2) == vp.NO_VECTOR
    drv.w(vp.QUEUE_MSIX_VECTOR, 2, 1)
    rng_request(drv, q)
    assert u32_at(m.space, msg) == 0x1234
    assert not any(i.level for i in m.intx)  # MSI-X, not INTx
    # per-vector mask: the message waits in the PBA and goes out on unmask
    m.space.store(msg, 4, 0)
    m.space.store(table + 16 + 12, 4, 1)
    rng_request(drv, q)
    assert u32_at(m.space, msg) == 0 and m.space.load(pba, 8) == 0b10
    m.space.store(table + 16 + 12, 4, 0)
    assert u32_at(m.space, msg) == 0x1234 and m.space.load(pba, 8) == 0
    # function mask: the same through the capability's Mask All bit
    m.space.store(msg, 4, 0)
    drv.cfg.w(msix_cap + 2, 2, 0xC000)
    rng_request(drv, q)
    assert u32_at(m.space, msg) == 0 and m.space.load(pba, 8) == 0b10
    drv.cfg.w(msix_cap + 2, 2, 0x8000)
    assert u32_at(m.space, msg) == 0x1234
    # without Bus Master nothing is written
    m.space.store(msg, 4, 0)
    drv.cfg.w(C.COMMAND, 2, drv.cfg.r(C.COMMAND, 2) & ~C.COMMAND_MASTER)
    rng_request(drv, q)
    assert u32_at(m.space, msg) == 0


def test_msi_capability_multiple_messages_and_masking():
    m = PCIMachine()
    m.host.root_bus.plug(dev := ProbeDevice(), 2 << 3)
    cfg = m.cfg(2 << 3)
    cap = dict(cfg.capabilities())[CAP_ID_MSI]
    flags = cfg.r(cap + 2, 2)
    assert flags & 0x80 and flags & 0x100 and (flags >> 1) & 7 == 2  # 64-bit, mask, 4
    msg = RAM_BASE + 0x100
    cfg.w(cap + 4, 4, msg)
    cfg.w(cap + 8, 4, 0)
    cfg.w(cap + 12, 2, 0x40)
    cfg.w(C.COMMAND, 2, C.COMMAND_MASTER)
    assert not dev.msi_notify(0)  # MSI off: the caller would use INTx
    cfg.w(cap + 2, 2, 0x1 | (2 << 4))  # enable, 4 messages
    assert dev.msi_notify(3)
    assert u32_at(m.space, msg) == 0x43  # data with the vector in its low bits
    cfg.w(cap + 16, 4, 0b0100)  # mask vector 2
    dev.msi_notify(2)
    assert u32_at(m.space, msg) == 0x43 and cfg.r(cap + 20, 4) == 0b0100
    cfg.w(cap + 16, 4, 0)
    assert u32_at(m.space, msg) == 0x42 and cfg.r(cap + 20, 4) == 0


def test_pcie_capability_and_extended_config_space():
    m = PCIMachine()
    m.host.root_bus.plug(ProbeDevice(express=True), 2 << 3)
    cfg = m.cfg(2 << 3)
    cap = dict(cfg.capabilities())[CAP_ID_EXP]
    assert cfg.r(cap + 2, 2) & 0xF == 2  # version 2, endpoint
    assert (cfg.r(cap + 2, 2) >> 4) & 0xF == 0
    assert cfg.r(0x100, 4) == 0  # 4 KiB of config space, no extended capability
    assert cfg.r(0xFFC, 4) == 0


def test_addresses_and_multifunction():
    assert parse_devfn("0x3.1") == (3 << 3) | 1
    assert parse_devfn("1f.7") == 0xFF and parse_devfn("4") == 0x20
    for bad in ("0x20", "3.8", "x"):
        with pytest.raises(ValueError):
            parse_devfn(bad)
    m = PCIMachine()
    bus = m.host.root_bus
    assert bus.plug(ProbeDevice()) == 1 << 3  # the first free slot after the host bridge
    with pytest.raises(PCIBusError, match="in use"):
        bus.plug(ProbeDevice(), 1 << 3)
    with pytest.raises(PCIBusError, match="single function"):
        bus.plug(ProbeDevice(), (1 << 3) | 1)
    bus.plug(f0 := ProbeDevice(), 3 << 3, multifunction=True)
    bus.plug(ProbeDevice(), (3 << 3) | 1)
    assert m.cfg(3 << 3).r(C.HEADER_TYPE, 1) == 0x80 and f0.multifunction
    assert m.cfg((3 << 3) | 1).r(C.VENDOR_ID, 2) == 0x1B36
    bus.plug(ProbeDevice(), (4 << 3) | 2)  # a function before its function 0 ...
    with pytest.raises(PCIBusError, match="multifunction=on"):
        bus.plug(ProbeDevice(), 4 << 3)  # ... needs a multifunction function 0


def test_reset_unmaps_bars_and_disables_msix():
    m, fn, drv = virtio_rng_machine()
    bar4 = drv.bars[4]
    assert m.space.load(bar4 + vp.NUM_QUEUES, 2) == 1
    m.host.reset()
    assert drv.cfg.r(C.COMMAND, 2) == 0
    assert m.space.load(bar4 + vp.NUM_QUEUES, 2) == 0xFFFF
