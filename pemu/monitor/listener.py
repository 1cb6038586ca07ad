"""Listening sockets for monitors: UNIX (mode 0600) and TCP (TLS unless opted out).

Each accepted client gets its own session object and a reader thread.  Monitor
clients are few and long-lived, and a blocking TLS handshake in its own thread cannot
stall anybody else, so threads are simpler here than the shared I/O loop.

UNIX sockets are bound inside a fresh private directory, made 0600, then renamed into
place: there is no moment at which another user could connect to the new socket.
An existing file that is not a socket is never replaced.
"""

from __future__ import annotations

import array
import contextlib
import os
import select
import socket
import ssl
import stat
import sys
import tempfile
import threading
from collections.abc import Callable

from pemu import threads
from pemu.crypto.tls_session import TLSRefused
from pemu.qemuopts.keyval import OptionError


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


SessionFactory = Callable[[Connection], object]  # returns something with feed/start/close


def bind_unix_private(path: str) -> socket.socket:
    """A listening UNIX socket at ``path`` that only our user can connect to."""
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OptionError(f"{path}: exists and is not a socket; not replacing it")
        os.unlink(path)  # a stale socket from an earlier run
    parent = os.path.dirname(path) or "."
    try:
        private = tempfile.mkdtemp(prefix=".pemu-sock-", dir=parent)  # mode 0700
    except OSError as e:
        raise OptionError(f"could not listen on {path}: {e.strerror}") from None
    tmp = os.path.join(private, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        sock.listen(4)
    except OSError as e:
        sock.close()
        raise OptionError(f"could not listen on {path}: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return sock


def bind_tcp(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(4)
    except OSError as e:
        raise OptionError(f"could not listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class Listener:
    """Accepts clients on a bound socket; every client gets ``factory(connection)``.

    At most MAX_CLIENTS are served at once (each costs a thread and a session); a
    client past that is closed at once, so connecting in a loop cannot exhaust pemu.
    """

    MAX_CLIENTS = 16

    def __init__(self, sock: socket.socket, factory: SessionFactory, label: str,
                 tls_wrap: Callable[[socket.socket], socket.socket] | None = None,
                 unix_path: str | None = None) -> None:
        self.sock = sock
        self.factory = factory
        self.label = label
        self.tls_wrap = tls_wrap  # pemu.crypto.tls_session: handshake and authorization
        self.unix_path = unix_path
        self.first_client = threading.Event()
        self.sessions: list[object] = []
        self._clients = threading.BoundedSemaphore(self.MAX_CLIENTS)
        self._closing = False
        self._thread = threads.start_daemon(self._accept_loop, name=f"pemu-{label}")

    @property
    def address(self):
        return self.sock.getsockname()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            if not self._clients.acquire(blocking=False):
                print(f"pemu: {self.label}: more than {self.MAX_CLIENTS} clients; "
                      "refusing one", file=sys.stderr)
                with contextlib.suppress(OSError):
                    conn.close()
                continue
            threads.start_daemon(self._serve_counted, conn, name=f"pemu-{self.label}-c")

    def _serve_counted(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        finally:
            self._clients.release()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls_wrap is not None:
            try:
                conn = self.tls_wrap(conn)
            except TLSRefused as e:
                print(f"pemu: {self.label}: {e}", file=sys.stderr)
                return
        connection = Connection(conn)
        session = self.factory(connection)
        self.sessions.append(session)
        self.first_client.set()
        try:
            session.start()
            while True:
                data = connection.recv()
                if not data:
                    break
                session.feed(data)
        finally:
            session.close()
            connection.close()
            with contextlib.suppress(ValueError):
                self.sessions.remove(session)

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self.unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
