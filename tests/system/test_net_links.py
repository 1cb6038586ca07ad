"""Guests linked by point-to-point backends, each pinging the other with static
addresses: two pemu processes over -netdev stream (UNIX socket) and the legacy
-netdev socket (TCP), and pemu against Debian's QEMU 7.2 over -netdev stream (TCP:
QEMU's length-prefixed framing must agree) and -netdev dgram (UDP).  Every guest has
two NICs, one link each, so two boots cover two backends; an interface is found by
its MAC.  Sockets are on 127.0.0.1 or in the test's temporary folder."""

from __future__ import annotations

import socket

import pytest

from tests.system.lean_guest import LeanGuest, need_lean_guest, need_qemu, ping_until_answered

pytestmark = pytest.mark.slow


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mac(guest: int, link: int) -> str:
    return f"52:54:00:00:7{link}:0{guest}"


def nics(*netdevs: str, guest: int) -> list[str]:
    args = []
    for link, netdev in enumerate(netdevs):
        args += ["-netdev", f"{netdev},id=n{link}",
                 "-device", f"virtio-net-device,netdev=n{link},mac={mac(guest, link)}"]
    return args


def address(guest: LeanGuest, number: int, links: int) -> None:
    for link in range(links):
        guest.run(f"IF=$(ip -o link | grep {mac(number, link)} | cut -d: -f2 | tr -d ' ') "
                  f"&& ifconfig $IF 192.168.7{link}.{number} netmask 255.255.255.0 up")


def check_links(first: LeanGuest, second: LeanGuest, links: int) -> None:
    try:
        first.wait_prompt()
        second.wait_prompt()
        address(first, 1, links)
        address(second, 2, links)
        for link in range(links):
            out = ping_until_answered(first, f"192.168.7{link}.2")
            assert "3 packets received" in out, out
            out = ping_until_answered(second, f"192.168.7{link}.1")
            assert "3 packets received" in out, out
            # a frame far bigger than a small echo: one length prefix / datagram carries it
            out = first.run(f"ping -c 2 -s 1400 -W 2 192.168.7{link}.2")
            assert "2 packets received" in out, out
    finally:
        first.close()
        second.close()


def test_two_pemu_guests_over_stream_unix_and_legacy_socket(tmp_path):
    need_lean_guest()
    path, port = tmp_path / "link.sock", free_port()
    first = LeanGuest(nics(f"stream,server=on,addr.type=unix,addr.path={path}",
                           f"socket,listen=127.0.0.1:{port}", guest=1))
    # the client retries until the first pemu listens (reconnect=), the legacy connect=
    # does not: start it once the first one is up
    first.wait_prompt()
    second = LeanGuest(nics(f"stream,server=off,reconnect=1,addr.type=unix,addr.path={path}",
                            f"socket,connect=127.0.0.1:{port}", guest=2))
    check_links(first, second, 2)


def test_pemu_and_qemu_over_stream_inet_and_dgram():
    need_lean_guest()
    need_qemu()
    port, p1, p2 = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)

    def dgram(local: int, remote: int) -> str:
        return (f"dgram,local.type=inet,local.host=127.0.0.1,local.port={local},"
                f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote}")

    inet = f"addr.type=inet,addr.host=127.0.0.1,addr.port={port}"
    first = LeanGuest(nics(f"stream,server=on,{inet}", dgram(p1, p2), guest=1))
    first.wait_prompt()  # listening long before; QEMU 7.2's stream client does not retry
    second = LeanGuest(nics(f"stream,server=off,{inet}", dgram(p2, p1), guest=2), qemu=True)
    check_links(first, second, 2)
