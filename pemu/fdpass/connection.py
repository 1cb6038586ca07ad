"""A connected stream socket as the monitor and chardev sockets use it: TLS-safe
reads and writes from two threads (``Connection``), and descriptors a client passes
with SCM_RIGHTS (``PassedFds``).  Below both the monitor and the chardevs, so neither
reaches into the other for it."""

from __future__ import annotations

import array
import contextlib
import os
import select
import socket
import ssl
import threading


class Connection:
    """What a session writes to; ``send`` drops data once the peer is gone.

    OpenSSL does not allow one thread to write a TLS connection while another reads
    it, so a TLS socket is non-blocking and every read and write takes ``_lock``;
    the reader waits for data in ``select`` without holding it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.closed = False
        self.tls = isinstance(sock, ssl.SSLSocket)
        # fds a client sent with SCM_RIGHTS (UNIX sockets), for add-fd and getfd
        self.passed_fds = PassedFds() if sock.family == socket.AF_UNIX and not self.tls \
            else None
        if self.tls:
            sock.setblocking(False)

    def send(self, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                if self.tls:
                    self._send_tls(memoryview(data))
                else:
                    self.sock.sendall(data)
            except OSError:
                self.closed = True

    def _send_tls(self, view: memoryview) -> None:
        while view:
            try:
                n = self.sock.send(view)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                select.select([self.sock], [self.sock], [], 1.0)
                continue
            view = view[n:]

    def recv(self) -> bytes:
        """The next data from the peer; b"" when it has gone."""
        if self.passed_fds is not None:
            return self.passed_fds.recv(self.sock)
        if not self.tls:
            try:
                return self.sock.recv(65536)
            except OSError:
                return b""
        while True:
            with self._lock:
                if self.closed:
                    return b""
                try:
                    return self.sock.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except OSError:
                    return b""
            select.select([self.sock], [], [], 1.0)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        if self.passed_fds is not None:
            self.passed_fds.close_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class PassedFds:
    """File descriptors received with SCM_RIGHTS, oldest first, until a command (add-fd,
    getfd) takes one.  At most MAX_PASSED_FDS wait: a client cannot make pemu hold an
    unbounded number of descriptors; the extra ones are closed at once."""

    MAX_PASSED_FDS = 16

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._lock = threading.Lock()

    def recv(self, sock: socket.socket) -> bytes:
        try:
            data, ancdata, _, _ = sock.recvmsg(
                65536, socket.CMSG_SPACE(self.MAX_PASSED_FDS * 4))
        except BlockingIOError:
            raise  # a non-blocking reader woken too early: nothing yet, not the end
        except OSError:
            return b""
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                whole = len(payload) - len(payload) % 4
                for fd in array.array("i", payload[:whole]):
                    self._keep(fd)
        return data

    def _keep(self, fd: int) -> None:
        with self._lock:
            if len(self._fds) < self.MAX_PASSED_FDS:
                os.set_inheritable(fd, False)
                self._fds.append(fd)
                return
        os.close(fd)

    def take(self) -> int | None:
        with self._lock:
            return self._fds.pop(0) if self._fds else None

    def close_all(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
