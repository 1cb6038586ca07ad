"""The ``socket`` backend: TCP or Unix stream, as server or client.

A server accepts one peer at a time (others wait in the listen backlog until it
leaves, as with QEMU); while none is connected, guest output is
dropped (the UART must not stall the guest).  ``wait=on`` blocks at startup until
the first peer connects, as QEMU does, so no early boot output is lost.

``tls-creds=ID[,tls-authz=ID]`` makes it TLS (pemu.crypto): the handshake of an
accepted client runs in a thread of its own (a client that stalls it cannot stall the
I/O loop), and a TLS connection is read by a thread too, because a readable socket
does not mean a whole TLS record has arrived.  ``fd=N`` (or a getfd name) is a socket
the manager made: a listening one with ``server=on``, a connected one without.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import sys
import threading
from collections.abc import Callable

from pemu import threads
from pemu.chardev.backend import BackendOptions, QMPData, declare_backend
from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED, Chardev, ChardevError
from pemu.crypto.objects import user_objects
from pemu.crypto.tls_session import TLSRefused, wrap_client, wrap_server
from pemu.fdpass import fd_param
from pemu.fdpass.connection import Connection, PassedFds
from pemu.fdpass.handover import CHARDEV, take
from pemu.main_loop import get_main_loop
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import Property, TypeInfo

MAX_HANDSHAKES = 8  # TLS clients that may be mid-handshake at once
WRITABLE_POLL_S = 0.005  # how often a full socket is checked for room


class SocketChardev(Chardev):
    def __init__(self, *, host: str | None = None, port: int | None = None,
                 path: str | None = None, server: bool = False, wait: bool = True,
                 nodelay: bool = False, id: str | None = None, tls_creds: str | None = None,
                 tls_authz: str | None = None, fd: int | None = None,
                 reconnect: float | None = None, handed: list[int] | None = None) -> None:
        super().__init__(id)
        self._server = server
        # A client with reconnect=S connects again S seconds after it failed or lost
        # its peer (QEMU's reconnect/reconnect-ms); without it a failure is final.
        self._reconnect = reconnect if reconnect and not server else None
        if fd is not None:
            sock = socket.socket(fileno=fd)
            self.unix = sock.family == socket.AF_UNIX
            self.address = sock.getsockname() if self.unix else sock.getsockname()[:2]
            self._owns_path = False
        elif (path is None) == (port is None):
            raise ChardevError("socket chardev needs either path= or host=/port=")
        else:
            self.unix = path is not None
            self.address = path if path is not None else (host or "", port)
            self._owns_path = True
        self.nodelay = nodelay
        self.tls = tls_creds is not None
        self._tls_creds, self._tls_authz = tls_creds, tls_authz
        if self.tls:
            self._check_tls_objects(server)
        self._conn: socket.socket | None = None
        self._stream = None  # a TLS connection's locked stream (pemu.monitor.listener)
        self.passed_fds: PassedFds | None = None  # the UNIX client's SCM_RIGHTS fds
        self._handshaking = 0  # TLS handshakes running in their threads
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        if handed:  # a live update: the old pemu's sockets (see handover_fds)
            self._adopt(handed)
        elif server:
            if fd is not None:
                self._listener = sock
            else:
                self._listen()
            if wait:
                print(f"pemu: waiting for connection on: {self.describe()}", file=sys.stderr,
                      flush=True)
                while not self._connected.is_set():
                    conn, _ = self._listener.accept()
                    self._accepted(conn)
            self._accept_clients(self._conn is None)
        elif fd is not None:
            self._attach(self._client_tls(sock))
        elif self._reconnect is not None:
            try:
                self._connect()
            except ChardevError as e:
                print(f"pemu: chardev {self.id or ''}: {e} (retrying every "
                      f"{self._reconnect:g} s)", file=sys.stderr)
                self._schedule_reconnect()
        else:
            self._connect()

    # -- a live update (pemu/fdpass/handover.py) ------------------------------------------
    def handover_fds(self) -> list[int] | None:
        """What the new pemu takes over: a server's listening socket, then the
        connected peer's if there is one; a client's connection.  None with TLS (its
        session state is not in the descriptor) or for a socket passed in by fd=."""
        if self.tls or self.closed or not self._owns_path:
            return None  # fd=: the manager that passed it in hands it to the new pemu
        fds = [self._listener.fileno()] if self._listener is not None else []
        if self._conn is not None:
            fds.append(self._conn.fileno())
        return fds or None

    def handed_over(self) -> None:
        """The new pemu reads these sockets now: stop reading them, close our copies
        quietly (the peer sees nothing: the new pemu holds the same sockets) and leave
        the socket path to the new pemu."""
        loop = get_main_loop()
        with self._lock:
            conn, self._conn = self._conn, None
            listener, self._listener = self._listener, None
        self._owns_path = False

        def close_ours() -> None:  # on the I/O thread, which may be selecting on them
            for sock in (conn, listener):
                if sock is not None:
                    loop.remove_reader(sock.fileno())
                    sock.close()

        loop.call_soon(close_ours)

    def _adopt(self, fds: list[int]) -> None:
        if self._server:
            self._listener = socket.socket(fileno=fds[0])
            fds = fds[1:]
        if fds:
            self._attach(socket.socket(fileno=fds[0]))  # still connected
        elif self._server:
            self._accept_clients(True)

    def describe(self) -> str:
        if self.unix:
            return f"disconnected:unix:{self.address},server=on"
        host, port = self.address  # type: ignore[misc]
        return f"disconnected:tcp:{host or '0.0.0.0'}:{port},server=on"

    @property
    def listen_address(self):
        """Where the server actually listens (the real port when port=0 was asked)."""
        return self._listener.getsockname() if self._listener else None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def be_open(self) -> bool:
        return self.connected

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def _family(self) -> int:
        return socket.AF_UNIX if self.unix else socket.AF_INET

    def _listen(self) -> None:
        if self.unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)  # a stale socket from a previous run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            host, port = self.address  # type: ignore[misc]
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family = infos[0][0] if infos else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.address if self.unix else infos[0][4])
            sock.listen(1)
        except OSError as e:
            sock.close()
            raise ChardevError(f"could not listen on {self.address}: {e.strerror}") from None
        self._listener = sock

    def _connect(self) -> None:
        self._attach(self._client_socket())

    def _client_socket(self) -> socket.socket:
        """A connected client socket (TLS if asked), or ChardevError."""
        try:
            if self.unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.address)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(self.address)
        except OSError as e:
            raise ChardevError(f"could not connect to {self.address}: {e.strerror}") from None
        return self._client_tls(sock)

    # -- reconnect=: a client that lost its server tries again -----------------------
    def _schedule_reconnect(self) -> None:
        if self._reconnect is not None and not self.closed:
            get_main_loop().add_timer(self._reconnect, self._try_reconnect)

    def _try_reconnect(self) -> None:
        if not self.closed and self._conn is None:
            # connect() may block (TCP, TLS handshake): not on the I/O thread
            threads.start_daemon(self._reconnect_in_thread, name="pemu-chardev-reconnect")

    def _reconnect_in_thread(self) -> None:
        try:
            sock = self._client_socket()
        except ChardevError:
            get_main_loop().call_soon(self._schedule_reconnect)
            return

        def attach() -> None:
            if self.closed or self._conn is not None:
                sock.close()
            else:
                self._attach(sock)
        get_main_loop().call_soon(attach)

    def _check_tls_objects(self, server: bool) -> None:
        """Refuse unknown or wrong-endpoint objects now, not at the first client."""
        store = user_objects()
        creds = store.tls_creds(self._tls_creds)
        want = "server" if server else "client"
        if creds.endpoint != want:
            raise ChardevError(f"TLS credentials '{self._tls_creds}' are for "
                               f"endpoint={creds.endpoint}; this socket needs {want}")
        if self._tls_authz:
            if not server:
                raise ChardevError("tls-authz applies to server sockets only")
            store.authz(self._tls_authz)

    def _client_tls(self, sock: socket.socket) -> socket.socket:
        if not self.tls:
            return sock
        host = None if self.unix else self.address[0] or None
        try:
            return wrap_client(sock, self._tls_creds, hostname=host)
        except (TLSRefused, OptionError) as e:
            raise ChardevError(f"{self.address}: {e}") from None

    def _accepted(self, conn: socket.socket) -> None:
        """A new client: TLS handshake (blocking: at startup or in its own thread)."""
        if not self.tls:
            self._attach(conn)
            return
        try:
            self._attach(wrap_server(conn, self._tls_creds, self._tls_authz))
        except TLSRefused as e:
            print(f"pemu: chardev {self.id or ''}: {e}", file=sys.stderr)

    def _handshake_in_thread(self, conn: socket.socket) -> None:
        """Several handshakes may run at once (one stalled client must not lock the
        right one out); the first to succeed while nobody is connected is the peer."""
        try:
            tls = wrap_server(conn, self._tls_creds, self._tls_authz)
        except TLSRefused as e:
            print(f"pemu: chardev {self.id or ''}: {e}", file=sys.stderr)
            get_main_loop().call_soon(self._handshake_done)
            return
        get_main_loop().call_soon(lambda: self._handshake_done(tls))

    def _handshake_done(self, tls: socket.socket | None = None) -> None:
        self._handshaking -= 1
        if tls is None:
            return
        if self._conn is not None or self.closed:
            tls.close()  # one peer at a time, as QEMU
        else:
            self._attach(tls)

    def _attach(self, conn: socket.socket) -> None:
        if self.nodelay and not self.unix:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conn = conn
            # descriptors the client passes with SCM_RIGHTS (libvirt's getfd before
            # migrate "fd:NAME"), for the monitor session on this chardev
            self.passed_fds = PassedFds() if conn.family == socket.AF_UNIX \
                and not isinstance(conn, ssl.SSLSocket) else None
        self._connected.set()
        self._accept_clients(False)
        # OPENED before the first byte is read, so the frontend can start a new
        # session (a QMP greeting) that the client's first command then reaches.
        self._emit(CHR_EVENT_OPENED)
        if isinstance(conn, ssl.SSLSocket):
            self._stream = stream = Connection(conn)
            threads.start_daemon(self._read_tls, stream, name="pemu-chardev-tls")
        else:
            get_main_loop().add_reader(conn.fileno(), self._on_readable)

    def _read_tls(self, stream) -> None:
        loop = get_main_loop()
        while True:
            data = stream.recv()
            if not data:
                break
            loop.call_soon(lambda data=data: self._deliver(data))
        loop.call_soon(lambda: self._disconnect() if self._stream is stream else None)

    def _accept_clients(self, accepting: bool) -> None:
        """A server takes one peer at a time as QEMU does: by not accepting while it has
        one, so that a second client waits in the listen backlog and is taken when the
        first leaves.  libvirt relies on it: its next connection to the monitor may come
        before the previous one is closed."""
        if self._listener is None or self.closed:
            return
        if accepting:
            get_main_loop().add_reader(self._listener.fileno(), self._on_accept)
        else:
            get_main_loop().remove_reader(self._listener.fileno())

    def _on_accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        if self._conn is not None or self._handshaking >= MAX_HANDSHAKES:
            conn.close()  # one peer at a time, as QEMU
            return
        if self.tls:
            self._handshaking += 1
            threads.start_daemon(self._handshake_in_thread, conn, name="pemu-chardev-tls")
            return
        self._attach(conn)

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            data = self.passed_fds.recv(conn) if self.passed_fds is not None \
                else conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._deliver(data)
        else:
            self._disconnect()

    def _disconnect(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            stream, self._stream = self._stream, None
            passed, self.passed_fds = self.passed_fds, None
        if passed is not None:
            passed.close_all()  # those no command took
        self._connected.clear()
        if conn is not None:
            if stream is not None:
                stream.close()  # its reader thread sees the end and stops
            else:
                get_main_loop().remove_reader(conn.fileno())
                conn.close()
            with self._in_lock:
                self._inbuf.clear()  # unread input of a client that left is dropped
            self._emit(CHR_EVENT_CLOSED)
            self._schedule_reconnect()
            self._accept_clients(True)

    def write(self, data: bytes) -> None:
        with self._lock:
            conn, stream = self._conn, self._stream
            if conn is None:
                return
            if stream is not None:
                stream.send(data)
                if not stream.closed:
                    return
            else:
                try:
                    conn.sendall(data)
                    return
                except OSError:
                    pass
        get_main_loop().call_soon(self._disconnect)

    def write_some(self, data: bytes) -> int:
        """As much as the socket's buffer takes now (a slow peer holds the frontend's
        output back instead of blocking the vCPU); all of it when no peer is there
        (dropped, as ``write`` does) or over TLS (the stream queues it)."""
        with self._lock:
            conn, stream = self._conn, self._stream
        if conn is None or stream is not None:
            self.write(data)
            return len(data)
        try:
            return conn.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError:
            get_main_loop().call_soon(self._disconnect)
            return len(data)

    def notify_writable(self, callback: Callable[[], None]) -> None:
        # The main loop watches fds for reading only; a short poll is enough for the
        # rare case of a peer that stopped reading.
        def check() -> None:
            conn = self._conn
            try:
                ready = conn is None or self.closed or select.select([], [conn], [], 0)[1]
            except (OSError, ValueError):  # closed under us: write_some drops from now on
                ready = True
            if ready:
                callback()
            else:
                get_main_loop().add_timer(WRITABLE_POLL_S, check)
        get_main_loop().call_soon(check)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._disconnect()
        if self._listener is not None:
            get_main_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            if self.unix and self._owns_path:
                with contextlib.suppress(OSError):
                    os.unlink(self.address)


def _open_socket(options: BackendOptions) -> SocketChardev:
    server, wait, nodelay = (options.flag(k) for k in ("server", "wait", "nodelay"))
    reconnect = None
    if options.has("reconnect-ms"):
        reconnect = options.number("reconnect-ms", 0, 2**31) / 1000
    elif options.has("reconnect"):
        reconnect = float(options.number("reconnect", 0, 2**31))
    if reconnect and server:
        raise OptionError(f"{options.what}: reconnect is only for client sockets "
                          "(server=off)")
    common = {"server": server, "wait": wait, "id": options.id, "reconnect": reconnect,
              "tls_creds": options.text("tls-creds") or None,
              "tls_authz": options.text("tls-authz") or None}
    if common["tls_authz"] and not common["tls_creds"]:
        raise OptionError(f"{options.what}: tls-authz needs tls-creds")
    if options.has("fd"):
        return SocketChardev(fd=fd_param(options.required("fd")), nodelay=nodelay, **common)
    handed = take(CHARDEV, options.id) if options.id and not common["tls_creds"] else None
    if options.has("path"):
        return SocketChardev(path=options.required("path"), handed=handed, **common)
    if not options.has("port"):
        raise OptionError(f"{options.what}: socket needs 'path', 'port' or 'fd'")
    return SocketChardev(host=options.text("host") or None,
                         port=options.number("port", 0, 65535), nodelay=nodelay,
                         handed=handed, **common)


def _socket_from_qmp(info: TypeInfo, data: QMPData) -> dict[str, str]:
    """QMP's ChardevSocket: the address is a SocketAddressLegacy (unix or inet);
    ``server`` defaults to on and ``wait`` to off there."""
    addr = data.get("addr")
    if not isinstance(addr, dict):
        raise OptionError("Parameter 'backend.data.addr' is missing")
    inner = addr.get("data", {})
    opts = {"server": "on" if data.get("server", True) else "off",
            "wait": "on" if data.get("wait", False) else "off"}
    if addr.get("type") == "unix" and isinstance(inner.get("path"), str):
        opts["path"] = inner["path"]
    elif addr.get("type") == "fd" and isinstance(inner.get("str"), str):
        opts["fd"] = inner["str"]  # a getfd name or a number
    elif addr.get("type") == "inet" and isinstance(inner.get("port"), str | int):
        opts["host"] = str(inner.get("host", "127.0.0.1"))
        opts["port"] = str(inner["port"])
    else:
        raise OptionError("backend.data.addr must be unix (path), inet (host, port) or fd")
    for key in ("tls-creds", "tls-authz"):
        if isinstance(data.get(key), str):
            opts[key] = data[key]
    for key in ("reconnect", "reconnect-ms"):
        if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
            opts[key] = str(data[key])
    return opts


declare_backend("socket", "a TCP or Unix stream socket, as server or client", _open_socket,
                Property("host", "str", description="TCP: the address (default: all)"),
                Property("port", "str", description="TCP: the port"),
                Property("path", "str", description="Unix: the socket's path"),
                Property("server", "bool", "off", "listen instead of connecting"),
                Property("wait", "bool", "on", "server: wait for a client at startup"),
                Property("nodelay", "bool", "off", "TCP_NODELAY on the connection"),
                Property("tls-creds", "str", description="ID of a tls-creds-x509/psk object: "
                         "TLS on the connection"),
                Property("tls-authz", "str", description="ID of an authz-* object that "
                         "decides which TLS clients may connect"),
                Property("fd", "str", description="a socket passed in (number, or a getfd "
                         "name): listening with server=on, else connected"),
                Property("reconnect", "str", description="client: seconds between "
                         "attempts to connect again after a failure (0: never)"),
                Property("reconnect-ms", "str", description="client: the same in "
                         "milliseconds"),
                from_qmp=_socket_from_qmp)
