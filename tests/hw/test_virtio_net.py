"""virtio-net against a software driver and a fake backend: the header, MAC and link
status in config space, checksum completion, mergeable receive buffers, frames waiting
for buffers, the control queue, and a guest that sends nonsense."""

from __future__ import annotations

import struct

import pytest
from virtio_driver import MODERN, Driver, make_machine

from pemu.hw.virtio import mmio as r
from pemu.hw.virtio import net as n
from pemu.hw.virtio.device import STATUS_DEVICE_NEEDS_RESET, bit
from pemu.net.checksum import internet_checksum
from pemu.net.client import NetClient, connect

MAC = bytes.fromhex("525400abcdef")
HOST_MAC = bytes.fromhex("5255 0a000202".replace(" ", ""))


class Backend(NetClient):
    def __init__(self) -> None:
        super().__init__("fake")
        self.got: list[bytes] = []

    def receive(self, frame: bytes) -> bool:
        self.got.append(frame)
        return True


def rig(features: int | None = None):
    dev = n.VirtioNet(MAC, features, id="net0")
    backend = Backend()
    connect(dev, backend)
    space, transport, irq = make_machine(dev)
    return dev, backend, Driver(space), irq, transport


def udp_frame(payload: bytes, dest: bytes = MAC) -> bytes:
    """An Ethernet/IPv4/UDP frame with the UDP checksum left to the device: the field
    holds the pseudo-header sum, as Linux leaves it with NEEDS_CSUM."""
    src, dst = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
    pseudo = ~internet_checksum(src + dst + struct.pack("!BBH", 0, 17, udp_len)) & 0xFFFF
    udp = struct.pack("!HHHH", 1234, 80, udp_len, pseudo) + payload
    return dest + HOST_MAC + b"\x08\x00" + ip + udp


def hdr(flags=0, gso=0, start=0, offset=0) -> bytes:
    return n.HDR.pack(flags, gso, 0, 0, start, offset, 0)


def send(drv, tx, data: bytes) -> None:
    addr = drv.ram.alloc(len(data))
    drv.space.write(addr, data)
    tx.add([(addr, len(data), False)])
    tx.kick()


def test_config_space_has_the_mac_and_link_up():
    dev, _, drv, _, _ = rig()
    offered = drv.device_features()
    for f in (n.F_MAC, n.F_STATUS, n.F_MRG_RXBUF, n.F_CSUM, n.F_GUEST_CSUM, n.F_CTRL_VQ):
        assert offered & bit(f), f
    drv.bring_up(3)
    assert bytes(drv.config(i, 1) for i in range(6)) == MAC
    assert drv.config(6, 2) == n.S_LINK_UP


def test_feature_properties_switch_features_off():
    dev = n.VirtioNet(MAC, n._features({"mrg_rxbuf": "off", "ctrl_vq": "off"}, "x"))
    assert not dev.device_features() & bit(n.F_MRG_RXBUF)
    # everything that needs the control queue goes with it
    assert not dev.device_features() & (bit(n.F_CTRL_RX) | bit(n.F_GUEST_ANNOUNCE))


def test_transmit_completes_the_checksum_the_guest_left():
    _, backend, drv, _, _ = rig()
    _, tx, _ = drv.bring_up(3)
    frame = udp_frame(b"hello, world")
    csum_start = 14 + 20
    send(drv, tx, hdr(1, 0, csum_start, 6) + frame)
    assert tx.get_used() == [(0, 0)]
    (out,) = backend.got
    udp = out[csum_start:]
    pseudo = bytes([10, 0, 2, 15, 10, 0, 2, 2]) + struct.pack("!BBH", 0, 17, len(udp))
    assert internet_checksum(pseudo + udp[:6] + b"\0\0" + udp[8:]) == \
        int.from_bytes(udp[6:8], "big")
    assert out[:csum_start] == frame[:csum_start] and udp[8:] == b"hello, world"


def test_transmit_without_offload_passes_the_frame_unchanged():
    _, backend, drv, _, _ = rig()
    _, tx, _ = drv.bring_up(3)
    frame = udp_frame(b"x" * 100)
    send(drv, tx, hdr() + frame)
    assert backend.got == [frame]


