"""virtio-vsock (spec 5.10) served in userspace: ``-device virtio-vsock-device`` /
``virtio-vsock-pci``, ``guest-cid=N,uds-path=PATH``.

QEMU's ``vhost-vsock-pci`` hands the queues to the host kernel's vhost-vsock module
and the host talks AF_VSOCK; this device needs no module: pemu runs the packet
protocol itself and bridges each stream to a host UNIX socket, as Firecracker does
(pemu/hw/virtio/vsock_host.py says how the sockets are named).

Queues: rx (0, buffers we fill with packets for the guest), tx (1, the guest's
packets), event (2, buffers for TRANSPORT_RESET).  Packets for the guest wait in
``rx_pending`` until the driver posts receive buffers; a packet longer than a buffer
is split.  While too many wait, the tx queue is left alone, so a guest that never
posts receive buffers cannot make pemu queue replies without bound.
"""

from __future__ import annotations

import struct
from collections import deque

from pemu.hw.virtio.device import VirtioDevice
from pemu.hw.virtio.virtqueue import VirtQueue, VirtqueueError
from pemu.hw.virtio.vsock_host import VsockHost
from pemu.hw.virtio.vsock_packet import (
    EVENT_TRANSPORT_RESET,
    HEADER_SIZE,
    OP_RW,
    Packet,
)
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import DEVICE, Property, TypeInfo, register

VIRTIO_ID_VSOCK = 19
RX_QUEUE = 0
TX_QUEUE = 1
EVENT_QUEUE = 2
MAX_PAYLOAD = 64 * 1024  # the most a guest packet may carry (Linux sends <= 64 KiB)
MAX_RX_PENDING = 1024  # packets waiting for the guest before the tx queue pauses
FIRST_GUEST_CID = 3  # 0-2 are reserved (hypervisor, local, host)


