"""QEMU's ``SocketAddress`` in dotted options: ``addr.type=inet,addr.host=H,addr.port=P``,
``addr.type=unix,addr.path=P`` or ``addr.type=fd,addr.str=N`` (the prefix is ``addr``
for ``-netdev stream``, ``local``/``remote`` for ``-netdev dgram``), and the sockets
made from them."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

from pemu.net.backend import NetdevOptions
from pemu.qom.registry import Property

TYPES = ("inet", "unix", "fd")


@dataclass(frozen=True)
class SocketAddress:
    type: str  # inet | unix | fd
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def describe(self) -> str:
        if self.type == "inet":
            return f"{self.host}:{self.port}"
        if self.type == "unix":
            return self.path
        return f"fd={self.fd}"

    @property
    def family(self) -> int:
        if self.type == "unix":
            return socket.AF_UNIX
        return resolve(self.host or "0.0.0.0", self.port, socket.SOCK_STREAM)[0]

    def sockaddr(self, kind: int = socket.SOCK_STREAM) -> object:
        """What bind/connect/sendto take for this address."""
        if self.type == "unix":
            return self.path
        return resolve(self.host or "0.0.0.0", self.port, kind)[1]


def resolve(host: str, port: int, kind: int) -> tuple[int, object]:
    """(family, sockaddr) of ``host``: a numeric address or a name (``localhost``)."""
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=kind)[0]
    except socket.gaierror as e:
        raise OSError(f"address resolution failed for {host}:{port}: {e.strerror}") from None
    return family, addr


def address_properties(prefix: str, what: str) -> tuple[Property, ...]:
    return (
        Property(f"{prefix}.type", "str", None, f"{what}: inet, unix or fd",
                 TYPES),
        Property(f"{prefix}.host", "str", None, f"{what}: host name or address (inet)"),
        Property(f"{prefix}.port", "str", None, f"{what}: port (inet)"),
        Property(f"{prefix}.path", "str", None, f"{what}: socket path (unix)"),
        Property(f"{prefix}.str", "str", None, f"{what}: descriptor number (fd)"),
    )


def read_address(opts: NetdevOptions, prefix: str) -> SocketAddress | None:
    """The address under ``prefix``, checked; None if none of its keys is given."""
    kind = opts.text(f"{prefix}.type")
    given = [k for k, _ in opts.items if k.startswith(prefix + ".")]
    if kind is None:
        if given:
            raise opts.error(f"Parameter '{prefix}.type' is missing")
        return None
    if kind not in TYPES:
        raise opts.error(f"Parameter '{prefix}.type' does not accept value '{kind}'")
    if kind == "inet":
        host = opts.text(f"{prefix}.host")
        port = opts.text(f"{prefix}.port")
        if host is None:
            raise opts.error(f"Parameter '{prefix}.host' is missing")
        if port is None:
            raise opts.error(f"Parameter '{prefix}.port' is missing")
        return SocketAddress("inet", host=host, port=parse_port(port, opts, f"{prefix}.port"))
    if kind == "unix":
        path = opts.text(f"{prefix}.path")
        if not path:
            raise opts.error(f"Parameter '{prefix}.path' is missing")
        return SocketAddress("unix", path=path)
    text = opts.text(f"{prefix}.str")
    if text is None or not text.isdigit():
        raise opts.error(f"Parameter '{prefix}.str' expects a file descriptor number")
    fd = int(text)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        raise opts.error(f"file descriptor {fd} is not open") from None
    if not stat.S_ISSOCK(mode):
        raise opts.error(f"file descriptor {fd} is not a socket")
    return SocketAddress("fd", fd=fd)


def parse_port(text: str, opts: NetdevOptions, key: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise opts.error(f"Parameter '{key}' expects a port number (got '{text}')")
    return int(text)


def host_port(text: str, opts: NetdevOptions, key: str, host_required: bool) -> SocketAddress:
    """The legacy ``-netdev socket`` form ``[host]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or (host_required and not host):
        raise opts.error(f"{key}={text}: expected host:port")
    return SocketAddress("inet", host=host.strip("[]"), port=parse_port(port, opts, key))


def socket_from_fd(fd: int) -> socket.socket:
    """A socket object on a descriptor handed in (``addr.type=fd``, ``fd=``); the
    backend owns it from now on."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock
