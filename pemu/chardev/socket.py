"""The ``socket`` backend: TCP or Unix stream, as server or client.

A server accepts one peer at a time; while none is connected, guest output is
dropped (the UART must not stall the guest).  ``wait=on`` blocks at startup until
the first peer connects, as QEMU does, so no early boot output is lost.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading

from pemu.chardev.backend import BackendOptions, QMPData, declare_backend
from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED, Chardev, ChardevError
from pemu.main_loop import get_main_loop
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import Property, TypeInfo


class SocketChardev(Chardev):
    def __init__(self, *, host: str | None = None, port: int | None = None,
                 path: str | None = None, server: bool = False, wait: bool = True,
                 nodelay: bool = False, id: str | None = None) -> None:
        super().__init__(id)
        if (path is None) == (port is None):
            raise ChardevError("socket chardev needs either path= or host=/port=")
        self.unix = path is not None
        self.address: str | tuple[str, int] = path if path is not None else (host or "", port)
        self.nodelay = nodelay
        self._conn: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        if server:
            self._listen()
            if wait:
                print(f"pemu: waiting for connection on: {self.describe()}", file=sys.stderr,
                      flush=True)
                conn, _ = self._listener.accept()
                self._attach(conn)
            get_main_loop().add_reader(self._listener.fileno(), self._on_accept)
        else:
            self._connect()

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
        try:
            if self.unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.address)
            else:
                sock = socket.create_connection(self.address)
        except OSError as e:
            raise ChardevError(f"could not connect to {self.address}: {e.strerror}") from None
        self._attach(sock)

    def _attach(self, conn: socket.socket) -> None:
        if self.nodelay and not self.unix:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conn = conn
        self._connected.set()
        # OPENED before the first byte is read, so the frontend can start a new
        # session (a QMP greeting) that the client's first command then reaches.
        self._emit(CHR_EVENT_OPENED)
        get_main_loop().add_reader(conn.fileno(), self._on_readable)

    def _on_accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        if self._conn is not None:
            conn.close()  # one peer at a time, as QEMU
            return
        self._attach(conn)

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            data = conn.recv(4096)
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
        self._connected.clear()
        if conn is not None:
            get_main_loop().remove_reader(conn.fileno())
            conn.close()
            with self._in_lock:
                self._inbuf.clear()  # unread input of a client that left is dropped
            self._emit(CHR_EVENT_CLOSED)

    def write(self, data: bytes) -> None:
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                conn.sendall(data)
                return
            except OSError:
                pass
        get_main_loop().call_soon(self._disconnect)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._disconnect()
        if self._listener is not None:
            get_main_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            if self.unix:
                with contextlib.suppress(OSError):
                    os.unlink(self.address)


def _open_socket(options: BackendOptions) -> SocketChardev:
    server, wait, nodelay = (options.flag(k) for k in ("server", "wait", "nodelay"))
    if options.has("path"):
        return SocketChardev(path=options.required("path"), server=server, wait=wait,
                             id=options.id)
    if not options.has("port"):
        raise OptionError(f"{options.what}: socket needs 'path' or 'port'")
    return SocketChardev(host=options.text("host") or None,
                         port=options.number("port", 0, 65535), server=server, wait=wait,
                         nodelay=nodelay, id=options.id)


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
    elif addr.get("type") == "inet" and isinstance(inner.get("port"), str | int):
        opts["host"] = str(inner.get("host", "127.0.0.1"))
        opts["port"] = str(inner["port"])
    else:
        raise OptionError("backend.data.addr must be unix (path) or inet (host, port)")
    return opts


declare_backend("socket", "a TCP or Unix stream socket, as server or client", _open_socket,
                Property("host", "str", description="TCP: the address (default: all)"),
                Property("port", "str", description="TCP: the port"),
                Property("path", "str", description="Unix: the socket's path"),
                Property("server", "bool", "off", "listen instead of connecting"),
                Property("wait", "bool", "on", "server: wait for a client at startup"),
                Property("nodelay", "bool", "off", "TCP_NODELAY on the connection"),
                from_qmp=_socket_from_qmp)
