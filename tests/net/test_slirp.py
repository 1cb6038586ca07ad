"""-netdev user on libslirp without a guest: a fake NIC sends ARP and DHCP and reads
slirp's answers, so the options (net=, dhcpstart=) and the callbacks (frames to the
guest, timers) are checked against the real library."""

from __future__ import annotations

import struct
import time

import pytest

from pemu.net import all_backends  # noqa: F401
from pemu.net.checksum import internet_checksum
from pemu.net.client import NetClient
from pemu.net.network import Network
from pemu.net.options import parse_netdev
from pemu.net.slirp_ffi import SlirpUnavailable, library

MAC = bytes.fromhex("525400123456")

try:
    library()
except SlirpUnavailable as e:  # pragma: no cover - libslirp0 is a declared dependency
    pytest.skip(str(e), allow_module_level=True)


class FakeNic(NetClient):
    def __init__(self) -> None:
        super().__init__("fake-nic")
        self.got: list[bytes] = []

    def receive(self, frame: bytes) -> bool:
        self.got.append(frame)
        return True

    def wait_for(self, ethertype: bytes, timeout: float = 5.0) -> bytes:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for f in self.got:
                if f[12:14] == ethertype:
                    return f
            time.sleep(0.01)
        raise AssertionError(f"no frame of type {ethertype.hex()} from slirp: {self.got}")


def user(options: str):
    net = Network("pemu")
    backend = net.add(parse_netdev(f"user,id=n0,{options}", "pemu"))
    nic = FakeNic()
    net.attach(nic, backend)
    return net, backend, nic


def arp_request(sender_ip: bytes, target_ip: bytes) -> bytes:
    return (b"\xff" * 6 + MAC + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 4, 1)
            + MAC + sender_ip + bytes(6) + target_ip)


def dhcp_discover() -> bytes:
    bootp = struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x12345678, 0, 0x8000) + bytes(16) \
        + MAC + bytes(10) + bytes(64 + 128) + bytes([99, 130, 83, 99, 53, 1, 1, 255])
    bootp += bytes(548 - len(bootp))
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
    return b"\xff" * 6 + MAC + b"\x08\x00" + ip + udp


def test_arp_for_the_gateway_is_answered():
    net, _, nic = user("ipv6=off")
    try:
        nic.send(arp_request(bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])))
        reply = nic.wait_for(b"\x08\x06")
        assert reply[:6] == MAC and struct.unpack("!H", reply[20:22])[0] == 2  # a reply
        assert reply[28:32] == bytes([10, 0, 2, 2])
    finally:
        net.close()


def test_dhcp_offers_the_configured_address():
    net, _, nic = user("net=192.168.76.0/24,dhcpstart=192.168.76.50,ipv6=off")
    try:
        nic.send(dhcp_discover())
        offer = nic.wait_for(b"\x08\x00")
        bootp = offer[14 + 20 + 8:]
        assert bootp[0] == 2 and bootp[4:8] == bytes.fromhex("12345678")
        assert bootp[16:20] == bytes([192, 168, 76, 50])  # yiaddr
        assert offer[14 + 12:14 + 16] == bytes([192, 168, 76, 2])  # from host=
    finally:
        net.close()


def test_ipv6_arms_the_router_advertisement_timer():
    net, backend, _ = user("ipv6=on")
    try:
        assert any(t.deadline_ms is not None for t in backend._timers.values())
    finally:
        net.close()


def test_link_down_keeps_frames_from_slirp():
    net, backend, nic = user("ipv6=off")
    try:
        nic.set_link(False)
        nic.send(arp_request(bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])))
        time.sleep(0.3)
        assert nic.got == []
    finally:
        net.close()


def test_tftp_serves_a_file_from_the_folder(tmp_path):
    (tmp_path / "boot.txt").write_bytes(b"served by slirp's TFTP server\n")
    net, _, nic = user(f"ipv6=off,tftp={tmp_path}")
    try:
        # the guest must be known to slirp first: ARP gives it our MAC for 10.0.2.15
        nic.send(arp_request(bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])))
        nic.wait_for(b"\x08\x06")
        rrq = struct.pack("!H", 1) + b"boot.txt\0octet\0"
        udp = struct.pack("!HHHH", 2000, 69, 8 + len(rrq), 0) + rrq
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]))
        ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
        nic.got.clear()
        nic.send(b"\x52\x55\x0a\x00\x02\x02" + MAC + b"\x08\x00" + ip + udp)
        data = nic.wait_for(b"\x08\x00")[14 + 20 + 8:]
        assert data[:4] == struct.pack("!HH", 3, 1)  # DATA, block 1
        assert data[4:] == b"served by slirp's TFTP server\n"
    finally:
        net.close()