def post_rx(drv, rx, count: int, size: int) -> list[int]:
    bufs = [drv.ram.alloc(size) for _ in range(count)]
    for addr in bufs:
        rx.add([(addr, size, True)])
    rx.kick()
    return bufs


def test_receive_spreads_a_frame_over_mergeable_buffers():
    _, backend, drv, irq, _ = rig()
    rx, _, _ = drv.bring_up(3)
    bufs = post_rx(drv, rx, 4, 512)
    frame = udp_frame(bytes(range(256)) * 4)  # 1066 bytes + 12 of header: 3 buffers
    backend.send(frame)
    used = rx.get_used()
    assert [head for head, _ in used] == [0, 1, 2]
    data = b"".join(drv.space.read(bufs[h], length) for h, length in used)
    assert struct.unpack_from("<H", data, 10)[0] == 3  # num_buffers
    assert data[n.HDR_SIZE:] == frame
    assert irq.level


def test_frames_wait_for_buffers_and_arrive_in_order():
    dev, backend, drv, _, _ = rig()
    rx, _, _ = drv.bring_up(3)
    frames = [udp_frame(bytes([i]) * 50) for i in range(5)]
    for f in frames:
        backend.send(f)
    assert dev.queued == 5 and rx.get_used() == []
    bufs = post_rx(drv, rx, 5, 2048)
    got = [drv.space.read(bufs[h], length)[n.HDR_SIZE:] for h, length in rx.get_used()]
    assert got == frames and dev.queued == 0


def test_without_mergeable_buffers_a_frame_needs_one_big_buffer():
    dev, backend, drv, _, _ = rig()
    want = drv.device_features() & ~bit(n.F_MRG_RXBUF)
    rx, _, _ = drv.bring_up(3, want)
    post_rx(drv, rx, 2, 100)
    backend.send(udp_frame(b"y" * 500))  # too big for 100 bytes: dropped, buffers kept
    assert rx.get_used() == [] and dev.queued == 0
    backend.send(udp_frame(b"z" * 10))
    assert len(rx.get_used()) == 1


def test_link_down_drops_frames_and_tells_the_driver():
    dev, backend, drv, irq, _ = rig()
    rx, tx, _ = drv.bring_up(3)
    drv.ack_interrupts()
    dev.set_link(False)
    assert drv.config(6, 2) & n.S_LINK_UP == 0
    assert drv.ack_interrupts() & r.INT_CONFIG_CHANGE
    post_rx(drv, rx, 2, 2048)
    backend.send(udp_frame(b"lost"))
    send(drv, tx, hdr() + udp_frame(b"lost too"))
    assert rx.get_used() == [] and backend.got == []
    dev.set_link(True)
    assert drv.config(6, 2) & n.S_LINK_UP
    backend.send(udp_frame(b"found"))
    assert len(rx.get_used()) == 1


def control(drv, cq, request: bytes) -> int:
    req = drv.ram.alloc(len(request))
    ack = drv.ram.alloc(1)
    drv.space.write(req, request)
    drv.space.write(ack, b"\xff")
    cq.add([(req, len(request), False), (ack, 1, True)])
    cq.kick()
    assert len(cq.get_used()) == 1
    return drv.space.read(ack, 1)[0]


def test_control_queue_receive_filter_and_mac():
    dev, backend, drv, _, _ = rig()
    rx, _, cq = drv.bring_up(3)
    assert control(drv, cq, bytes([n.CTRL_RX, n.CTRL_RX_PROMISC, 0])) == n.CTRL_OK
    post_rx(drv, rx, 4, 2048)
    backend.send(udp_frame(b"not for us", dest=bytes.fromhex("525400000001")))
    assert rx.get_used() == []
    backend.send(udp_frame(b"broadcast", dest=b"\xff" * 6))
    assert len(rx.get_used()) == 1
    multicast = bytes.fromhex("01005e000001")
    backend.send(udp_frame(b"multicast", dest=multicast))
    assert rx.get_used() == []
    table = struct.pack("<I", 0) + struct.pack("<I", 1) + multicast
    assert control(drv, cq, bytes([n.CTRL_MAC, n.CTRL_MAC_TABLE_SET]) + table) == n.CTRL_OK
    backend.send(udp_frame(b"multicast", dest=multicast))
    assert len(rx.get_used()) == 1
    new_mac = bytes.fromhex("525400000002")
    assert control(drv, cq, bytes([n.CTRL_MAC, n.CTRL_MAC_ADDR_SET]) + new_mac) == n.CTRL_OK
    assert bytes(drv.config(i, 1) for i in range(6)) == new_mac
    assert control(drv, cq, bytes([9, 9])) == n.CTRL_ERR
    assert control(drv, cq, bytes([n.CTRL_MAC, n.CTRL_MAC_TABLE_SET, 5])) == n.CTRL_ERR


def test_announce_sets_the_status_bit_until_the_driver_acks():
    dev, _, drv, _, _ = rig()
    _, _, cq = drv.bring_up(3)
    dev.announce()
    assert drv.config(6, 2) & n.S_ANNOUNCE
    assert control(drv, cq, bytes([n.CTRL_ANNOUNCE, n.CTRL_ANNOUNCE_ACK])) == n.CTRL_OK
    assert not drv.config(6, 2) & n.S_ANNOUNCE


@pytest.mark.parametrize("data, why", [
    (b"\0" * 5, "shorter than header"),
    (hdr(gso=1) + udp_frame(b"gso"), "GSO"),
    (hdr(1, 0, 2000, 6) + udp_frame(b"bad offset"), "outside"),
])
def test_malformed_transmits_are_dropped_with_a_warning(data, why, capsys):
    dev, backend, drv, _, transport = rig()
    _, tx, _ = drv.bring_up(3)
    send(drv, tx, data)
    assert tx.get_used() == [(0, 0)]  # the buffer goes back to the driver
    assert backend.got == [] and not transport.status & STATUS_DEVICE_NEEDS_RESET
    assert why in capsys.readouterr().err
    send(drv, tx, hdr() + udp_frame(b"the next one still goes"))
    assert len(backend.got) == 1


def test_oversized_frames_and_floods_are_rate_limited(capsys):
    dev, backend, drv, _, _ = rig()
    _, tx, _ = drv.bring_up(3, num=64)
    big = drv.ram.alloc(n.HDR_SIZE + n.MAX_FRAME + 1)
    for _ in range(20):
        tx.add([(big, n.HDR_SIZE + n.MAX_FRAME + 1, False)])
    tx.kick()
    assert len(tx.get_used()) == 20 and backend.got == []
    assert dev.warn.count == 20
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_receive_chain_with_only_readable_buffers_resets_the_device():
    dev, backend, drv, _, transport = rig()
    rx, _, _ = drv.bring_up(3)
    addr = drv.ram.alloc(64)
    rx.add([(addr, 64, False)])  # device-readable: nowhere to write a frame
    rx.kick()
    backend.send(udp_frame(b"x"))
    # the device cannot use the chain; it must neither crash nor hand it back half-done
    assert rx.get_used() == [] or transport.status & STATUS_DEVICE_NEEDS_RESET


def test_modern_header_is_twelve_bytes():
    assert n.HDR_SIZE == 12
    assert MODERN


def test_a_descriptor_outside_ram_needs_reset_and_a_reset_recovers(capsys):
    dev, backend, drv, _, transport = rig()
    _, tx, _ = drv.bring_up(3)
    tx.add([(0x1000, 64, False)])  # not RAM
    tx.kick()
    assert transport.status & STATUS_DEVICE_NEEDS_RESET and backend.got == []
    assert "device needs reset" in capsys.readouterr().err
    backend.send(udp_frame(b"while broken"))  # the backend side must not crash either
    rx, tx, _ = drv.bring_up(3)  # the driver resets and starts again
    assert not transport.status & STATUS_DEVICE_NEEDS_RESET
    send(drv, tx, hdr() + udp_frame(b"after reset"))
    assert len(backend.got) == 1


