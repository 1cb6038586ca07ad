"""``-netdev socket``: QEMU's older spelling of ``stream`` and ``dgram``.

* ``listen=[host]:port`` / ``connect=host:port`` — a TCP link (stream framing);
* ``udp=host:port,localaddr=host:port`` — a UDP link;
* ``mcast=group:port[,localaddr=addr]`` — a multicast segment;
* ``fd=N`` — a socket handed in, stream or datagram by its type.
"""

from __future__ import annotations

import socket

from pemu.net.backend import NetdevOptions, declare_netdev
from pemu.net.client import NetClient
from pemu.net.dgram import is_multicast, open_dgram
from pemu.net.sockaddr import SocketAddress, host_port
from pemu.net.stream import StreamBackend
from pemu.qom.registry import Property

MODES = ("listen", "connect", "udp", "mcast", "fd")


def _open(opts: NetdevOptions) -> NetClient:
    given = [m for m in MODES if opts.text(m) is not None]
    if len(given) != 1:
        raise opts.error("exactly one of listen=, connect=, udp=, mcast=, fd= is needed")
    mode = given[0]
    value = opts.text(mode)
    localaddr = opts.text("localaddr")
    if localaddr is not None and mode not in ("udp", "mcast"):
        raise opts.error("localaddr= goes with udp= or mcast= only")
    try:
        if mode in ("listen", "connect"):
            addr = host_port(value, opts, mode, host_required=mode == "connect")
            if mode == "listen" and not addr.host:
                addr = SocketAddress("inet", host="0.0.0.0", port=addr.port)
            return StreamBackend(opts.id, addr, mode == "listen", kind="socket")
        if mode == "udp":
            if localaddr is None:
                raise opts.error("udp= needs localaddr=host:port")
            return open_dgram(opts.id, host_port(localaddr, opts, "localaddr", False),
                              host_port(value, opts, "udp", True), kind="socket")
        if mode == "mcast":
            group = host_port(value, opts, "mcast", True)
            if not is_multicast(group):
                raise opts.error(f"mcast={value}: {group.host} is not a multicast address")
            local = SocketAddress("inet", host=localaddr) if localaddr else None
            return open_dgram(opts.id, local, group, kind="socket")
        if not value.isdigit():
            raise opts.error(f"fd={value}: expected a descriptor number")
        fd = int(value)
        kind = _sock_type(fd)
        addr = SocketAddress("fd", fd=fd)
        if kind == socket.SOCK_STREAM:
            return StreamBackend(opts.id, addr, False, kind="socket")
        return open_dgram(opts.id, addr, None, kind="socket")
    except OSError as e:
        raise opts.error(str(e)) from None


def _sock_type(fd: int) -> int:
    probe = socket.socket(fileno=fd)
    try:
        return probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    finally:
        probe.detach()  # the descriptor stays open for the backend


declare_netdev(
    "socket", "the legacy form of stream/dgram: listen=, connect=, udp=, mcast=, fd=", _open,
    Property("listen", "str", None, "[host]:port to listen on (TCP)"),
    Property("connect", "str", None, "host:port to connect to (TCP)"),
    Property("udp", "str", None, "host:port of the remote end (UDP; with localaddr=)"),
    Property("mcast", "str", None, "group:port of a multicast segment"),
    Property("localaddr", "str", None, "udp: local host:port; mcast: local interface address"),
    Property("fd", "str", None, "a connected socket's descriptor"),
)
