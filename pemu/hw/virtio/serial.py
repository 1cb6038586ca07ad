"""virtio-serial (spec 5.3): the console device with VIRTIO_CONSOLE_F_MULTIPORT.

Up to ``max_ports`` ports, each backed by a chardev.  Queues: port 0's receiveq and
transmitq (0, 1), the control receiveq and transmitq (2, 3), then port n's pair at
2n+2, 2n+3.  The control queues carry 8-byte messages (``id, event, value``):

  driver -> device: DEVICE_READY, PORT_READY (the driver set a port up),
                    PORT_OPEN (a guest program opened or closed the port)
  device -> driver: PORT_ADD, CONSOLE_PORT (make it an hvc), PORT_NAME (+ the name),
                    PORT_OPEN (the host side connected or went away)

Flow control, both ways, loses nothing: host input waits in the chardev (its
``can_receive`` says 0) while the guest has no receive buffer posted or has the port
closed; guest output the backend cannot take now stays in its transmit buffer, which
is completed only once the chardev took it all (``write_some``/``notify_writable``).

Without MULTIPORT negotiated (an old driver, or ``VirtioConsole``) the device is one
console port on queues 0 and 1.
"""

from __future__ import annotations

import struct
import sys
from collections import deque
from collections.abc import Callable

from pemu.chardev.base import CHR_EVENT_OPENED, Chardev
from pemu.hw.virtio.device import VIRTIO_ID_CONSOLE, VirtioDevice, bit
from pemu.hw.virtio.serial_control import (  # noqa: F401 - part of this module's API
    CONSOLE_PORT,
    CONTROL,
    CONTROL_RX,
    CONTROL_TX,
    DEVICE_READY,
    NO_PORT,
    PORT_ADD,
    PORT_NAME,
    PORT_OPEN,
    PORT_READY,
    PORT_REMOVE,
    RESIZE,
)
from pemu.hw.virtio.serial_state import RX_CHUNK, SerialPortsState, retake_tx
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, VirtqueueError

VIRTIO_CONSOLE_F_SIZE = 0
VIRTIO_CONSOLE_F_MULTIPORT = 1
VIRTIO_CONSOLE_F_EMERG_WRITE = 2

DEFAULT_MAX_PORTS = 31  # QEMU's default: 64 queues


def rx_queue_index(nr: int) -> int:
    return 0 if nr == 0 else 2 * nr + 2


def port_of_queue(index: int) -> tuple[int, bool] | None:
    """(port number, is its transmitq) for a data queue; None for the control queues."""
    if index < 2:
        return 0, index == 1
    if index < 4:
        return None
    return index // 2 - 1, index % 2 == 1


class SerialPort:
    """One port: its chardev and what each side knows of the other."""

    def __init__(self, device: VirtioSerial, chardev: Chardev, nr: int,
                 name: str | None, console: bool, id: str | None) -> None:
        self.device = device
        self.chardev = chardev
        self.nr = nr
        self.name = name
        self.console = console
        self.id = id
        self.guest_ready = False  # the driver set the port up (PORT_READY)
        self.guest_open = False  # a guest program has it open (PORT_OPEN from the driver)
        self.host_open = False  # the chardev has a peer (a socket client connected)
        self.pending = bytearray()  # host input taken from the chardev, not yet in a buffer
        self.tx_held: tuple[VirtqElement, bytes] | None = None  # output the chardev refused
        self.tx_waiting = False  # notify_writable asked, not answered yet
        # after a load: tx_held is still in the ring; this many of its bytes were taken
        self.tx_retake: int | None = None

    def describe(self) -> str:
        return self.id or self.name or f"port{self.nr}"


