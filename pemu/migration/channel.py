"""Migration URIs (QEMU's spelling) to byte channels.

  tcp:HOST:PORT   unix:PATH   exec:CMD   fd:N   file:PATH

The source connects (``open_outgoing``: a ``write`` callable and a closer); the
destination listens and accepts one connection (``open_incoming``: a ``read``
callable).  exec: runs the command through /bin/sh with the stream on its stdin
(source) or stdout (destination), as QEMU does.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.fdpass import FdPassError, fd_param


class ChannelError(Exception):
    """A URI that cannot be used; the message is for the user."""


@dataclass
class Channel:
    read: Callable[[int], bytes] | None = None
    write: Callable[[bytes], object] | None = None
    closers: list[Callable[[], object]] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    # the connected socket for tcp:/unix: (TLS wraps it, pemu/migration/tls.py)
    sock: socket.socket | None = None

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _split(uri: str) -> tuple[str, str]:
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in ("tcp", "unix", "exec", "fd", "file"):
        raise ChannelError(f"unknown migration protocol: {uri}")
    return scheme, rest


def _host_port(rest: str) -> tuple[str, int]:
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ChannelError(f"tcp:{rest}: expected tcp:HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _tcp_server(address: tuple[str, int]) -> socket.socket:
    """A listening socket; an IPv6 host (libvirt's ``tcp:[::]:PORT``) takes IPv4
    connections too where the host can, as QEMU's does."""
    if ":" not in address[0]:
        return socket.create_server(address)
    return socket.create_server(address, family=socket.AF_INET6,
                                dualstack_ipv6=socket.has_dualstack_ipv6())


def _socket_channel(sock: socket.socket) -> Channel:
    def read(n: int) -> bytes:
        return sock.recv(min(n, 1 << 20))

    return Channel(read=read, write=sock.sendall, closers=[sock.close], sock=sock)


def _fd(rest: str) -> int:
    """``fd:N`` (inherited) or ``fd:NAME`` (received with QMP getfd, as libvirt does)."""
    try:
        return fd_param(rest)
    except FdPassError as e:
        raise ChannelError(f"fd:{rest}: {e}") from None


def _is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def open_outgoing(uri: str) -> Channel:
    scheme, rest = _split(uri)
    try:
        if scheme == "tcp":
            sock = socket.create_connection(_host_port(rest), timeout=30)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _socket_channel(sock)
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(rest)
            return _socket_channel(sock)
        if scheme == "exec":
            proc = subprocess.Popen(["/bin/sh", "-c", rest], stdin=subprocess.PIPE)
            assert proc.stdin is not None
            stdin = proc.stdin

            def write(data: bytes) -> None:
                stdin.write(data)

            return Channel(write=write, closers=[stdin.flush, stdin.close], proc=proc)
        if scheme == "fd":
            fd = _fd(rest)
            if _is_socket(fd):  # libvirt's connection to the target: return-path works
                return _socket_channel(socket.socket(fileno=fd))
            f = os.fdopen(fd, "wb", closefd=True)
            return Channel(write=f.write, closers=[f.flush, f.close])
        f = open(rest, "wb")  # noqa: SIM115 - closed by the channel
        return Channel(write=f.write, closers=[f.flush, f.close])
    except OSError as e:
        raise ChannelError(f"{uri}: {e.strerror or e}") from None


class IncomingListener:
    """The destination's side: ``listen()`` binds now (so -incoming fails early on a
    bad address), ``accept()`` waits for the one connection and returns a channel."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.scheme, self.rest = _split(uri)
        self._sock: socket.socket | None = None

    def listen(self) -> None:
        try:
            if self.scheme == "tcp":
                self._sock = _tcp_server(_host_port(self.rest))
            elif self.scheme == "unix":
                if os.path.exists(self.rest):
                    os.unlink(self.rest)
                self._sock = socket.socket(socket.AF_UNIX)
                self._sock.bind(self.rest)
                self._sock.listen(1)
        except OSError as e:
            raise ChannelError(f"{self.uri}: {e.strerror or e}") from None

    def accept(self) -> Channel:
        try:
            if self._sock is not None:
                conn, _ = self._sock.accept()
                self._sock.close()
                return _socket_channel(conn)
            if self.scheme == "exec":
                proc = subprocess.Popen(["/bin/sh", "-c", self.rest], stdout=subprocess.PIPE)
                assert proc.stdout is not None
                return Channel(read=proc.stdout.read, closers=[proc.stdout.close], proc=proc)
            f = (os.fdopen(_fd(self.rest), "rb") if self.scheme == "fd"
                 else open(self.rest, "rb"))  # noqa: SIM115 - closed by the channel
            return Channel(read=f.read, closers=[f.close])
        except OSError as e:
            raise ChannelError(f"{self.uri}: {e.strerror or e}") from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


__all__ = ["Channel", "ChannelError", "IncomingListener", "open_outgoing"]
