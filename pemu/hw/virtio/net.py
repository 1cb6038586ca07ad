"""virtio-net (spec 5.1) on a netdev backend: ``-device virtio-net-device,netdev=ID``.

Queues: 0 receiveq, 1 transmitq, 2 controlq.  With ``mq=on`` and a backend of N queues
(tap ``queues=N``): N pairs (receiveq i = 2i, transmitq i = 2i+1) and the control queue
at 2N once the driver takes VIRTIO_NET_F_MQ; the driver chooses how many pairs it uses
(CTRL_MQ VQ_PAIRS_SET), pair i talks to the backend's queue i.  Every buffer starts
with the 12-byte ``virtio_net_hdr`` (VERSION_1 always has ``num_buffers``).

* TX (vCPU thread, on the driver's kick): each chain is one frame; a checksum the
  driver left to us (NEEDS_CSUM, with VIRTIO_NET_F_CSUM) is completed in software,
  because most backends (slirp, sockets) want finished frames.  The frame goes to the
  backend, which only queues it: nothing here waits for the network.
* vnet header pass-through: when the backend carries a virtio_net_hdr (TAP with
  vnet_hdr=on), the device also offers TSO/ECN/UFO both ways (as QEMU does) and the
  header goes through unchanged: the host kernel completes checksums and segments,
  and hands the guest what its driver negotiated (``set_offload``).
* RX (the backend's thread): a frame goes into the driver's posted buffers, spread
  over several chains with VIRTIO_NET_F_MRG_RXBUF; with too little room it stays
  queued in the link (pemu/net/client.py) until the driver posts more and kicks.
* A driver that sends nonsense (short header, oversized frame, GSO we did not offer,
  a checksum offset outside the frame) loses that frame, with a rate-limited
  warning; a broken ring itself is the transport's business (DEVICE_NEEDS_RESET).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.virtio.device import VIRTIO_ID_NET, VirtioDevice, bit
from pemu.hw.virtio.virtqueue import VirtQueue, VirtqueueError
from pemu.net.checksum import internet_checksum
from pemu.net.client import NetClient, use_vnet_hdr
from pemu.net.options import parse_mac
from pemu.net.ratelimit import RateLimitedWarning
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import DEVICE, Property, TypeInfo, register

# feature bits (spec 5.1.3)
F_CSUM = 0
F_GUEST_CSUM = 1
F_MAC = 5
F_GUEST_TSO4, F_GUEST_TSO6, F_GUEST_ECN, F_GUEST_UFO = 7, 8, 9, 10
F_HOST_TSO4, F_HOST_TSO6, F_HOST_ECN, F_HOST_UFO = 11, 12, 13, 14
F_MRG_RXBUF = 15
F_STATUS = 16
F_CTRL_VQ = 17
F_CTRL_RX = 18
F_GUEST_ANNOUNCE = 21
F_MQ = 22
F_CTRL_MAC_ADDR = 23

# the -device properties that switch a feature (QEMU's names), all on by default
FEATURE_PROPERTIES = {"csum": F_CSUM, "guest_csum": F_GUEST_CSUM, "mrg_rxbuf": F_MRG_RXBUF,
                      "status": F_STATUS, "ctrl_vq": F_CTRL_VQ, "ctrl_rx": F_CTRL_RX,
                      "guest_announce": F_GUEST_ANNOUNCE, "ctrl_mac_addr": F_CTRL_MAC_ADDR,
                      "guest_tso4": F_GUEST_TSO4, "guest_tso6": F_GUEST_TSO6,
                      "guest_ecn": F_GUEST_ECN, "guest_ufo": F_GUEST_UFO,
                      "host_tso4": F_HOST_TSO4, "host_tso6": F_HOST_TSO6,
                      "host_ecn": F_HOST_ECN, "host_ufo": F_HOST_UFO}
NEEDS_CTRL_VQ = (F_CTRL_RX, F_GUEST_ANNOUNCE, F_CTRL_MAC_ADDR, F_MQ)
# offered only with a vnet header on the link: nothing here segments in software
SEGMENTATION = (F_GUEST_TSO4, F_GUEST_TSO6, F_GUEST_ECN, F_GUEST_UFO,
                F_HOST_TSO4, F_HOST_TSO6, F_HOST_ECN, F_HOST_UFO)
UFO = (F_GUEST_UFO, F_HOST_UFO)
# a feature the spec lets the device offer only together with another
NEEDS = {F_GUEST_TSO4: F_GUEST_CSUM, F_GUEST_TSO6: F_GUEST_CSUM, F_GUEST_UFO: F_GUEST_CSUM,
         F_GUEST_ECN: F_GUEST_TSO4, F_HOST_TSO4: F_CSUM, F_HOST_TSO6: F_CSUM,
         F_HOST_UFO: F_CSUM, F_HOST_ECN: F_HOST_TSO4}

S_LINK_UP = 1
S_ANNOUNCE = 2

HDR = struct.Struct("<BBHHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
HDR_SIZE = HDR.size  # num_buffers: 12 bytes
HDR_F_NEEDS_CSUM = 1
HDR_F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_ECN = 1, 3, 4, 0x80
# which negotiated feature lets the driver send each GSO type
GSO_FEATURE = {GSO_TCPV4: F_HOST_TSO4, GSO_UDP: F_HOST_UFO, GSO_TCPV6: F_HOST_TSO6}
MAX_FRAME = 65535 + 18  # the largest frame any backend could carry (QEMU's limit)

# control queue (spec 5.1.6.5)
CTRL_RX, CTRL_MAC, CTRL_ANNOUNCE, CTRL_MQ = 0, 1, 3, 4
CTRL_MQ_VQ_PAIRS_SET = 0
MAX_QUEUE_PAIRS = 16  # tap's queues= limit (QEMU allows more with vhost)
CTRL_RX_PROMISC, CTRL_RX_ALLMULTI = 0, 1
CTRL_MAC_TABLE_SET, CTRL_MAC_ADDR_SET = 0, 1
CTRL_ANNOUNCE_ACK = 0
CTRL_OK, CTRL_ERR = 0, 1
MAC_TABLE_MAX = 64  # entries (QEMU's MAC_TABLE_ENTRIES)

RX_QUEUE, TX_QUEUE, CTRL_QUEUE = 0, 1, 2
BROADCAST = b"\xff" * 6
_default_macs = itertools.count(0x56)


class VirtioNet(VirtioDevice, NetClient):
    """``VirtioNet(mac=b'RT\\x00\\x124V', features=...)``; peer it with a backend."""

    device_id = VIRTIO_ID_NET
    num_queues = 3
    queue_size = 256
    type_name = "virtio-net-device"
    kind = "nic"
    # What the driver set through the control queue and the link state; frames in
    # flight are not state (QEMU does not migrate its net queues either).
    vmstate = VMState("virtio-net", 1, (
        VMStateField("mac", "bytes", max=6), VMStateField("status", "u16"),
        VMStateField("promisc", "bool"), VMStateField("allmulti", "bool"),
        VMStateField("mac_table", "bytes", max=6 * 2 * MAC_TABLE_MAX),
        VMStateField("multi_start", "u32", max=2 * MAC_TABLE_MAX),
        VMStateField("uni_overflow", "bool"), VMStateField("multi_overflow", "bool")))

    def __init__(self, mac: bytes | None = None, features: int | None = None,
                 id: str | None = None, queue_pairs: int = 1) -> None:
        VirtioDevice.__init__(self, id)
        NetClient.__init__(self, id or "virtio-net")
        self.perm_mac = mac or bytes([0x52, 0x54, 0x00, 0x12, 0x34, next(_default_macs) & 0xFF])
        if features is None:
            features = sum(bit(b) for b in FEATURE_PROPERTIES.values())
        self.max_pairs = queue_pairs
        self.num_queues = 2 * queue_pairs + 1
        if queue_pairs > 1:
            features |= bit(F_MQ)
        if not features & bit(F_CTRL_VQ):
            features &= ~sum(bit(b) for b in NEEDS_CTRL_VQ)
        self.features = features | bit(F_MAC)
        self.warn = RateLimitedWarning(f"pemu: {self.type_name} {self.name}")
        self.reset_state()

    def reset_state(self) -> None:
        self.mac = self.perm_mac
        self.status = 0 if self.link_down else S_LINK_UP
        self.promisc = True  # until the driver sets its receive mode (as QEMU's)
        self.allmulti = False
        self.mac_table = b""  # unicast then multicast entries, 6 bytes each
        self.multi_start = 0  # index of the first multicast entry
        self.uni_overflow = False  # more entries than the table holds: accept them all
        self.multi_overflow = False
        self.pairs = 1  # queue pairs in use: the driver asks for more through CTRL_MQ

    # -- config space and features ------------------------------------------------
    def device_features(self) -> int:
        features = self.features
        if not self.vnet_hdr_len:
            features &= ~sum(bit(b) for b in SEGMENTATION)
        elif self.peer is None or not self.peer.has_ufo():
            features &= ~sum(bit(b) for b in UFO)
        for feature, needs in NEEDS.items():
            if not features & bit(needs):
                features &= ~bit(feature)
        return features

    def pass_vnet_hdr_to_peer(self) -> None:
        """Once peered: a backend that carries vnet headers gets the guest's (QEMU's
        ``qemu_using_vnet_hdr``); call before the driver reads the features."""
        if self.peer is not None and self.peer.has_vnet_hdr():
            use_vnet_hdr(self, self.peer, HDR_SIZE)

    def features_negotiated(self, features: int) -> None:
        super().features_negotiated(features)
        self._tell_peer_offloads()

    def _tell_peer_offloads(self) -> None:
        if self.vnet_hdr_len and self.peer is not None:
            self.peer.set_offload(self.negotiated(F_GUEST_CSUM), self.negotiated(F_GUEST_TSO4),
                                  self.negotiated(F_GUEST_TSO6), self.negotiated(F_GUEST_ECN),
                                  self.negotiated(F_GUEST_UFO))

    def config_bytes(self) -> bytes:
        return self.mac + struct.pack("<HH", self.status, self.max_pairs)

    def config_write(self, offset: int, data: bytes) -> None:
        # Legacy drivers wrote the MAC here; a modern one uses CTRL_MAC_ADDR_SET, but
        # Linux still writes it when it lacks that feature.
        if offset < 6 and not self.negotiated(F_CTRL_MAC_ADDR):
            mac = bytearray(self.mac)
            mac[offset:offset + len(data)] = data[:6 - offset]
            self.mac = bytes(mac)

    def negotiated(self, feature: int) -> bool:
        return bool(self.driver_features & bit(feature))

    def device_reset(self) -> None:
        super().device_reset()
        self.reset_state()
        self._tell_peer_offloads()  # no driver: whole, checksummed frames only

    def describe(self) -> str:
        return f"model={self.type_name},macaddr={':'.join(f'{b:02x}' for b in self.mac)}"

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        mac, table, start = state["mac"], state["mac_table"], state["multi_start"]
        assert isinstance(mac, bytes) and isinstance(table, bytes) and isinstance(start, int)
        if len(mac) != 6:
            raise VMStateInvalid("mac", f"{len(mac)} bytes, not 6")
        if len(table) % 6:
            raise VMStateInvalid("mac_table", f"{len(table)} bytes: not whole MAC addresses")
        if start > len(table) // 6:
            raise VMStateInvalid("multi_start", f"{start} is past the {len(table) // 6} "
                                 "entries of the table")

    def rx_filter(self) -> dict[str, object]:
        """QMP ``query-rx-filter``'s RxFilterInfo for this NIC."""
        def mac_text(mac: bytes) -> str:
            return ":".join(f"{b:02x}" for b in mac)

        with self.lock:
            table = [self.mac_table[i:i + 6] for i in range(0, len(self.mac_table), 6)]
            return {
                "name": self.name, "promiscuous": self.promisc,
                "multicast": "all" if self.allmulti else "normal", "unicast": "normal",
                "vlan": "all", "broadcast-allowed": True,
                "multicast-overflow": self.multi_overflow,
                "unicast-overflow": self.uni_overflow, "main-mac": mac_text(self.mac),
                "vlan-table": [],
                "unicast-table": [mac_text(m) for m in table[:self.multi_start]],
                "multicast-table": [mac_text(m) for m in table[self.multi_start:]]}

    # -- link state (monitor thread) ------------------------------------------------
    def link_status_changed(self) -> None:
        with self.lock:
            new = (self.status & ~S_LINK_UP) | (0 if self.link_down else S_LINK_UP)
            if new != self.status:
                self.status = new
                if self.features & bit(F_STATUS):
                    self.config_changed()

    def announce(self) -> None:
        """Ask the driver to announce itself (gratuitous ARP), after a migration."""
        with self.lock:
            if self.negotiated(F_GUEST_ANNOUNCE) and self.driver_ok:
                self.status |= S_ANNOUNCE
                self.config_changed()

    # -- kicks (vCPU thread, transport lock held) -----------------------------------
    def control_queue_index(self) -> int:
        # without MQ negotiated the layout is the single-pair one (spec 5.1.2)
        return 2 * self.max_pairs if self.negotiated(F_MQ) else CTRL_QUEUE

    def queue_notified(self, vq: VirtQueue) -> None:
        if vq.index == self.control_queue_index():
            self._control(vq)
        elif vq.index >= 2 * self.max_pairs:
            return  # the unused control slot of the layout the driver did not take
        elif vq.index % 2:
            self._transmit(vq)
        else:
            self.flush_incoming()  # frames that waited for buffers

    def _transmit(self, vq: VirtQueue) -> None:
        frames = []
        done = []
        while (elem := vq.pop()) is not None:
            done.append((elem, 0))
            if elem.out_len > HDR_SIZE + MAX_FRAME:
                self.warn(f"dropped an oversized frame from the guest ({elem.out_len} bytes)")
                continue
            data = b"".join(bytes(b) for b in elem.out_bufs)
            frame = (self._checked_for_peer(data) if self.vnet_hdr_len
                     else self._frame_from_guest(data))
            if frame is not None:
                frames.append(frame)
        if done:
            vq.push_batch(done)
            if self.transport is not None:
                self.transport.used_buffer_notify(vq)
        pair = vq.index // 2
        for frame in frames:
            self.send(frame, pair)

    def _frame_from_guest(self, data: bytes) -> bytes | None:
        if len(data) < HDR_SIZE + 14:
            self.warn(f"dropped a frame shorter than header + Ethernet ({len(data)} bytes)")
            return None
        flags, gso_type, _, _, csum_start, csum_offset, _ = HDR.unpack_from(data)
        frame = data[HDR_SIZE:]
        if gso_type != GSO_NONE:
            self.warn(f"dropped a GSO frame (type {gso_type}) although no GSO was offered")
            return None
        if flags & HDR_F_NEEDS_CSUM:
            if not self.negotiated(F_CSUM):
                self.warn("dropped a NEEDS_CSUM frame although CSUM was not negotiated")
                return None
            if csum_start + csum_offset + 2 > len(frame):
                self.warn(f"dropped a frame whose checksum field ({csum_start}+"
                          f"{csum_offset}) lies outside it ({len(frame)} bytes)")
                return None
            buf = bytearray(frame)
            at = csum_start + csum_offset
            # the driver put the pseudo-header sum in the field: it is part of the sum
            buf[at:at + 2] = internet_checksum(bytes(buf[csum_start:])).to_bytes(2, "big")
            frame = bytes(buf)
        return frame

    def _checked_for_peer(self, data: bytes) -> bytes | None:
        """A frame with its header, for a backend that takes the header: the host
        finishes it, so only what we did not offer is refused here."""
        if len(data) < HDR_SIZE + 14:
            self.warn(f"dropped a frame shorter than header + Ethernet ({len(data)} bytes)")
            return None
        flags, gso_type, _, _, csum_start, csum_offset, _ = HDR.unpack_from(data)
        gso = gso_type & ~GSO_ECN
        if gso != GSO_NONE:
            needed = GSO_FEATURE.get(gso)
            if needed is None or not self.negotiated(needed) \
                    or gso_type & GSO_ECN and not self.negotiated(F_HOST_ECN):
                self.warn(f"dropped a GSO frame of type {gso_type} the guest was not offered")
                return None
        if flags & HDR_F_NEEDS_CSUM and (not self.negotiated(F_CSUM)
                                         or csum_start + csum_offset + 2 > len(data) - HDR_SIZE):
            self.warn("dropped a NEEDS_CSUM frame: CSUM not negotiated or the field lies "
                      "outside the frame")
            return None
        return data

    # -- receive (backend thread, self.lock held by NetClient) ------------------------
    def can_receive(self) -> bool:
        return self._rx_queue_with_room(0) is not None

    def _rx_queue_with_room(self, pair: int) -> VirtQueue | None:
        """Receive queue ``pair`` (of those in use) or, when it has no buffers, the
        first one that has: a frame waits only when no queue has room."""
        if not self.driver_ok or len(self.queues) <= RX_QUEUE:
            return None
        pairs = max(1, min(self.pairs, self.max_pairs))
        first = pair % pairs
        for p in (first, *range(pairs)):
            try:
                vq = self.queues[2 * p]
                if vq.has_work():
                    return vq
            except Exception:  # noqa: BLE001 - ring outside RAM: treat as no room
                continue
        return None

    def _accepts(self, frame: bytes) -> bool:
        """The receive filter the driver set (promiscuous, all-multicast, MAC table)."""
        if self.promisc:
            return True
        dest = frame[:6]
        if dest == BROADCAST:
            return True
        table = [self.mac_table[i:i + 6] for i in range(0, len(self.mac_table), 6)]
        if dest[0] & 1:
            return self.allmulti or self.multi_overflow or dest in table[self.multi_start:]
        return dest == self.mac or self.uni_overflow or dest in table[:self.multi_start]

    def receive(self, frame: bytes) -> bool:
        return self.receive_queue(frame, 0)

    def receive_queue(self, frame: bytes, queue: int) -> bool:
        if not self._accepts(frame[self.vnet_hdr_len:]):
            return True  # filtered: consumed, not queued
        vq = self._rx_queue_with_room(queue)
        if vq is None:
            return False
        try:
            return self._fill_rx(vq, frame)
        except VirtqueueError as e:
            if self.transport is not None:
                self.transport.device_error(str(e))
            return True

    def _fill_rx(self, vq: VirtQueue, frame: bytes) -> bool:
        mergeable = self.negotiated(F_MRG_RXBUF)
        # the backend's header (what the host left undone) or our own
        data = bytearray(frame) if self.vnet_hdr_len else self._rx_header() + frame
        used = []
        offset = 0
        while offset < len(data):
            elem = vq.pop()
            if elem is None or (used and not mergeable):
                if elem is not None:
                    used.append((elem, 0))
                vq.unpop(len(used))
                if not mergeable and used:
                    self.warn(f"dropped a {len(frame)}-byte frame: the receive buffer is "
                              "too small and mergeable buffers are off")
                    return True
                return False  # wait for more buffers
            room = elem.in_len
            if room == 0 or (not used and room < HDR_SIZE):
                vq.unpop(len(used) + 1)
                self.warn(f"receive buffer of {room} bytes cannot hold the header; "
                          "frame dropped")
                return True
            n = min(room, len(data) - offset)
            used.append((elem, n))
            offset += n
        struct.pack_into("<H", data, 10, len(used))  # num_buffers
        offset = 0
        for elem, n in used:
            elem.write_in(0, bytes(data[offset:offset + n]))
            offset += n
        vq.push_batch(used)
        if self.transport is not None:
            self.transport.used_buffer_notify(vq)
        return True

    def _rx_header(self) -> bytearray:
        header = bytearray(HDR_SIZE)
        # A backend that built the frame (slirp) made its checksums: the guest need not
        # verify them again in emulated code (spec 5.1.6.4.1 allows it with GUEST_CSUM).
        if self.peer is not None and self.peer.checksums_valid \
                and self.negotiated(F_GUEST_CSUM):
            header[0] = HDR_F_DATA_VALID
        return header

    # -- control queue ----------------------------------------------------------------
    def _control(self, vq: VirtQueue) -> None:
        while (elem := vq.pop()) is not None:
            request = elem.read_out(0, elem.out_len)
            ack = self._command(request) if len(request) >= 2 else CTRL_ERR
            if elem.in_len < 1:
                self.warn("control request without room for the ack")
                self.complete(vq, elem, 0)
                continue
            elem.write_in(elem.in_len - 1, bytes([ack]))
            self.complete(vq, elem, elem.in_len)

    def _command(self, request: bytes) -> int:
        cls, cmd, data = request[0], request[1], request[2:]
        if cls == CTRL_RX and self.negotiated(F_CTRL_RX) and len(data) >= 1:
            if cmd == CTRL_RX_PROMISC:
                self.promisc = bool(data[0])
                return CTRL_OK
            if cmd == CTRL_RX_ALLMULTI:
                self.allmulti = bool(data[0])
                return CTRL_OK
            return CTRL_ERR
        if cls == CTRL_MAC:
            if cmd == CTRL_MAC_ADDR_SET and self.negotiated(F_CTRL_MAC_ADDR) and len(data) == 6:
                self.mac = bytes(data)
                return CTRL_OK
            if cmd == CTRL_MAC_TABLE_SET and self.negotiated(F_CTRL_RX):
                return self._set_mac_table(data)
            return CTRL_ERR
        if cls == CTRL_ANNOUNCE and cmd == CTRL_ANNOUNCE_ACK \
                and self.negotiated(F_GUEST_ANNOUNCE):
            self.status &= ~S_ANNOUNCE
            return CTRL_OK
        if cls == CTRL_MQ and cmd == CTRL_MQ_VQ_PAIRS_SET and self.negotiated(F_MQ) \
                and len(data) == 2:
            (pairs,) = struct.unpack("<H", data)
            if 1 <= pairs <= self.max_pairs:
                self.pairs = pairs
                return CTRL_OK
        return CTRL_ERR

    def _set_mac_table(self, data: bytes) -> int:
        tables = []
        pos = 0
        for _ in range(2):
            if pos + 4 > len(data):
                return CTRL_ERR
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + 6 * n > len(data):
                return CTRL_ERR
            tables.append(data[pos:pos + 6 * n])
            pos += 6 * n
        uni, multi = tables
        # More addresses than the table holds: accept that whole class (as QEMU does)
        self.uni_overflow = len(uni) > 6 * MAC_TABLE_MAX
        self.multi_overflow = len(multi) > 6 * MAC_TABLE_MAX
        uni = b"" if self.uni_overflow else uni
        multi = b"" if self.multi_overflow else multi
        self.mac_table = bytes(uni + multi)
        self.multi_start = len(uni) // 6
        return CTRL_OK