# -- vnet header pass-through (a TAP backend with vnet_hdr=on) ----------------------
class VnetBackend(Backend):
    def __init__(self, ufo: bool = False) -> None:
        super().__init__()
        self.ufo = ufo
        self.offloads: list[tuple[bool, ...]] = []

    def has_vnet_hdr(self) -> bool:
        return True

    def has_ufo(self) -> bool:
        return self.ufo

    def set_offload(self, *flags: bool) -> None:
        self.offloads.append(flags)


def vnet_rig(ufo: bool = False):
    dev = n.VirtioNet(MAC, None, id="net0")
    backend = VnetBackend(ufo)
    connect(dev, backend)
    dev.pass_vnet_hdr_to_peer()
    space, transport, irq = make_machine(dev)
    return dev, backend, Driver(space)


SEGMENTATION_BITS = sum(bit(f) for f in n.SEGMENTATION)


def test_segmentation_offloads_are_offered_only_with_a_vnet_header_peer():
    dev, _, drv, _, _ = rig()
    assert dev.vnet_hdr_len == 0 and drv.device_features() & SEGMENTATION_BITS == 0
    _, _, drv = vnet_rig()
    offered = drv.device_features()
    for f in (n.F_HOST_TSO4, n.F_HOST_TSO6, n.F_HOST_ECN, n.F_GUEST_TSO4, n.F_GUEST_TSO6,
              n.F_GUEST_ECN):
        assert offered & bit(f), f
    assert not offered & (bit(n.F_HOST_UFO) | bit(n.F_GUEST_UFO))  # the peer has no UFO
    assert vnet_rig(ufo=True)[2].device_features() & bit(n.F_HOST_UFO)
    # TSO without the checksum offload it builds on is never offered
    dev = n.VirtioNet(MAC, n._features({"csum": "off", "guest_csum": "off"}, "x"))
    backend = VnetBackend()
    connect(dev, backend)
    dev.pass_vnet_hdr_to_peer()
    assert dev.device_features() & SEGMENTATION_BITS == 0


def test_the_peer_learns_the_offloads_the_driver_took():
    _, backend, drv = vnet_rig()
    want = drv.device_features() & ~bit(n.F_GUEST_TSO6)
    drv.bring_up(3, want)
    assert backend.offloads[-1] == (True, True, False, True, False)  # csum tso4 tso6 ecn ufo


def test_transmit_hands_the_header_through_unfinished():
    _, backend, drv = vnet_rig()
    _, tx, _ = drv.bring_up(3)
    frame = udp_frame(b"left for the host kernel")
    header = n.HDR.pack(n.HDR_F_NEEDS_CSUM, n.GSO_TCPV4, 54, 1448, 34, 6, 0)
    send(drv, tx, header + frame)
    assert backend.got == [header + frame]  # neither checksummed nor segmented here


def test_transmit_refuses_gso_the_driver_did_not_negotiate(capsys):
    _, backend, drv = vnet_rig()
    _, tx, _ = drv.bring_up(3, drv.device_features() & ~bit(n.F_HOST_TSO4))
    send(drv, tx, n.HDR.pack(0, n.GSO_TCPV4, 54, 1448, 0, 0, 0) + udp_frame(b"no"))
    send(drv, tx, n.HDR.pack(0, n.GSO_UDP, 42, 1448, 0, 0, 0) + udp_frame(b"no UFO"))
    assert backend.got == [] and "GSO" in capsys.readouterr().err


def test_receive_keeps_the_hosts_header_and_filters_see_plain_frames():
    dev, backend, drv = vnet_rig()
    rx, _, _ = drv.bring_up(3)
    seen = []
    dev.filters.append(seen.append)
    bufs = post_rx(drv, rx, 2, 2048)
    frame = udp_frame(b"from the host, checksum left to the guest")
    header = n.HDR.pack(n.HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 6, 0)
    backend.send(header + frame)
    ((head, length),) = rx.get_used()
    data = drv.space.read(bufs[head], length)
    assert data[:10] == header[:10] and struct.unpack_from("<H", data, 10)[0] == 1
    assert data[n.HDR_SIZE:] == frame and seen == [frame]


