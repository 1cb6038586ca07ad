"""The host side of the userspace vsock: guest streams bridged to UNIX sockets, as
Firecracker's vsock does (no vhost-vsock kernel module).

- The guest connects to CID 2 port P: we connect to the UNIX socket ``<uds_path>_P``
  and answer RESPONSE (RST if nobody listens there).
- A host program connects to ``<uds_path>`` and writes ``CONNECT <port>\\n``: we send
  the guest a REQUEST from a fresh host port; once the guest's listener answers we
  write ``OK <hostport>\\n`` to the host program and the stream is bridged.

Sockets are served by one poll thread (as pemu/net/polling.py's backends are), never
by the vCPU: a guest packet only changes state and wakes the thread, except the
connect to ``<uds_path>_P``, which on a UNIX socket never waits (a full backlog
fails at once and the guest gets RST).  State is shared with the device under the
device's lock.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable

from pemu import threads
from pemu.hw.virtio.vsock_connection import CONNECTING, ESTABLISHED, VsockConnection
from pemu.hw.virtio.vsock_packet import (
    OP_CREDIT_REQUEST,
    OP_CREDIT_UPDATE,
    OP_REQUEST,
    OP_RESPONSE,
    OP_RST,
    OP_RW,
    OP_SHUTDOWN,
    TYPE_STREAM,
    VMADDR_CID_HOST,
    Packet,
)

CONNECT_LINE_MAX = 32  # "CONNECT 4294967295\n" and then some
FIRST_HOST_PORT = 1 << 30  # host ports we pick for host-initiated connections
IDLE_POLL_MS = 1000
# how long a host program waits for the guest to accept before we give up (the guest
# may have no driver yet, or be slow under TCG); then its socket is closed
CONNECT_TIMEOUT = 30.0


class VsockHost:
    """``VsockHost(uds_path, guest_cid, lock_of, emit)``: ``emit(packet)`` queues a
    packet for the guest (called with the lock held); ``lock_of()`` is the device's
    current lock (the transport's once bound)."""

    def __init__(self, uds_path: str, guest_cid: int, lock_of: Callable[[], threading.RLock],
                 emit: Callable[[Packet], None]) -> None:
        self.uds_path = uds_path
        self.guest_cid = guest_cid
        self.lock_of = lock_of
        self.emit = emit
        self.connections: dict[tuple[int, int], VsockConnection] = {}
        self.handshakes: dict[int, tuple[socket.socket, bytearray]] = {}  # fd -> pending
        self._next_port = FIRST_HOST_PORT
        self.listener = self._listen(uds_path)
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threads.start_daemon(self._run, name="pemu-vsock")

    @staticmethod
    def _listen(path: str) -> socket.socket:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    # -- from the guest (device lock held) ---------------------------------------------------
    def from_guest(self, pkt: Packet) -> None:
        if pkt.src_cid != self.guest_cid or pkt.dst_cid != VMADDR_CID_HOST:
            return  # not for us (and not the guest's to claim): dropped, as Firecracker
        key = (pkt.dst_port, pkt.src_port)
        conn = self.connections.get(key)
        if pkt.type != TYPE_STREAM:
            if pkt.op != OP_RST:
                self._rst_unknown(pkt)
            return
        if pkt.op == OP_REQUEST:
            if conn is not None:
                self._rst_unknown(pkt)
            else:
                self._connect_to_host(pkt)
            return
        if conn is None:
            if pkt.op != OP_RST:
                self._rst_unknown(pkt)  # spec: a packet for no connection gets RST
            return
        conn.peer_credit(pkt)
        if pkt.op == OP_RST:
            conn.close()
        elif pkt.op == OP_RESPONSE and conn.state == CONNECTING:
            conn.state = ESTABLISHED
            conn.prefix += f"OK {conn.host_port}\n".encode()
        elif conn.state != ESTABLISHED:
            conn.reset()
        elif pkt.op == OP_RW:
            if not conn.guest_data(pkt.payload):
                conn.reset()
        elif pkt.op == OP_SHUTDOWN:
            conn.guest_shutdown(pkt.flags)
        elif pkt.op == OP_CREDIT_REQUEST:
            conn.send(OP_CREDIT_UPDATE)
        elif pkt.op != OP_CREDIT_UPDATE:
            conn.reset()  # RESPONSE on an established stream, or an unknown op
        self._reap()
        self.wake()

    def _rst_unknown(self, pkt: Packet) -> None:
        self.emit(Packet(VMADDR_CID_HOST, self.guest_cid, pkt.dst_port, pkt.src_port, OP_RST))

    def _connect_to_host(self, pkt: Packet) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(f"{self.uds_path}_{pkt.dst_port}")
        except OSError:  # nobody listens, or the backlog is full: never wait
            sock.close()
            self._rst_unknown(pkt)
            return
        conn = VsockConnection(sock, self.guest_cid, pkt.dst_port, pkt.src_port,
                               ESTABLISHED, self.emit)
        conn.peer_credit(pkt)
        self.connections[conn.key] = conn
        conn.send(OP_RESPONSE)
        self.wake()

    def chunk_delivered(self, key: tuple[int, int]) -> None:
        """Our last chunk of ``key`` reached the guest's receive queue: read more."""
        conn = self.connections.get(key)
        if conn is not None:
            conn.rx_in_flight = False
            self.wake()

    def reset_all(self) -> None:
        """The driver went away (device reset): every stream ends, the host sockets
        close; the guest is not told (it has no driver to tell)."""
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
        for sock, _ in self.handshakes.values():
            sock.close()
        self.handshakes.clear()

    def _reap(self) -> None:
        for key in [k for k, c in self.connections.items() if c.closed]:
            del self.connections[key]

    # -- the poll thread ------------------------------------------------------------------
    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # a wake-up is pending already, or we are closing

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._iterate()
        except Exception:  # noqa: BLE001 - the guest keeps running without its vsock
            print("pemu: vsock: the host socket thread failed:", file=sys.stderr)
            traceback.print_exc()

    def _interest(self) -> dict[int, int]:
        wanted = {self.listener.fileno(): select.POLLIN}
        for fd in self.handshakes:
            wanted[fd] = select.POLLIN
        for conn in self.connections.values():
            events = (select.POLLIN if conn.wants_read() else 0) | (
                select.POLLOUT if conn.wants_write() else 0)
            if events:
                wanted[conn.sock.fileno()] = events
        return wanted

    def _iterate(self) -> None:
        with self.lock_of():
            if self._stopping:
                return
            wait = self._expire_requests()
            wanted = self._interest()
            by_fd = {c.sock.fileno(): c for c in self.connections.values()}
        poller = select.poll()
        for fd, events in wanted.items():
            poller.register(fd, events)
        poller.register(self._wake_r, select.POLLIN)
        ready = poller.poll(max(1, int(wait * 1000)))
        with self.lock_of():
            if self._stopping:
                return
            for fd, revents in ready:
                if fd == self._wake_r:
                    self._drain_wake()
                elif fd == self.listener.fileno():
                    self._accept()
                elif fd in self.handshakes:
                    self._handshake(fd)
                elif fd in by_fd and not by_fd[fd].closed:
                    conn = by_fd[fd]
                    # a hang-up shows as the error of a write or the EOF of a read
                    if conn.wants_write():
                        conn.flush()
                    if not conn.closed and conn.wants_read() and revents & (
                            select.POLLIN | select.POLLHUP | select.POLLERR):
                        conn.read_host()
            self._reap()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        self.handshakes[sock.fileno()] = (sock, bytearray())

    def _handshake(self, fd: int) -> None:
        """``CONNECT <port>\\n`` from a host program; anything else closes it."""
        sock, line = self.handshakes[fd]
        try:
            data = sock.recv(CONNECT_LINE_MAX - len(line))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        line += data
        if b"\n" not in line:
            if data and len(line) < CONNECT_LINE_MAX:
                return
            del self.handshakes[fd]
            sock.close()
            return
        del self.handshakes[fd]
        words = bytes(line).split(b"\n", 1)[0].split()
        port = int(words[1]) if (len(words) == 2 and words[0] == b"CONNECT"
                                 and words[1].isdigit()) else -1
        if not 0 <= port <= 0xFFFFFFFF:
            sock.close()
            return
        conn = VsockConnection(sock, self.guest_cid, self._free_port(port), port,
                               CONNECTING, self.emit)
        conn.deadline = time.monotonic() + CONNECT_TIMEOUT
        self.connections[conn.key] = conn
        conn.send(OP_REQUEST)

    def _expire_requests(self) -> float:
        """Reset host-initiated streams the guest never answered; the seconds until the
        next one is due (or the idle poll time)."""
        now = time.monotonic()
        wait = IDLE_POLL_MS / 1000
        for conn in self.connections.values():
            if conn.state == CONNECTING:
                if conn.deadline <= now:
                    conn.reset()
                else:
                    wait = min(wait, conn.deadline - now)
        self._reap()
        return wait

    def _free_port(self, guest_port: int) -> int:
        """The next host port (from 2**30 on, wrapping) no stream to ``guest_port`` uses."""
        while True:
            port = self._next_port
            self._next_port = FIRST_HOST_PORT + (port + 1 - FIRST_HOST_PORT) % FIRST_HOST_PORT
            if (port, guest_port) not in self.connections:
                return port

    # -- the end ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._stopping:
            return
        with self.lock_of():
            self._stopping = True
            self.reset_all()
        self.wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.listener.close()
        try:
            os.unlink(self.uds_path)
        except OSError:
            pass
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
