"""``-netdev dgram``: one Ethernet frame per UDP or UNIX datagram (QEMU 7.2).

``-netdev dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=7001,
remote.type=inet,remote.host=127.0.0.1,remote.port=7002`` links two emulators;
``local.type=unix,local.path=A,remote.type=unix,remote.path=B`` does the same over
UNIX sockets; a multicast ``remote`` (``remote.host=230.0.0.1``) makes a shared
segment of every emulator that joins the group; ``local.type=fd,local.str=N`` uses a
socket a manager handed in.

Datagrams need no framing.  A frame that cannot be sent now (socket buffer full, no
one at the remote UNIX path yet) is dropped, as a real wire would drop it.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import stat

from pemu.net.backend import NetdevOptions, declare_netdev
from pemu.net.polling import PollingBackend
from pemu.net.sockaddr import SocketAddress, address_properties, read_address, socket_from_fd
from pemu.net.stream import MAX_FRAME


def is_multicast(addr: SocketAddress | None) -> bool:
    if addr is None or addr.type != "inet":
        return False
    try:
        return ipaddress.ip_address(addr.host).is_multicast
    except ValueError:
        return False


def multicast_socket(group: SocketAddress, local_host: str | None) -> socket.socket:
    """A UDP socket bound to the group's port that has joined it, sending to the group
    (looped back, so several emulators on one host share the segment)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((group.host, group.port))
        iface = socket.inet_aton(local_host or "0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(group.host) + iface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if local_host:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot join multicast group {group.describe()}: {e.strerror}") \
            from None
    return sock


def bound_socket(local: SocketAddress, remote: SocketAddress | None) -> socket.socket:
    if local.type == "fd":
        return socket_from_fd(local.fd)
    if remote is not None and remote.type != local.type:
        raise OSError("local and remote must be of the same type (inet or unix)")
    family = socket.AF_UNIX if local.type == "unix" else local.family
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if local.type == "unix":
            # a stale socket file from an earlier run would make bind fail (QEMU removes
            # it too); anything that is not a socket is left alone and bind reports it
            if os.path.exists(local.path) and socket_file(local.path):
                os.unlink(local.path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(local.sockaddr(socket.SOCK_DGRAM))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot bind {local.describe()}: {e.strerror}") from None
    return sock


def socket_file(path: str) -> bool:
    return stat.S_ISSOCK(os.lstat(path).st_mode)


class DgramBackend(PollingBackend):
    """A datagram link; ``kind`` is ``dgram`` or ``socket`` (the legacy spelling)."""

    def __init__(self, name: str, sock: socket.socket, remote: object | None,
                 state: str, kind: str = "dgram", unlink: str | None = None) -> None:
        super().__init__(name)
        self.kind = kind
        self.sock = sock
        sock.setblocking(False)
        self.remote = remote  # a sockaddr for sendto; None: the socket is connected
        self.state = state
        self._unlink = unlink
        self.start()

    def wanted(self) -> dict[int, int]:
        return {self.sock.fileno(): 0 if self.peer_backlogged() else select.POLLIN}

    def timeout_ms(self) -> int:
        return 20 if self.peer_backlogged() else super().timeout_ms()

    def ready(self, fd: int, revents: int) -> None:
        for _ in range(64):  # a burst per wake-up, then let the guest side run
            try:
                frame = self.sock.recv(MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error for an earlier send: nothing to read
            if 14 <= len(frame) <= MAX_FRAME:
                self.send(frame)
            if self.peer_backlogged():
                return

    def transmit(self) -> None:
        while self.tx:
            frame = self.tx.popleft()
            try:
                if self.remote is None:
                    self.sock.send(frame)
                else:
                    self.sock.sendto(frame, self.remote)
            except OSError:
                self.dropped += 1  # buffer full or no one listening: the wire drops it

    def describe(self) -> str:
        return self.state

    def release(self) -> None:
        self.sock.close()
        if self._unlink:
            try:
                os.unlink(self._unlink)
            except OSError:
                pass


def open_dgram(name: str, local: SocketAddress | None, remote: SocketAddress | None,
               kind: str = "dgram") -> DgramBackend:
    """The socket for ``local``/``remote`` (OSError with the reason if it cannot be made)."""
    if is_multicast(remote):
        sock = multicast_socket(remote, local.host if local and local.type == "inet" else None)
        return DgramBackend(name, sock, (remote.host, remote.port),
                            f"mcast={remote.describe()}", kind)
    if local is None:
        raise OSError("local address is required unless remote is a multicast group")
    if remote is None and local.type != "fd":
        raise OSError("remote address is required (only local.type=fd may go without)")
    if remote is not None and remote.type == "fd":
        raise OSError("remote.type=fd is not allowed")
    sock = bound_socket(local, remote)
    target = remote.sockaddr(socket.SOCK_DGRAM) if remote is not None else None
    state = f"udp={local.describe()}:{remote.describe()}" if remote else local.describe()
    if local.type == "unix":
        state = f"udp={local.path}:{remote.path}"
    return DgramBackend(name, sock, target, state, kind,
                        unlink=local.path if local.type == "unix" else None)


def _open(opts: NetdevOptions) -> DgramBackend:
    local = read_address(opts, "local")
    remote = read_address(opts, "remote")
    try:
        return open_dgram(opts.id, local, remote)
    except OSError as e:
        raise opts.error(str(e)) from None


declare_netdev(
    "dgram", "Ethernet over UDP or UNIX datagrams (point to point or multicast)", _open,
    *address_properties("local", "this end"),
    *address_properties("remote", "the other end (or a multicast group)"),
)