def _features(opts: dict[str, str], what: str) -> int:
    features = 0
    for name, feature in FEATURE_PROPERTIES.items():
        value = opts.get(name, "on")
        if value not in ("on", "off"):
            raise OptionError(f"{what}: Parameter '{name}' expects 'on' or 'off'")
        if value == "on":
            features |= bit(feature)
    return features


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioNet:
    what = f"-device {opts['driver']}"
    network = ctx.network  # type: ignore[attr-defined]
    backend = network.take(opts.get("netdev"), opts["driver"])
    mac = parse_mac(opts["mac"], what) if "mac" in opts else None
    mq = opts.get("mq", "off")
    if mq not in ("on", "off"):
        raise OptionError(f"{what}: Parameter 'mq' expects 'on' or 'off'")
    # QEMU's: one pair per queue of the netdev, used only with mq=on
    pairs = min(backend.queue_count(), MAX_QUEUE_PAIRS) if mq == "on" else 1
    nic = VirtioNet(mac, _features(opts, what), id=name, queue_pairs=pairs)
    network.attach(nic, backend)
    nic.pass_vnet_hdr_to_peer()
    return nic


register(TypeInfo(
    "virtio-net-device", DEVICE, "Virtio network device", bus="virtio-bus", factory=_create,
    properties=(Property("netdev", "str", description="ID of the -netdev it is wired to"),
                Property("mac", "str", description="MAC address (default 52:54:00:12:34:56, "
                         "then ...:57, ...)"),
                Property("mq", "bool", "off", "one queue pair per queue of the netdev (tap "
                         "queues=N), VIRTIO_NET_F_MQ", ("on", "off")),
                *(Property(n, "bool", "on", f"offer VIRTIO_NET_F_{n.upper()}", ("on", "off"))
                  for n in FEATURE_PROPERTIES))))
