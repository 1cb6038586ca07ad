"""``-netdev stream``: Ethernet frames over a TCP or UNIX stream socket (QEMU 7.2).

``-netdev stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555``
listens; ``server=off`` (the default) connects; ``addr.type=unix,addr.path=P`` uses a
UNIX socket (what ``passt`` offers), ``addr.type=fd,addr.str=N`` a connected socket a
manager handed in.  The other end is another pemu, a QEMU, or passt.

The wire format is QEMU's: each frame is preceded by its length as a 4-byte big-endian
number.  A length over ``MAX_FRAME`` means the peer is not speaking this protocol (or
is hostile): the connection is closed, as QEMU does.

A server takes one connection at a time and listens again when it ends; a client
without ``reconnect=`` that cannot connect is an error at start (QEMU 7.2 only prints
it and leaves the link dead); with ``reconnect=N`` it retries every N seconds, at
start and after the connection ends (QEMU 8.0's option).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
import time

from pemu.net.backend import NetdevOptions, declare_netdev
from pemu.net.polling import PollingBackend
from pemu.net.sockaddr import SocketAddress, address_properties, read_address, socket_from_fd
from pemu.qom.registry import Property

LENGTH = struct.Struct(">I")
MAX_FRAME = 4096 + 65536  # QEMU's NET_BUFSIZE: the longest frame a peer may announce
OUTBUF_LIMIT = 1 << 20  # bytes buffered for a slow reader before frames wait in self.tx
RECV_SIZE = 1 << 18


class FrameReader:
    """Splits a byte stream into length-prefixed frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole frames ``data`` completes; ValueError for an impossible length."""
        self.buf += data
        frames = []
        pos = 0
        while len(self.buf) - pos >= LENGTH.size:
            (size,) = LENGTH.unpack_from(self.buf, pos)
            if size > MAX_FRAME:
                raise ValueError(f"the peer announced a {size}-byte frame "
                                 f"(more than {MAX_FRAME})")
            if len(self.buf) - pos - LENGTH.size < size:
                break
            start = pos + LENGTH.size
            if size:
                frames.append(bytes(self.buf[start:start + size]))
            pos = start + size
        del self.buf[:pos]
        return frames


def frame_bytes(frame: bytes) -> bytes:
    return LENGTH.pack(len(frame)) + frame


class StreamBackend(PollingBackend):
    """One stream link; ``kind`` is ``stream`` or ``socket`` (the legacy spelling)."""

    def __init__(self, name: str, addr: SocketAddress, server: bool, reconnect: int = 0,
                 kind: str = "stream") -> None:
        super().__init__(name)
        self.kind = kind
        self.addr = addr
        self.server = server
        self.reconnect = reconnect
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.reader = FrameReader()
        self.outbuf = bytearray()
        self.state = "disconnected"
        self._retry_at: float | None = None
        if addr.type == "fd":
            self._connected(socket_from_fd(addr.fd), f"fd={addr.fd}")
        elif server:
            self.listener = self._listen()
            self.state = f"listening on {self._where()}"
        elif not self._connect():
            if not reconnect:
                raise OSError(self._last_error)
            self._retry_at = time.monotonic() + reconnect
        self.start()

    def _where(self) -> str:
        return f"{'unix:' if self.addr.type == 'unix' else ''}{self.addr.describe()}"

    # -- connection set-up -------------------------------------------------------------
    def _listen(self) -> socket.socket:
        sock = socket.socket(self.addr.family, socket.SOCK_STREAM)
        try:
            if self.addr.type == "inet":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.addr.sockaddr())
            sock.listen(1)
        except OSError as e:
            sock.close()
            raise OSError(f"cannot listen on {self._where()}: {e.strerror}") from None
        sock.setblocking(False)
        return sock

    def _connect(self) -> bool:
        sock = socket.socket(self.addr.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(5)
            sock.connect(self.addr.sockaddr())
        except OSError as e:
            sock.close()
            self._last_error = f"cannot connect to {self._where()}: {e.strerror or e}"
            return False
        self._connected(sock, f"connected to {self._where()}")
        return True

    def _connected(self, sock: socket.socket, state: str) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = sock
        self.reader = FrameReader()
        self.outbuf = bytearray()
        self.state = state

    def _disconnect(self, why: str | None) -> None:
        if why:
            print(f"pemu: -netdev {self.kind},id={self.name}: {why}; connection closed",
                  file=sys.stderr)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.outbuf = bytearray()
        if self.listener is not None:
            self.state = f"listening on {self._where()}"
        elif self.reconnect:
            self.state = "disconnected"
            self._retry_at = time.monotonic() + self.reconnect
        else:
            self.state = "disconnected"

    # -- the loop (backend thread) ------------------------------------------------------
    def wanted(self) -> dict[int, int]:
        fds = {}
        if self.conn is not None:
            events = 0 if self.peer_backlogged() else select.POLLIN
            if self.outbuf:
                events |= select.POLLOUT
            fds[self.conn.fileno()] = events
        elif self.listener is not None:
            fds[self.listener.fileno()] = select.POLLIN
        return fds

    def timeout_ms(self) -> int:
        if self.conn is not None and self.peer_backlogged():
            return 20  # the NIC's drain wakes us; this is only a safety net
        if self._retry_at is not None:
            return max(0, int((self._retry_at - time.monotonic()) * 1000))
        return super().timeout_ms()

    def _iterate(self) -> None:
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            self._retry_at = None
            if not self._connect():
                self._retry_at = time.monotonic() + self.reconnect
        super()._iterate()

    def ready(self, fd: int, revents: int) -> None:
        if self.conn is None:
            if self.listener is not None and fd == self.listener.fileno():
                self._accept()
            return
        if revents & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self._read()
        if self.conn is not None and revents & select.POLLOUT:
            self._flush()

    def _accept(self) -> None:
        try:
            sock, peer = self.listener.accept()
        except OSError:
            return
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        self._connected(sock, f"connection from {where}")

    def _read(self) -> None:
        try:
            data = self.conn.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._disconnect(e.strerror)
            return
        if not data:
            self._disconnect(None)  # the peer closed: an ordinary end
            return
        try:
            frames = self.reader.feed(data)
        except ValueError as e:
            self._disconnect(str(e))
            return
        for frame in frames:
            self.send(frame)

    def transmit(self) -> None:
        while self.tx and len(self.outbuf) < OUTBUF_LIMIT:
            frame = self.tx.popleft()
            if self.conn is None:
                self.dropped += 1  # nobody to send to: a cable with no far end
                continue
            self.outbuf += frame_bytes(frame)
        if self.conn is not None and self.outbuf:
            self._flush()

    def _flush(self) -> None:
        try:
            sent = self.conn.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno != errno.EPIPE:
                self._disconnect(e.strerror)
            else:
                self._disconnect(None)
            return
        del self.outbuf[:sent]
        if not self.outbuf and self.tx:
            self.wake()  # frames waited for room: go round again

    def describe(self) -> str:
        return self.state

    def release(self) -> None:
        for sock in (self.conn, self.listener):
            if sock is not None:
                sock.close()
        self.conn = self.listener = None
        if self.server and self.addr.type == "unix":
            try:
                os.unlink(self.addr.path)  # the socket file we made
            except OSError:
                pass


def _open(opts: NetdevOptions) -> StreamBackend:
    addr = read_address(opts, "addr")
    if addr is None:
        raise opts.error("Parameter 'addr.type' is missing")
    server = opts.flag("server")
    if addr.type == "fd" and server:
        raise opts.error("server=on cannot be used with addr.type=fd (the socket is "
                         "already connected)")
    reconnect = opts.text("reconnect") or "0"
    if not reconnect.isdigit():
        raise opts.error("Parameter 'reconnect' expects a number of seconds")
    try:
        return StreamBackend(opts.id, addr, server, int(reconnect))
    except OSError as e:
        raise opts.error(str(e)) from None


declare_netdev(
    "stream", "Ethernet over a TCP or UNIX stream socket (QEMU's framing; passt)", _open,
    Property("server", "bool", "off", "listen (on) or connect (off)", ("on", "off")),
    *address_properties("addr", "the address to listen on or connect to"),
    Property("reconnect", "str", "0", "client: retry the connection every N seconds"),
)
