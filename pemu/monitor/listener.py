"""Listening sockets for monitors: UNIX (mode 0600) and TCP (TLS unless opted out).

Each accepted client gets its own session object and a reader thread.  Monitor
clients are few and long-lived, and a blocking TLS handshake in its own thread cannot
stall anybody else, so threads are simpler here than the shared I/O loop.

UNIX sockets are bound inside a fresh private directory, made 0600, then renamed into
place: there is no moment at which another user could connect to the new socket.
An existing file that is not a socket is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable

from pemu import threads
from pemu.crypto.tls_session import TLSRefused
from pemu.fdpass.connection import Connection, PassedFds  # noqa: F401 - re-exported
from pemu.qemuopts.keyval import OptionError

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
    # The private directory makes the name longer than ``path``: a path near the
    # 107-byte limit of sun_path (libvirt's are) is bound through the directory's
    # /proc/self/fd link, which the kernel resolves like the directory itself.
    dir_fd = os.open(private, os.O_PATH | os.O_DIRECTORY)
    bind_name = tmp if len(os.fsencode(tmp)) < 108 else f"/proc/self/fd/{dir_fd}/s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(bind_name)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        sock.listen(4)
    except OSError as e:
        sock.close()
        raise OptionError(f"could not listen on {path}: {e.strerror or e}") from None
    finally:
        os.close(dir_fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return sock


def _inode(path: str) -> int | None:
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


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
        # the socket file we made: a process that took the path over since (a live
        # update's new pemu, started with the same -qmp) keeps its own on our close
        self._unix_ino = _inode(unix_path) if unix_path else None
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
        if self.unix_path and _inode(self.unix_path) == self._unix_ino:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
