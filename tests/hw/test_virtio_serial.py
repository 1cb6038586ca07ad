"""virtio-serial with MULTIPORT, driven through its queues as Linux's virtio_console does:
the control handshake, names, open/close both ways, and flow control both ways."""

from __future__ import annotations

import struct

import pytest
from hwtest_util import CaptureChardev, wait_until
from virtio_driver import MODERN, Driver, make_machine

from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED
from pemu.hw.virtio import pci_types  # noqa: F401 - virtio-serial-pci
from pemu.hw.virtio import serial as vs
from pemu.hw.virtio.console import VirtioConsole
from pemu.qom import registry
from pemu.qom.registry import RegistryError

CTRL = struct.Struct("<IHH")
FEATURES = MODERN | 1 << vs.VIRTIO_CONSOLE_F_MULTIPORT


class PeerChardev(CaptureChardev):
    """A socket-like chardev: a peer comes and goes; output is taken ``room`` bytes at a
    time, the rest when the test says the backend is writable again."""

    def __init__(self, connected: bool = True, room: int | None = None) -> None:
        super().__init__()
        self.connected = connected
        self.room = room
        self.writable_callbacks: list = []

    @property
    def be_open(self) -> bool:
        return self.connected

    def connect(self, up: bool) -> None:
        self.connected = up
        self._emit(CHR_EVENT_OPENED if up else CHR_EVENT_CLOSED)

    def write_some(self, data: bytes) -> int:
        n = len(data) if self.room is None else min(self.room, len(data))
        self.output += data[:n]
        return n

    def notify_writable(self, callback) -> None:
        self.writable_callbacks.append(callback)


class Guest:
    """The guest driver's side: control queues and each port's pair of queues."""

    def __init__(self, dev: vs.VirtioSerial, control_buffers: int = 8) -> None:
        space, self.transport, self.irq = make_machine(dev)
        self.drv = Driver(space)
        self.queues = self.drv.bring_up(dev.num_queues, want=FEATURES, num=16)
        self.ctrl_bufs: dict[int, int] = {}
        for _ in range(control_buffers):
            self.post_control_buffer()

    def post_control_buffer(self) -> None:
        addr = self.drv.ram.alloc(64)
        head = self.queues[vs.CONTROL_RX].add([(addr, 64, True)])
        self.ctrl_bufs[head] = addr
        self.queues[vs.CONTROL_RX].kick()

    def send_control(self, nr: int, event: int, value: int) -> None:
        addr = self.drv.ram.alloc(8)
        self.drv.space.write(addr, CTRL.pack(nr, event, value))
        q = self.queues[vs.CONTROL_TX]
        q.add([(addr, 8, False)])
        q.kick()

    def control_messages(self) -> list[tuple[int, int, int, bytes]]:
        out = []
        for head, n in self.queues[vs.CONTROL_RX].get_used():
            data = self.drv.space.read(self.ctrl_bufs[head], n)
            out.append((*CTRL.unpack_from(data), data[8:]))
        return out

    def post_receive(self, nr: int, size: int) -> tuple[int, int]:
        addr = self.drv.ram.alloc(size)
        q = self.queues[vs.rx_queue_index(nr)]
        head = q.add([(addr, size, True)])
        q.kick()
        return head, addr

    def transmit(self, nr: int, *chunks: bytes) -> None:
        q = self.queues[vs.rx_queue_index(nr) + 1]
        bufs = []
        for chunk in chunks:
            addr = self.drv.ram.alloc(len(chunk))
            self.drv.space.write(addr, chunk)
            bufs.append((addr, len(chunk), False))
        q.add(bufs)
        q.kick()


def agent_setup(host_connected: bool = True, room: int | None = None):
    dev = vs.VirtioSerial(max_ports=3)
    console = CaptureChardev()
    agent = PeerChardev(host_connected, room)
    dev.add_port(console, console=True)
    dev.add_port(agent, name="org.qemu.guest_agent.0")
    return dev, console, agent, Guest(dev)


def test_config_and_queue_count():
    dev, *_ = agent_setup()
    assert dev.num_queues == 8  # (max_ports + 1) pairs: Linux asks for all of them
    assert vs.VirtioSerial().num_queues == 64
    assert vs.port_of_queue(5) == (1, True) and vs.port_of_queue(6) == (2, False)
    assert vs.port_of_queue(2) is None


