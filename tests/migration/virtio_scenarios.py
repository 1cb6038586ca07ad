"""Scenarios for virtio devices behind virtio-mmio that hold state of their own beyond
the transport's: virtio-balloon, multiport virtio-serial, virtio-scsi."""

from __future__ import annotations

import copy
import struct

from pemu.hw.scsi.disk import ScsiDisk
from pemu.hw.virtio import balloon as b
from pemu.hw.virtio import scsi as vscsi
from pemu.hw.virtio import serial as vs
from pemu.hw.virtio.balloon import VirtioBalloon
from pemu.hw.virtio.scsi import VirtioSCSI
from pemu.hw.virtio.serial import VirtioSerial
from tests.hw.hwtest_util import CaptureChardev
from tests.hw.virtio_driver import RAM_BASE, RAM_SIZE, Driver, make_machine
from tests.migration.scenarios import Rig, Scenario

PAGE = 4096


def virtio_rig(device, rig: Rig | None, **extra) -> Rig:
    """The device on a virtio-mmio transport with a test driver.  With ``rig`` (the
    source): what a migration carries besides device state - guest RAM, and the guest
    driver's bookkeeping (in a real guest it lives in that RAM)."""
    space, transport, irq = make_machine(device)
    new = Rig([transport, device], extra={"irq": irq, "drv": Driver(space), "space": space,
                                         **extra})
    if rig is not None:
        space.write(RAM_BASE, rig.extra["space"].read(RAM_BASE, RAM_SIZE))
        new.extra["drv"].ram.next = rig.extra["drv"].ram.next
        new.extra["queues"] = []
        for q in rig.extra["queues"]:
            q2 = copy.copy(q)
            q2.drv, q2.free = new.extra["drv"], list(q.free)
            new.extra["queues"].append(q2)
    return new


