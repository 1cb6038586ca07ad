"""Two guests on one Ethernet link: -netdev stream and -netdev dgram between two pemu
processes, and between pemu and Debian's QEMU 7.2 (same wire format).  Each guest is
the lean riscv64 guest with a static address; each pings the other.  The sockets are
on 127.0.0.1 or in the test's temporary folder."""

from __future__ import annotations

import socket

import pytest

from tests.system.lean_guest import LeanGuest, need_lean_guest, need_qemu, ping_until_answered

pytestmark = pytest.mark.slow

A, B = "192.168.76.1", "192.168.76.2"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nic(netdev: str, mac: str) -> list[str]:
    return ["-netdev", netdev, "-device", f"virtio-net-device,netdev=n0,mac={mac}"]


def linked(first: LeanGuest, second: LeanGuest) -> None:
    """Address both guests and ping both ways."""
    try:
        for guest, addr in ((first, A), (second, B)):
            guest.wait_prompt()
            guest.run(f"ifconfig eth0 {addr} netmask 255.255.255.0 up")
        out = ping_until_answered(first, B)
        assert "3 packets received" in out, out
        out = ping_until_answered(second, A)
        assert "3 packets received" in out, out
        # a bigger frame than one small ICMP echo: the length prefix/datagram carries it
        out = first.run(f"ping -c 2 -s 1400 -W 2 {B}")
        assert "2 packets received" in out, out
    finally:
        first.close()
        second.close()


def test_two_pemu_guests_over_stream_unix(tmp_path):
    need_lean_guest()
    path = tmp_path / "link.sock"
    server = LeanGuest(nic(f"stream,id=n0,server=on,addr.type=unix,addr.path={path}",
                           "52:54:00:00:76:01"))
    client = LeanGuest(nic(f"stream,id=n0,server=off,reconnect=1,addr.type=unix,"
                           f"addr.path={path}", "52:54:00:00:76:02"))
    linked(server, client)


def test_pemu_and_qemu_over_stream_inet():
    """pemu listens, QEMU 7.2 connects: the length-prefixed framing must agree."""
    need_lean_guest()
    need_qemu()
    port = free_port()
    server = LeanGuest(nic(f"stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,"
                           f"addr.port={port}", "52:54:00:00:76:01"))
    server.wait_prompt()  # listening long before; QEMU 7.2's client does not retry
    client = LeanGuest(nic(f"stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,"
                           f"addr.port={port}", "52:54:00:00:76:02"), qemu=True)
    linked(server, client)


def test_pemu_and_qemu_over_dgram():
    need_lean_guest()
    need_qemu()
    p1, p2 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)

    def dgram(local: int, remote: int) -> str:
        return (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={local},"
                f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote}")

    first = LeanGuest(nic(dgram(p1, p2), "52:54:00:00:76:01"))
    second = LeanGuest(nic(dgram(p2, p1), "52:54:00:00:76:02"), qemu=True)
    linked(first, second)


def test_two_pemu_guests_over_legacy_socket():
    need_lean_guest()
    port = free_port()
    first = LeanGuest(nic(f"socket,id=n0,listen=127.0.0.1:{port}", "52:54:00:00:76:01"))
    first.wait_prompt()
    second = LeanGuest(nic(f"socket,id=n0,connect=127.0.0.1:{port}", "52:54:00:00:76:02"))
    linked(first, second)