def test_handshake_adds_ports_names_them_and_opens_the_connected_ones():
    dev, console, agent, guest = agent_setup()
    assert (console.fe_open, agent.fe_open) == (True, False)  # what query-chardev shows
    assert guest.drv.config(4, 4) == 3  # max_nr_ports
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    assert guest.control_messages() == [(0, vs.PORT_ADD, 1, b""), (1, vs.PORT_ADD, 1, b"")]
    guest.send_control(0, vs.PORT_READY, 1)
    assert guest.control_messages() == [(0, vs.CONSOLE_PORT, 1, b""),
                                        (0, vs.PORT_OPEN, 1, b"")]
    guest.send_control(1, vs.PORT_READY, 1)
    assert guest.control_messages() == [(1, vs.PORT_NAME, 1, b"org.qemu.guest_agent.0\0"),
                                        (1, vs.PORT_OPEN, 1, b"")]


def test_control_messages_wait_for_control_buffers():
    dev = vs.VirtioSerial(max_ports=3)
    dev.add_port(CaptureChardev())
    dev.add_port(CaptureChardev())
    guest = Guest(dev, control_buffers=1)  # room for one message only
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    assert guest.control_messages() == [(1, vs.PORT_ADD, 1, b"")]
    guest.post_control_buffer()
    assert guest.control_messages() == [(2, vs.PORT_ADD, 1, b"")]


def test_host_connect_and_disconnect_reach_the_guest():
    dev, _, agent, guest = agent_setup(host_connected=False)
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    guest.send_control(1, vs.PORT_READY, 1)
    msgs = guest.control_messages()
    assert (1, vs.PORT_OPEN, 1, b"") not in msgs  # nobody on the host side yet
    agent.connect(True)
    assert guest.control_messages() == [(1, vs.PORT_OPEN, 1, b"")]
    agent.connect(False)
    assert guest.control_messages() == [(1, vs.PORT_OPEN, 0, b"")]


def test_guest_open_reaches_the_chardev_and_input_waits_for_it():
    dev, _, agent, guest = agent_setup()
    events = []
    dev.on_port_open = lambda port, is_open: events.append((port.name, is_open))
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    guest.send_control(1, vs.PORT_READY, 1)
    head, addr = guest.post_receive(1, 64)
    agent.feed(b'{"execute":"guest-ping"}\n')
    rxq = guest.queues[vs.rx_queue_index(1)]
    assert not wait_until(lambda: rxq.used_idx() != 0, timeout=0.2)  # port closed: held
    assert agent.fe_open is False  # query-chardev: closed until the guest opens it
    guest.send_control(1, vs.PORT_OPEN, 1)
    assert agent.fe_open is True
    assert events == [("org.qemu.guest_agent.0", True)]
    assert wait_until(lambda: rxq.used_idx() == 1)
    assert rxq.get_used() == [(head, 25)]
    assert guest.drv.space.read(addr, 25) == b'{"execute":"guest-ping"}\n'
    guest.send_control(1, vs.PORT_OPEN, 0)
    assert agent.fe_open is False
    assert events[-1] == ("org.qemu.guest_agent.0", False)


def test_host_input_larger_than_the_buffers_arrives_whole_and_in_order():
    dev, _, agent, guest = agent_setup()
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    guest.send_control(1, vs.PORT_READY, 1)
    guest.send_control(1, vs.PORT_OPEN, 1)
    data = bytes(range(256)) * 40  # 10 KiB through 1 KiB buffers
    agent.feed(data)
    rxq = guest.queues[vs.rx_queue_index(1)]
    got = bytearray()
    for _ in range(10):
        head, addr = guest.post_receive(1, 1024)
        assert wait_until(lambda: rxq.used_idx() != rxq.last_used)
        for _, n in rxq.get_used():
            got += guest.drv.space.read(addr, n)
    assert bytes(got) == data


def test_guest_output_the_backend_cannot_take_is_held_not_lost():
    dev, _, agent, guest = agent_setup(room=5)
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    guest.send_control(1, vs.PORT_READY, 1)
    guest.send_control(1, vs.PORT_OPEN, 1)
    txq = guest.queues[vs.rx_queue_index(1) + 1]
    guest.transmit(1, b"hello ", b"world")  # one buffer chain of 11 bytes
    guest.transmit(1, b"!second")
    assert agent.output == b"hello"
    assert txq.get_used() == []  # still the device's: the guest may not reuse it
    while agent.writable_callbacks:
        agent.writable_callbacks.pop(0)()
    assert agent.output == b"hello world!second"
    assert [n for _, n in txq.get_used()] == [0, 0]