# -- several queue pairs (mq=on over a multi-queue backend) --------------------------
class QueuedBackend(Backend):
    """Records which queue each of the guest's frames was sent on."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: list[int] = []

    def receive_queue(self, frame: bytes, queue: int) -> bool:
        self.queues.append(queue)
        return self.receive(frame)


def mq_rig(pairs: int = 3):
    dev = n.VirtioNet(MAC, None, id="net0", queue_pairs=pairs)
    backend = QueuedBackend()
    connect(dev, backend)
    space, transport, irq = make_machine(dev)
    return dev, backend, Driver(space)


def test_mq_offers_the_pairs_and_puts_the_control_queue_last():
    dev, _, drv = mq_rig(3)
    assert drv.device_features() & bit(n.F_MQ)
    assert dev.num_queues == 7
    queues = drv.bring_up(7)
    assert drv.config(8, 2) == 3  # max_virtqueue_pairs
    assert control(drv, queues[6], bytes([n.CTRL_MQ, n.CTRL_MQ_VQ_PAIRS_SET])
                   + struct.pack("<H", 3)) == n.CTRL_OK
    assert dev.pairs == 3
    for bad in (0, 4):
        assert control(drv, queues[6], bytes([n.CTRL_MQ, n.CTRL_MQ_VQ_PAIRS_SET])
                       + struct.pack("<H", bad)) == n.CTRL_ERR
    assert dev.pairs == 3


def test_mq_pair_i_talks_to_the_backends_queue_i():
    dev, backend, drv = mq_rig(2)
    queues = drv.bring_up(5)
    control(drv, queues[4], bytes([n.CTRL_MQ, n.CTRL_MQ_VQ_PAIRS_SET]) + struct.pack("<H", 2))
    send(drv, queues[3], hdr() + udp_frame(b"on pair 1"))
    send(drv, queues[1], hdr() + udp_frame(b"on pair 0"))
    assert backend.queues == [1, 0]
    post_rx(drv, queues[0], 2, 2048)
    post_rx(drv, queues[2], 2, 2048)
    backend.send(udp_frame(b"for queue 1"), 1)
    backend.send(udp_frame(b"for queue 0"), 0)
    assert len(queues[2].get_used()) == 1 and len(queues[0].get_used()) == 1


def test_without_mq_negotiated_the_single_pair_layout_holds():
    dev, backend, drv = mq_rig(2)
    queues = drv.bring_up(3, drv.device_features() & ~bit(n.F_MQ))
    assert control(drv, queues[2], bytes([n.CTRL_RX, n.CTRL_RX_PROMISC, 1])) == n.CTRL_OK
    post_rx(drv, queues[0], 1, 2048)
    backend.send(udp_frame(b"any backend queue lands on the one pair"), 1)
    assert len(queues[0].get_used()) == 1


def test_frames_from_a_backend_that_made_their_checksums_are_marked_valid():
    dev, backend, drv, _, _ = rig()
    rx, _, _ = drv.bring_up(3)
    bufs = post_rx(drv, rx, 2, 2048)
    backend.send(udp_frame(b"unknown origin"))
    backend.checksums_valid = True  # as slirp's
    backend.send(udp_frame(b"made by the backend"))
    flags = [drv.space.read(bufs[h], 1)[0] for h, _ in rx.get_used()]
    assert flags == [0, n.HDR_F_DATA_VALID]
    # without GUEST_CSUM the driver never hears of it
    dev, backend, drv, _, _ = rig()
    backend.checksums_valid = True
    rx, _, _ = drv.bring_up(3, drv.device_features() & ~bit(n.F_GUEST_CSUM))
    bufs = post_rx(drv, rx, 1, 2048)
    backend.send(udp_frame(b"x"))
    assert [drv.space.read(bufs[h], 1)[0] for h, _ in rx.get_used()] == [0]