# -- virtio-balloon ----------------------------------------------------------------------
class BalloonScenario(Scenario):
    """A target set, the driver's actual reported, the statistics buffer held by the
    device and a polling interval: after the load the next poll gives the same buffer
    back and the target is what the guest reads."""

    device_type = VirtioBalloon

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        return virtio_rig(VirtioBalloon(RAM_SIZE, free_page_reporting=True), rig)

    def configured(self) -> Rig:
        rig = self.fresh_like()
        dev, drv = rig.devices[1], rig.extra["drv"]
        rig.extra["queues"] = queues = drv.bring_up(4)
        dev.set_target(RAM_SIZE // 2)
        drv.space.store(drv.base + 0x100 + 4, 4, 512)  # the driver's actual
        raw = struct.pack("<HQ", 4, 1234 * PAGE)
        buf = drv.ram.alloc(len(raw))
        drv.space.write(buf, raw)
        queues[b.STATS_QUEUE].add([(buf, len(raw), False)])
        queues[b.STATS_QUEUE].kick()
        dev.set_stats_interval(3600)  # armed, never due during a test
        drv.ack_interrupts()
        return rig

    def probe(self, rig: Rig) -> list:
        dev, drv = rig.devices[1], rig.extra["drv"]
        stats_q = rig.extra["queues"][b.STATS_QUEUE]
        out: list = [drv.config(0, 4), drv.config(4, 4), dev.actual_bytes,
                     dev.qom_properties()["guest-stats-polling-interval"],
                     rig.extra["irq"].level]
        dev.request_stats()  # a poll: the held buffer goes back to the driver
        out += [stats_q.get_used(), drv.ack_interrupts()]
        dev.set_stats_interval(0)
        return out


# -- multiport virtio-serial -------------------------------------------------------------
class PortChardev(CaptureChardev):
    """A backend that takes only ``room`` bytes of output at a time (None: all) and
    remembers who waits for it to become writable."""

    def __init__(self) -> None:
        super().__init__()
        self.room: int | None = None
        self.writable_callbacks: list = []

    def write_some(self, data: bytes) -> int:
        n = len(data) if self.room is None else min(self.room, len(data))
        self.output += data[:n]
        return n

    def notify_writable(self, callback) -> None:
        self.writable_callbacks.append(callback)

    def writable(self) -> None:
        self.room = None
        callbacks, self.writable_callbacks = self.writable_callbacks, []
        for callback in callbacks:
            callback()


def _control(nr: int, event: int, value: int) -> bytes:
    return vs.CONTROL.pack(nr, event, value)


class SerialPortsScenario(Scenario):
    """Three ports: port 1 open by the guest, with host input waiting for a receive
    buffer and guest output the chardev took only part of; port 2 set up but closed;
    port 3 never set up.  A control message waits for a control buffer."""

    device_type = VirtioSerial
    MAX_PORTS = 4

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        dev = VirtioSerial(max_ports=self.MAX_PORTS)
        chardevs = [PortChardev() for _ in range(3)]
        for nr, chardev in enumerate(chardevs, start=1):
            dev.add_port(chardev, nr, name=f"org.pemu.{nr}")
        return virtio_rig(dev, rig, chardevs=chardevs)

    def _send(self, rig: Rig, message: bytes) -> None:
        drv, ctl_tx = rig.extra["drv"], rig.extra["queues"][vs.CONTROL_TX]
        buf = drv.ram.alloc(len(message))
        drv.space.write(buf, message)
        ctl_tx.add([(buf, len(message), False)])
        ctl_tx.kick()

    def _post_control_rx(self, rig: Rig, count: int) -> list[int]:
        drv, ctl_rx = rig.extra["drv"], rig.extra["queues"][vs.CONTROL_RX]
        bufs = [drv.ram.alloc(32) for _ in range(count)]
        for buf in bufs:
            ctl_rx.add([(buf, 32, True)])
        ctl_rx.kick()
        return bufs

    def configured(self) -> Rig:
        rig = self.fresh_like()
        dev, drv = rig.devices[1], rig.extra["drv"]
        rig.extra["queues"] = queues = drv.bring_up(2 * (self.MAX_PORTS + 1), num=16)
        # 3 x PORT_ADD, then per set-up port PORT_NAME and PORT_OPEN (host connected)
        self._post_control_rx(rig, 7)
        self._send(rig, _control(vs.NO_PORT, vs.DEVICE_READY, 1))
        for nr in (1, 2):
            self._send(rig, _control(nr, vs.PORT_READY, 1))
        self._send(rig, _control(1, vs.PORT_OPEN, 1))
        dev._send_control(2, vs.RESIZE, 0)  # an 8th message: waits for a buffer
        rx1 = queues[vs.rx_queue_index(1)]
        rx1.add([(drv.ram.alloc(4), 4, True)])
        rx1.kick()
        chardev1 = rig.extra["chardevs"][0]
        chardev1.feed(b"0123456789")  # 4 bytes fit, 6 wait in the device
        chardev1.room = 3  # the backend takes 3 bytes of output, then is full
        msg = drv.ram.alloc(8)
        drv.space.write(msg, b"guest!\n.")
        tx1 = queues[vs.rx_queue_index(1) + 1]
        tx1.add([(msg, 8, False)])
        tx1.kick()
        port = dev.ports[1]
        assert port.tx_held is not None and len(port.pending) == 6
        assert len(dev._control_out) == 1 and port.guest_open
        return rig

    def probe(self, rig: Rig) -> list:
        dev, drv, queues = rig.devices[1], rig.extra["drv"], rig.extra["queues"]
        chardevs = rig.extra["chardevs"]
        out: list = [[(p.guest_ready, p.guest_open) for _, p in sorted(dev.ports.items())],
                     [c.fe_open for c in chardevs]]
        ctl_rx = queues[vs.CONTROL_RX]
        seen = len(ctl_rx.get_used())
        buf = self._post_control_rx(rig, 1)[0]  # the waiting message arrives
        out += [ctl_rx.get_used()[seen:], drv.space.read(buf, 8)]
        rx1 = queues[vs.rx_queue_index(1)]
        seen = len(rx1.get_used())
        buf = drv.ram.alloc(32)
        rx1.add([(buf, 32, True)])
        rx1.kick()
        out += [rx1.get_used()[seen:], drv.space.read(buf, 6)]
        before = len(chardevs[0].output)
        chardevs[0].writable()  # the rest of the held output goes
        tx1 = queues[vs.rx_queue_index(1) + 1]
        out += [bytes(chardevs[0].output[before:]), tx1.get_used()]
        # the guest opens port 2: its chardev learns it, and input may flow
        self._send(rig, _control(2, vs.PORT_OPEN, 1))
        out += [chardevs[1].fe_open, dev.ports[2].guest_open]
        return out


# -- virtio-scsi --------------------------------------------------------------------------
class VirtioScsiScenario(Scenario):
    """A scsi-hd and a scsi-cd: a WRITE(10) ran on the disk's I/O thread and was drained
    (the board's pre-save), a bad command left sense data on the CD that REQUEST SENSE
    answers after the load."""

    device_type = VirtioSCSI

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        from tests.migration.storage_scenarios import shared_drive  # imports scenarios

        dev = VirtioSCSI(id="scsi0")
        disk = shared_drive("scsi-disk", 1 << 20)
        cd = shared_drive("scsi-cd", 64 * 2048, read_only=True)
        dev.scsi_bus.attach(ScsiDisk(disk, serial="mig-hd"), 0, 1, 0)
        dev.scsi_bus.attach(ScsiDisk(cd, cdrom=True, serial="mig-cd"), 0, 2, 0)
        new = virtio_rig(dev, rig)
        if rig is not None:
            new.extra["data"] = rig.extra["data"]
        return new

    def _command(self, rig: Rig, target: int, cdb: bytes, out: bytes = b"",
                 in_len: int = 0) -> tuple[bytes, bytes]:
        drv, req = rig.extra["drv"], rig.extra["queues"][2]
        head = drv.ram.alloc(vscsi.REQ_HEADER)
        drv.space.write(head, bytes([1, target, 0x40, 0]) + bytes(4)
                        + struct.pack("<QBBB", 7, 0, 0, 0) + cdb.ljust(vscsi.CDB_SIZE, b"\0"))
        bufs = [(head, vscsi.REQ_HEADER, False)]
        if out:
            a = drv.ram.alloc(len(out))
            drv.space.write(a, out)
            bufs.append((a, len(out), False))
        resp = drv.ram.alloc(vscsi.RESP.size)
        bufs.append((resp, vscsi.RESP.size, True))
        data = drv.ram.alloc(in_len) if in_len else 0
        if in_len:
            bufs.append((data, in_len, True))
        req.add(bufs)
        req.kick()
        rig.devices[1].drain()  # what the board's migration_pre_save does
        payload = drv.space.read(data, in_len) if in_len else b""
        return drv.space.read(resp, vscsi.RESP.size), payload

    def configured(self) -> Rig:
        rig = self.fresh_like()
        rig.extra["queues"] = rig.extra["drv"].bring_up(3, num=64)
        data = rig.extra["data"] = bytes(range(256)) * 2
        self._command(rig, 1, struct.pack(">BBIBHB", 0x2A, 0, 9, 0, 1, 0), out=data)
        resp, _ = self._command(rig, 2, bytes([0xFF]))  # no such opcode
        assert resp[10] == 2  # CHECK CONDITION: the CD holds sense data
        return rig

    def probe(self, rig: Rig) -> list:
        _, sense = self._command(rig, 2, bytes([0x03, 0, 0, 0, 18]), in_len=18)
        _, again = self._command(rig, 2, bytes([0x03, 0, 0, 0, 18]), in_len=18)
        _, block = self._command(rig, 1, struct.pack(">BBIBHB", 0x28, 0, 9, 0, 1, 0),
                                 in_len=512)
        return [sense, again, block == rig.extra["data"], rig.extra["queues"][2].get_used()]