def test_console_port_output_and_unplugged_ports():
    dev, console, _, guest = agent_setup()
    guest.send_control(vs.NO_PORT, vs.DEVICE_READY, 1)
    guest.transmit(0, b"hvc0 says hi\n")
    assert console.output == b"hvc0 says hi\n"
    guest.transmit(2, b"nobody listens")  # port 2 was never added: completed, dropped
    assert guest.queues[vs.rx_queue_index(2) + 1].get_used() == [(0, 0)]


def test_without_multiport_port_zero_is_the_console():
    dev = vs.VirtioSerial(max_ports=2)
    console = CaptureChardev()
    dev.add_port(console, console=True)
    space, _, _ = make_machine(dev)
    drv = Driver(space)
    rx, tx = drv.bring_up(2, want=MODERN, num=8)
    a = drv.ram.alloc(3)
    drv.space.write(a, b"old")
    tx.add([(a, 3, False)])
    tx.kick()
    assert console.output == b"old"


def test_port_numbers_and_names_are_checked():
    dev = vs.VirtioSerial(max_ports=2)
    assert dev.add_port(CaptureChardev(), name="a").nr == 1  # 0 is kept for a console
    for kwargs, why in (({"nr": 0}, "reserved"), ({"nr": 1}, "in use"),
                        ({"nr": 2}, "out of range"), ({"name": "a", "nr": None}, "all 2")):
        try:
            dev.add_port(CaptureChardev(), **kwargs)
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError(f"{kwargs} accepted")


class FakeBoard:
    def __init__(self) -> None:
        self.mmio: list = []
        self.space = make_machine(None)[0]

    def add_virtio(self, device, name: str) -> None:
        self.mmio.append((name, device))


class FakeContext:
    """What the device factories ask of the command line (from_config.DeviceContext)."""

    def __init__(self) -> None:
        self.board = FakeBoard()
        self.devices: dict[str, object] = {}
        self.chardevs: dict[str, CaptureChardev] = {}

    def chardev(self, driver: str, chardev_id: str | None, name: str) -> CaptureChardev:
        return self.chardevs.setdefault(chardev_id or "", CaptureChardev())

    def plug(self, driver: str, dev_id: str, **opts: str) -> object:
        info = registry.lookup(registry.DEVICE, driver)
        device = self.devices[dev_id] = info.factory(self, {"driver": driver, **opts}, dev_id)
        return device


def test_ports_plug_into_the_bus_named_or_the_last_device():
    ctx = FakeContext()
    first = ctx.plug("virtio-serial-device", "vser0")
    second = ctx.plug("virtio-serial-pci", "vser1", max_ports="4")  # a PCI function
    assert second.virtio.num_queues == 10 and second.class_code == 0x078000
    agent = ctx.plug("virtserialport", "p1", chardev="a", name="org.qemu.guest_agent.0",
                     bus="vser0.0")
    assert agent.nr == 1 and first.ports[1] is agent
    console = ctx.plug("virtconsole", "c0", chardev="b")  # no bus=: the last device
    assert console.nr == 0 and second.virtio.ports[0] is console and console.console
    with pytest.raises(RegistryError, match="Bus 'nope.0' not found"):
        ctx.plug("virtserialport", "p2", chardev="c", bus="nope.0")
    with pytest.raises(RegistryError, match="already in use"):
        ctx.plug("virtserialport", "p3", chardev="d", nr="1", bus="vser0.0")
    assert ctx.board.mmio == []  # the factories plugged nothing themselves


def test_a_lone_virtconsole_is_the_single_port_console_on_its_own_slot():
    ctx = FakeContext()
    with pytest.raises(RegistryError, match="No 'virtio-serial-bus' bus"):
        ctx.plug("virtserialport", "p1", chardev="a")
    console = ctx.plug("virtconsole", "c0", chardev="b")
    assert isinstance(console, VirtioConsole) and console.num_queues == 2
    assert ctx.board.mmio == [("c0", console)]
    assert not console.device_features() & 1 << vs.VIRTIO_CONSOLE_F_MULTIPORT