class VirtioVsock(VirtioDevice):
    """``VirtioVsock(guest_cid, uds_path)``."""

    device_id = VIRTIO_ID_VSOCK
    num_queues = 3
    queue_size = 128
    type_name = "virtio-vsock-device"
    # Migrates as QEMU's vhost-vsock does: no state beyond the transport's (vmstate
    # None); open streams are host sockets of the source and do not move, so after a
    # load the board calls ``transport_reset``: the guest drops every connection and
    # reconnects through the destination's sockets.

    def __init__(self, guest_cid: int, uds_path: str, id: str | None = None) -> None:
        super().__init__(id)
        self.guest_cid = guest_cid
        self.rx_pending: deque[Packet] = deque()
        self._tx_paused = False  # guest packets wait in the tx ring for rx_pending to drain
        self._in_tx = False
        self.host = VsockHost(uds_path, guest_cid, lambda: self.lock, self._to_guest)

    def config_bytes(self) -> bytes:
        return struct.pack("<Q", self.guest_cid)

    # -- guest -> host -----------------------------------------------------------------------
    def queue_notified(self, vq: VirtQueue) -> None:
        if vq.index == TX_QUEUE:
            self._process_tx(vq)
        elif vq.index == RX_QUEUE:
            self._fill_rx()
        # event queue: its buffers wait in the ring until an event needs one

    def _process_tx(self, vq: VirtQueue) -> None:
        self._in_tx = True
        try:
            while True:
                self._tx_paused = len(self.rx_pending) >= MAX_RX_PENDING
                if self._tx_paused or (elem := vq.pop()) is None:
                    return
                raw = elem.read_out(0, HEADER_SIZE)
                if len(raw) == HEADER_SIZE:
                    pkt, length = Packet.parse_header(raw)
                    if length <= MAX_PAYLOAD:
                        if pkt.op == OP_RW:
                            pkt.payload = elem.read_out(HEADER_SIZE, length)
                        self.host.from_guest(pkt)
                    # a longer packet or a short header is dropped: no stream trusts it
                self.complete(vq, elem, 0)
        finally:
            self._in_tx = False

    # -- host -> guest ---------------------------------------------------------------------
    def _to_guest(self, pkt: Packet) -> None:
        self.rx_pending.append(pkt)
        self._fill_rx()

    def _fill_rx(self) -> None:
        if not self.driver_ok or not self.queues:
            return  # the packets wait for the driver
        vq = self.queues[RX_QUEUE]
        try:
            while self.rx_pending:
                elem = vq.pop()
                if elem is None:
                    return
                pkt = self.rx_pending[0]
                room = max(0, elem.in_len - HEADER_SIZE)
                part = pkt.payload[:room]
                written = elem.write_in(0, pkt.header(len(part)) + part)
                self.complete(vq, elem, written)
                if len(part) < len(pkt.payload):
                    pkt.payload = pkt.payload[len(part):]  # the rest in the next buffer
                    continue
                self.rx_pending.popleft()
                if pkt.op == OP_RW:
                    self.host.chunk_delivered((pkt.src_port, pkt.dst_port))
        except VirtqueueError as e:
            if self.transport is not None:
                self.transport.device_error(str(e))
            return
        finally:
            self._resume_tx()

    def _resume_tx(self) -> None:
        """Guest packets left in the tx ring while replies were backed up go now."""
        if self._tx_paused and not self._in_tx and len(self.rx_pending) < MAX_RX_PENDING // 2:
            self._process_tx(self.queues[TX_QUEUE])

    # -- events -------------------------------------------------------------------------------
    def transport_reset(self) -> bool:
        """Every stream ends and the guest is told with TRANSPORT_RESET (after a
        restore or migration, as vhost-vsock does); False if it had no event buffer."""
        with self.lock:
            self.host.reset_all()
            self.rx_pending.clear()
            if not self.driver_ok:
                return False
            vq = self.queues[EVENT_QUEUE]
            try:
                elem = vq.pop()
                if elem is None:
                    return False
                written = elem.write_in(0, struct.pack("<I", EVENT_TRANSPORT_RESET))
                self.complete(vq, elem, written)
            except VirtqueueError as e:
                if self.transport is not None:
                    self.transport.device_error(str(e))
                return False
            return True

    def device_reset(self) -> None:
        super().device_reset()
        self.host.reset_all()
        self.rx_pending.clear()
        self._tx_paused = False

    def close(self) -> None:
        self.host.close()


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioVsock:
    driver = opts.get("driver", "virtio-vsock-device")
    text = opts.get("guest-cid", "")
    try:
        cid = int(text, 0)
    except ValueError:
        raise OptionError(f"-device {driver}: guest-cid={text}: needs a number "
                          f"(>= {FIRST_GUEST_CID})") from None
    if not FIRST_GUEST_CID <= cid < 0xFFFFFFFF:
        raise OptionError(f"-device {driver}: guest-cid={cid}: must be {FIRST_GUEST_CID} "
                          "or more (0-2 are reserved, 2 is the host)")
    path = opts.get("uds-path")
    if not path:
        raise OptionError(f"-device {driver}: needs uds-path=PATH (host programs connect "
                          "there; guest connections to port P go to PATH_P)")
    try:
        device = VirtioVsock(cid, path, id=name)
    except OSError as e:
        raise OptionError(f"-device {driver}: uds-path={path}: {e.strerror or e}") from None
    ctx.closers.append(device)  # type: ignore[attr-defined] # the socket thread
    return device


register(TypeInfo(
    "virtio-vsock-device", DEVICE, "Virtio vsock, served by pemu (no vhost-vsock module): "
    "streams bridged to host UNIX sockets", bus="virtio-bus", factory=_create,
    properties=(
        Property("guest-cid", "uint64", description="the guest's context ID (3 or more)"),
        Property("uds-path", "str", description="host UNIX socket: host programs connect "
                 "here (CONNECT <port>), guest connections to port P go to <uds-path>_P"),
    )))