class VirtioSerial(SerialPortsState, VirtioDevice):
    """``VirtioSerial(max_ports=31)``, then ``add_port(chardev, name=...)`` per port."""

    device_id = VIRTIO_ID_CONSOLE
    queue_size = 128
    type_name = "virtio-serial-device"
    offers_multiport = True
    # state: serial_state.SerialPortsState.vmstate

    def __init__(self, max_ports: int = DEFAULT_MAX_PORTS, cols: int = 80, rows: int = 25,
                 id: str | None = None) -> None:
        super().__init__(id)
        highest = 31 if self.offers_multiport else 1  # a single-port console has one
        if not 1 <= max_ports <= highest:
            raise ValueError(f"max_ports={max_ports} (1..{highest})")
        self.max_ports = max_ports
        self.num_queues = 2 * (max_ports + 1) if self.offers_multiport else 2
        self.cols = cols
        self.rows = rows
        self.ports: dict[int, SerialPort] = {}
        self._control_out: deque[bytes] = deque()  # messages waiting for a control buffer
        self._device_ready = False
        # Called as on_port_open(port, open) when the guest opens or closes a port
        # (QMP VSERPORT_CHANGE); None if nobody listens.
        self.on_port_open: Callable[[SerialPort, bool], None] | None = None

    # -- ports ---------------------------------------------------------------------------
    def free_port_number(self, console: bool) -> int:
        """QEMU's numbering: port 0 is kept for a console; others take the lowest free."""
        start = 0 if console else 1
        for nr in range(start, self.max_ports):
            if nr not in self.ports:
                return nr
        raise ValueError(f"all {self.max_ports} ports are in use (max_ports)")

    def add_port(self, chardev: Chardev, nr: int | None = None, name: str | None = None,
                 console: bool = False, id: str | None = None) -> SerialPort:
        with self.lock:
            nr = self.free_port_number(console) if nr is None else nr
            if not 0 <= nr < self.max_ports:
                raise ValueError(f"port number {nr} out of range (max_ports={self.max_ports})")
            if nr in self.ports:
                raise ValueError(f"port number {nr} is already in use")
            if nr == 0 and not console and self.offers_multiport:
                raise ValueError("port number 0 is reserved for virtconsole devices")
            if name is not None and any(p.name == name for p in self.ports.values()):
                raise ValueError(f"a port named '{name}' already exists")
            port = self.ports[nr] = SerialPort(self, chardev, nr, name, console, id)
            # query-chardev's frontend-open: a console is open from the start (as
            # QEMU's virtconsole); a port only once a guest program opens it, which
            # libvirt reads to decide whether the guest agent is there
            chardev.set_fe_open(console)
            if self._device_ready:
                self._send_control(nr, PORT_ADD, 1)  # hot-plugged after the driver came up
        chardev.set_receiver(lambda data: self._receive(port, data),
                             lambda: self._can_receive(port))
        chardev.set_event_handler(lambda event: self._host_event(port, event))
        return port

    @property
    def multiport(self) -> bool:
        return bool(self.driver_features & bit(VIRTIO_CONSOLE_F_MULTIPORT))

    def _port_usable(self, port: SerialPort) -> bool:
        """The guest has the port up and open (a port without multiport is the console,
        always open)."""
        if not self.multiport:
            return port.nr == 0
        return port.guest_ready and port.guest_open

    # -- what the device offers ---------------------------------------------------------------
    def device_features(self) -> int:
        features = bit(VIRTIO_CONSOLE_F_SIZE) | bit(VIRTIO_CONSOLE_F_EMERG_WRITE)
        return features | (bit(VIRTIO_CONSOLE_F_MULTIPORT) if self.offers_multiport else 0)

    def config_bytes(self) -> bytes:
        return struct.pack("<HHII", self.cols, self.rows, self.max_ports, 0)

    def config_write(self, offset: int, data: bytes) -> None:
        if offset == 8 and data:
            # emerg_wr: a character written before the queues work (early console).
            port = self.ports.get(0) or next(iter(self.ports.values()), None)
            if port is not None:
                port.chardev.write(data[:1])

    # -- queue kicks (vCPU thread, transport lock held) -------------------------------------
    def queue_notified(self, vq: VirtQueue) -> None:
        if self.multiport and vq.index == CONTROL_TX:
            while (elem := vq.pop()) is not None:
                message = b"".join(bytes(b) for b in elem.out_bufs)
                self.complete(vq, elem, 0)
                self._control_received(message)
            return
        if self.multiport and vq.index == CONTROL_RX:
            self._flush_control()
            return
        where = port_of_queue(vq.index)
        port = self.ports.get(where[0]) if where is not None else None
        if port is None:
            self._discard(vq, where is not None and where[1])
            return
        if where[1]:
            self._drain_tx(port)
        else:
            self._fill(port)
            if not port.pending:
                port.chardev.accept_input()

    def _discard(self, vq: VirtQueue, is_tx: bool) -> None:
        """Output to a port nobody plugged is dropped; receive buffers stay posted."""
        if is_tx:
            while (elem := vq.pop()) is not None:
                self.complete(vq, elem, 0)

    # -- control messages -------------------------------------------------------------------
    def _send_control(self, nr: int, event: int, value: int, extra: bytes = b"") -> None:
        self._control_out.append(CONTROL.pack(nr, event, value) + extra)
        self._flush_control()

    def _flush_control(self) -> None:
        if not self.driver_ok or not self.multiport:
            return
        vq = self.queues[CONTROL_RX]
        try:
            while self._control_out:
                elem = vq.pop()
                if elem is None:
                    return  # the rest goes when the driver posts more buffers
                message = self._control_out.popleft()
                self.complete(vq, elem, elem.write_in(0, message))
        except VirtqueueError as e:
            self._error(str(e))

    def _control_received(self, message: bytes) -> None:
        if len(message) < CONTROL.size:
            return  # a short message means nothing; the Linux driver never sends one
        nr, event, value = CONTROL.unpack_from(message)
        if event == DEVICE_READY:
            if not value:
                print(f"pemu: virtio-serial {self.id or ''}: the guest driver failed to "
                      "initialise", file=sys.stderr)
                return
            self._device_ready = True
            for port_nr in sorted(self.ports):
                self._send_control(port_nr, PORT_ADD, 1)
            return
        port = self.ports.get(nr)
        if port is None:
            return
        if event == PORT_READY:
            if not value:
                return  # the guest could not add it: the port stays unused
            port.guest_ready = True
            if port.console:
                self._send_control(nr, CONSOLE_PORT, 1)
            if port.name is not None:
                self._send_control(nr, PORT_NAME, 1, port.name.encode() + b"\0")
            if port.host_open:
                self._send_control(nr, PORT_OPEN, 1)
        elif event == PORT_OPEN:
            self._guest_open(port, bool(value))

    def _guest_open(self, port: SerialPort, is_open: bool) -> None:
        if port.guest_open == is_open:
            return
        port.guest_open = is_open
        port.chardev.set_fe_open(is_open)
        if self.on_port_open is not None and not port.console:
            self.on_port_open(port, is_open)
        if is_open:
            port.chardev.accept_input()
            self._drain_tx(port)

    # -- host side (I/O thread) -------------------------------------------------------------
    def _host_event(self, port: SerialPort, event: str) -> None:
        with self.lock:
            port.host_open = event == CHR_EVENT_OPENED
            if port.guest_ready and self.multiport:
                self._send_control(port.nr, PORT_OPEN, int(port.host_open))

    def _can_receive(self, port: SerialPort) -> int:
        with self.lock:
            if port.pending or not self.driver_ok or not self._port_usable(port):
                return 0
            try:
                return RX_CHUNK if self.queues[rx_queue_index(port.nr)].has_work() else 0
            except Exception:  # noqa: BLE001 - ring outside RAM: treat as no room
                return 0

    def _receive(self, port: SerialPort, data: bytes) -> None:
        with self.lock:
            port.pending += data
            self._fill(port)

    def _fill(self, port: SerialPort) -> None:
        """Move a port's pending input into posted receive buffers; keep the rest."""
        if not self.driver_ok or not self._port_usable(port):
            return
        vq = self.queues[rx_queue_index(port.nr)]
        try:
            while port.pending:
                elem = vq.pop()
                if elem is None:
                    return
                n = elem.write_in(0, bytes(port.pending))
                del port.pending[:n]
                self.complete(vq, elem, n)
        except VirtqueueError as e:
            self._error(str(e))

    # -- guest output ---------------------------------------------------------------------------
    def _drain_tx(self, port: SerialPort) -> None:
        """Hand the port's transmit buffers to its chardev, in order, as far as it takes
        them; a buffer it took only part of waits for ``notify_writable``."""
        if not self.driver_ok:
            return
        vq = self.queues[rx_queue_index(port.nr) + 1]
        try:
            if port.tx_retake is not None and not port.tx_waiting:
                retake_tx(self, port, vq)
            while not port.tx_waiting:
                if port.tx_held is None:
                    elem = vq.pop()
                    if elem is None:
                        return
                    port.tx_held = (elem, b"".join(bytes(b) for b in elem.out_bufs))
                elem, data = port.tx_held
                taken = port.chardev.write_some(data) if data else 0
                if taken < len(data):
                    port.tx_held = (elem, data[taken:])
                    port.tx_waiting = True
                    port.chardev.notify_writable(lambda: self._writable(port))
                    return
                port.tx_held = None
                self.complete(vq, elem, 0)
        except VirtqueueError as e:
            self._error(str(e))

    def _writable(self, port: SerialPort) -> None:
        with self.lock:
            port.tx_waiting = False
            self._drain_tx(port)

    # -- errors and reset ------------------------------------------------------------------------
    def _error(self, why: str) -> None:
        if self.transport is not None:
            self.transport.device_error(why)

    def device_reset(self) -> None:
        super().device_reset()
        self._control_out.clear()
        self._device_ready = False
        for port in self.ports.values():
            port.pending.clear()
            port.tx_held = port.tx_retake = None
            port.guest_ready = False
            if port.guest_open:
                port.guest_open = False
                port.chardev.set_fe_open(False)
