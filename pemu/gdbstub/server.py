"""Where gdb connects: ``-gdb tcp::PORT``, ``-gdb unix:PATH``, ``-s``, user mode ``-g PORT``.

One debugger at a time, as in QEMU; a second client is turned away while the first
is attached.  A client that vanishes without detaching is treated as a detach, so
the guest is never left stopped with nobody to resume it.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

from pemu import threads
from pemu.gdbstub.protocol import GdbSession
from pemu.gdbstub.target import DebugTarget
from pemu.monitor.listener import bind_tcp, bind_unix_private
from pemu.qemuopts.keyval import OptionError


def parse_gdb_spec(spec: str) -> tuple[str, str | tuple[str, int]]:
    """``tcp::1234``, ``tcp:HOST:PORT``, ``unix:PATH[,server=on]``, or a bare port."""
    if spec.isdigit():
        return "tcp", ("127.0.0.1", int(spec))
    if spec.startswith("unix:"):
        return "unix", spec[5:].split(",", 1)[0]
    rest = spec[4:] if spec.startswith("tcp:") else spec
    rest = rest.split(",", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise OptionError(f"-gdb {spec}: expected tcp::PORT, tcp:HOST:PORT or unix:PATH")
    # QEMU listens on every address for "tcp::PORT"; a debugger can write any guest
    # memory, so pemu binds loopback unless a host is named explicitly.
    return "tcp", (host.strip("[]") or "127.0.0.1", int(port))


class GdbServer:
    def __init__(self, target: DebugTarget, spec: str) -> None:
        self.target = target
        kind, where = parse_gdb_spec(spec)
        if kind == "unix":
            assert isinstance(where, str)
            self.sock = bind_unix_private(where)
            self.unix_path: str | None = where
        else:
            assert isinstance(where, tuple)
            self.sock = bind_tcp(*where)
            self.unix_path = None
        self.session: GdbSession | None = None
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._thread = threads.start_daemon(self._accept_loop, name="pemu-gdbstub")

    @property
    def address(self):
        return self.sock.getsockname()

    def wait_for_client(self) -> None:
        self.connected.wait()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                busy = self.session is not None and not self.session.closed
            if busy:
                conn.close()
                continue
            threads.start_daemon(self._serve, conn, name="pemu-gdb-conn")

    def _serve(self, conn: socket.socket) -> None:
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_lock = threading.Lock()

        def send(data: bytes) -> None:
            with send_lock:
                with contextlib.suppress(OSError):
                    conn.sendall(data)

        session = GdbSession(self.target, send,
                             on_close=lambda: _shutdown(conn))
        with self._lock:
            self.session = session
        self.target.attached()
        self.connected.set()
        try:
            while not session.closed:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                session.feed(data)
        except Exception as e:  # noqa: BLE001 - report, keep the guest alive
            print(f"pemu: gdbstub: connection failed: {e}", file=sys.stderr)
        finally:
            if not session.closed:
                session.close()
                self.target.detach()  # vanished without "D": let the guest run
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.unix_path:
            import os

            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)


def serve(target: object, spec: str, wait: bool = False) -> GdbServer:
    """Listen on ``spec`` (``-gdb``/``-g`` syntax) for ``target``; with ``wait``, block
    until GDB attaches (``-S`` boards, user mode)."""
    server = GdbServer(target, spec)
    if wait:
        server.wait_for_client()
    return server


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
