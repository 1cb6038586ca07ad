"""One vsock stream between a guest port and a host UNIX socket, with the credit
accounting of spec 5.10.6.3.

Guest -> host: the guest may have at most ``BUF_ALLOC`` bytes in flight towards us
(our ``buf_alloc`` less what it sent beyond our ``fwd_cnt``).  Its data waits in
``to_host`` until the host socket takes it; only then does ``fwd_cnt`` move, and a
CREDIT_UPDATE tells the guest it may send more.  A guest that sends beyond its credit
is reset.

Host -> guest: we read the host socket only while the guest has credit for us
(``peer_buf_alloc - (tx_cnt - peer_fwd_cnt)``) and the last chunk has reached the
guest's receive queue, so pemu holds at most one chunk per connection.

Every method runs with the device lock held; sockets are non-blocking.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from pemu.hw.virtio.vsock_packet import (
    OP_CREDIT_UPDATE,
    OP_RST,
    OP_RW,
    OP_SHUTDOWN,
    SHUTDOWN_BOTH,
    SHUTDOWN_RCV,
    SHUTDOWN_SEND,
    VMADDR_CID_HOST,
    Packet,
)

BUF_ALLOC = 256 * 1024  # our receive buffer per connection, as the guest sees it
READ_CHUNK = 64 * 1024  # most read from the host socket at once
CREDIT_UPDATE_EVERY = BUF_ALLOC // 4  # tell the guest once this much credit came back

CONNECTING = "connecting"  # host-initiated: REQUEST sent, no RESPONSE yet
ESTABLISHED = "established"


class VsockConnection:
    def __init__(self, sock: socket.socket, guest_cid: int, host_port: int,
                 guest_port: int, state: str, emit: Callable[[Packet], None]) -> None:
        self.sock = sock
        self.guest_cid = guest_cid
        self.host_port = host_port
        self.guest_port = guest_port
        self.state = state
        self.emit = emit  # queue a packet for the guest
        self.to_host = bytearray()  # guest data the host socket has not taken yet
        self.prefix = bytearray()  # our own bytes for the host first ("OK <port>\n")
        self.fwd_cnt = 0  # guest bytes the host socket took
        self.fwd_cnt_told = 0  # the fwd_cnt the guest last heard from us
        self.tx_cnt = 0  # bytes we sent to the guest
        self.peer_buf_alloc = 0
        self.peer_fwd_cnt = 0
        self.peer_shutdown = 0  # SHUTDOWN_* flags the guest sent
        self.host_eof = False
        self.rx_in_flight = False  # a chunk of ours waits in the device's receive queue
        self.deadline = 0.0  # CONNECTING: when we stop waiting for the guest (monotonic)
        self.closed = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.host_port, self.guest_port)

    # -- packets to the guest ---------------------------------------------------------
    def packet(self, op: int, flags: int = 0, payload: bytes = b"") -> Packet:
        self.fwd_cnt_told = self.fwd_cnt
        return Packet(VMADDR_CID_HOST, self.guest_cid, self.host_port, self.guest_port, op,
                      flags, BUF_ALLOC, self.fwd_cnt, payload)

    def send(self, op: int, flags: int = 0, payload: bytes = b"") -> None:
        self.emit(self.packet(op, flags, payload))

    # -- credit -----------------------------------------------------------------------
    def peer_credit(self, pkt: Packet) -> None:
        """Every guest packet carries its receive buffer and how much it consumed."""
        self.peer_buf_alloc = pkt.buf_alloc
        self.peer_fwd_cnt = pkt.fwd_cnt

    def guest_credit(self) -> int:
        """How many more bytes the guest can take from us."""
        in_flight = (self.tx_cnt - self.peer_fwd_cnt) & 0xFFFFFFFF
        return max(0, self.peer_buf_alloc - in_flight)

    # -- what the poll thread waits for ---------------------------------------------------
    def wants_read(self) -> bool:
        return (self.state == ESTABLISHED and not self.closed and not self.host_eof
                and not self.rx_in_flight and not self.peer_shutdown & SHUTDOWN_RCV
                and self.guest_credit() > 0)

    def wants_write(self) -> bool:
        return not self.closed and bool(self.prefix or self.to_host)

    # -- guest -> host ------------------------------------------------------------------
    def guest_data(self, data: bytes) -> bool:
        """RW from the guest; False if it broke our credit (the caller resets)."""
        if self.peer_shutdown & SHUTDOWN_SEND:
            return False
        if len(self.to_host) + len(data) > BUF_ALLOC:
            return False
        self.to_host += data
        return True

    def flush(self) -> None:
        """Write what the host socket takes; on a broken host socket reset the guest."""
        try:
            if self.prefix:
                n = self.sock.send(self.prefix)
                del self.prefix[:n]
                if self.prefix:
                    return
            if self.to_host:
                n = self.sock.send(self.to_host)
                del self.to_host[:n]
                self.fwd_cnt = (self.fwd_cnt + n) & 0xFFFFFFFF
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.reset()
            return
        if not self.to_host:
            self._finish_guest_shutdown()
        told = (self.fwd_cnt - self.fwd_cnt_told) & 0xFFFFFFFF
        if not self.closed and (told >= CREDIT_UPDATE_EVERY or (told and not self.to_host)):
            self.send(OP_CREDIT_UPDATE)

    def guest_shutdown(self, flags: int) -> None:
        self.peer_shutdown |= flags & SHUTDOWN_BOTH
        if not self.to_host:
            self._finish_guest_shutdown()

    def _finish_guest_shutdown(self) -> None:
        """Everything the guest sent is out: pass its shutdown on to the host socket."""
        if self.peer_shutdown == SHUTDOWN_BOTH and not self.prefix:
            # a clean close: the guest waits for our RST (spec 5.10.6.7)
            self.reset()
        elif self.peer_shutdown & SHUTDOWN_SEND and not self.prefix:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    # -- host -> guest ------------------------------------------------------------------
    def read_host(self) -> None:
        """The host socket is readable: one chunk within the guest's credit."""
        try:
            data = self.sock.recv(min(READ_CHUNK, self.guest_credit()))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.reset()
            return
        if not data:
            # the host will send no more; the guest answers with its own shutdown
            self.host_eof = True
            self.send(OP_SHUTDOWN, SHUTDOWN_SEND)
            return
        self.tx_cnt = (self.tx_cnt + len(data)) & 0xFFFFFFFF
        self.rx_in_flight = True
        self.send(OP_RW, payload=data)

    # -- the end ------------------------------------------------------------------------
    def reset(self) -> None:
        """Tell the guest the connection is gone (RST) and close the host socket."""
        if not self.closed:
            self.send(OP_RST)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

