"""The userspace virtio-vsock driven from Python: a guest side built on the test
driver's queues, host programs on real UNIX sockets."""

from __future__ import annotations

import socket
import struct

import pytest
from hwtest_util import wait_until
from virtio_driver import Driver, make_machine

from pemu.hw.virtio import vsock_connection, vsock_host
from pemu.hw.virtio.vsock import VirtioVsock, _create
from pemu.hw.virtio.vsock_packet import (
    HEADER_SIZE,
    OP_CREDIT_UPDATE,
    OP_REQUEST,
    OP_RESPONSE,
    OP_RST,
    OP_RW,
    OP_SHUTDOWN,
    SHUTDOWN_BOTH,
    SHUTDOWN_SEND,
    Packet,
)
from pemu.qemuopts.keyval import OptionError

GUEST_CID = 3
RX_BUF = HEADER_SIZE + 4096  # as Linux posts them
NUM = 64


class Guest:
    """The driver side: posts receive buffers, sends packets, collects replies."""

    def __init__(self, tmp_path) -> None:
        self.uds = str(tmp_path / "v.sock")
        self.dev = VirtioVsock(GUEST_CID, self.uds)
        space, self.transport, _ = make_machine(self.dev)
        self.drv = Driver(space)
        self.rx, self.tx, self.event = self.drv.bring_up(3, num=NUM)
        self.rx_bufs: dict[int, int] = {}
        for _ in range(NUM // 2):
            self._post_rx(self.drv.ram.alloc(RX_BUF))
        self.rx.kick()
        self.received: list[Packet] = []
        self.buf_alloc = 64 * 1024
        self.fwd_cnt = 0

    def _post_rx(self, addr: int) -> None:
        head = self.rx.add([(addr, RX_BUF, True)])
        self.rx_bufs[head] = addr

    def send(self, op: int, src_port: int, dst_port: int, payload: bytes = b"",
             flags: int = 0, src_cid: int = GUEST_CID, dst_cid: int = 2) -> None:
        pkt = Packet(src_cid, dst_cid, src_port, dst_port, op, flags, self.buf_alloc,
                     self.fwd_cnt, payload)
        raw = pkt.header() + payload
        addr = self.drv.ram.alloc(len(raw))
        self.drv.space.write(addr, raw)
        # header and payload in separate descriptors, as Linux sends them
        bufs = [(addr, HEADER_SIZE, False)]
        if payload:
            bufs.append((addr + HEADER_SIZE, len(payload), False))
        self.tx.add(bufs)
        self.tx.kick()
        for head, _ in self.tx.get_used():
            self.tx.free.append(head)

    def poll(self) -> list[Packet]:
        """Packets that arrived since the last call (buffers are re-posted)."""
        got = []
        with self.transport.lock:
            used = self.rx.get_used()
            for head, written in used:
                addr = self.rx_bufs.pop(head)
                raw = self.drv.space.read(addr, written)
                pkt, length = Packet.parse_header(raw)
                pkt.payload = raw[HEADER_SIZE:HEADER_SIZE + length]
                assert len(pkt.payload) == length
                got.append(pkt)
                self.rx.free.append(head)
                self._post_rx(addr)
            if used:
                self.rx.kick()
        self.received += got
        return got

    def wait_for(self, op: int, timeout: float = 5.0) -> Packet:
        found: list[Packet] = []

        def look() -> bool:
            self.poll()
            found.extend(p for p in self.received if p.op == op)
            return bool(found)

        assert wait_until(look, timeout), f"no packet with op {op}: {self.received}"
        pkt = found[0]
        self.received.remove(pkt)
        return pkt

    def read_stream(self, size: int, timeout: float = 5.0) -> bytes:
        data = bytearray()

        def more() -> bool:
            self.poll()
            for p in [p for p in self.received if p.op == OP_RW]:
                data.extend(p.payload)
                self.received.remove(p)
            return len(data) >= size

        assert wait_until(more, timeout), f"got {len(data)} of {size} bytes"
        return bytes(data)


@pytest.fixture
def guest(tmp_path):
    g = Guest(tmp_path)
    yield g
    g.dev.close()


def host_server(path: str) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(5)
    return srv


def closed_by_peer(sock: socket.socket) -> bool:
    """EOF, or a reset when pemu closed with our unread bytes still queued."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_config_holds_the_guest_cid(guest):
    assert guest.drv.config(0, 8) == GUEST_CID


def test_guest_connects_to_a_host_unix_socket_and_back(guest):
    srv = host_server(guest.uds + "_1234")
    guest.send(OP_REQUEST, 5000, 1234)
    resp = guest.wait_for(OP_RESPONSE)
    assert (resp.src_cid, resp.dst_cid, resp.src_port, resp.dst_port) == (2, 3, 1234, 5000)
    assert resp.buf_alloc == vsock_connection.BUF_ALLOC
    peer, _ = srv.accept()
    peer.settimeout(5)
    guest.send(OP_RW, 5000, 1234, b"ping from the guest")
    assert peer.recv(100) == b"ping from the guest"
    # the bytes the host took come back as credit
    update = guest.wait_for(OP_CREDIT_UPDATE)
    assert update.fwd_cnt == len(b"ping from the guest")
    peer.sendall(b"pong from the host")
    assert guest.read_stream(18) == b"pong from the host"
    # a clean close: SHUTDOWN both ways, the host sees EOF, the guest gets RST
    guest.send(OP_SHUTDOWN, 5000, 1234, flags=SHUTDOWN_BOTH)
    assert peer.recv(100) == b""
    guest.wait_for(OP_RST)
    assert guest.dev.host.connections == {}
    peer.close()
    srv.close()


def test_host_connects_to_a_guest_port(guest):
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.settimeout(5)
    host.connect(guest.uds)
    host.sendall(b"CONN")  # the line may come in pieces
    host.sendall(b"ECT 80\n")
    req = guest.wait_for(OP_REQUEST)
    assert (req.src_cid, req.dst_cid, req.dst_port) == (2, GUEST_CID, 80)
    hostport = req.src_port
    guest.send(OP_RESPONSE, 80, hostport)
    assert host.recv(100) == f"OK {hostport}\n".encode()
    host.sendall(b"GET /")
    assert guest.read_stream(5) == b"GET /"
    guest.send(OP_RW, 80, hostport, b"200 OK")
    assert host.recv(100) == b"200 OK"
    # the host program half-closes: the guest hears SHUTDOWN(SEND), can still answer
    host.shutdown(socket.SHUT_WR)
    shut = guest.wait_for(OP_SHUTDOWN)
    assert shut.flags == SHUTDOWN_SEND
    guest.send(OP_RW, 80, hostport, b"bye")
    assert host.recv(100) == b"bye"
    host.close()


def test_host_connect_refused_by_the_guest_and_bad_lines(guest):
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.settimeout(5)
    host.connect(guest.uds)
    host.sendall(b"CONNECT 81\n")
    req = guest.wait_for(OP_REQUEST)
    guest.send(OP_RST, 81, req.src_port)  # nobody listens on 81 in the guest
    assert host.recv(100) == b""
    for line in (b"HELLO 5\n", b"CONNECT x\n", b"C" * 40):
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bad.settimeout(5)
        bad.connect(guest.uds)
        bad.sendall(line)
        assert closed_by_peer(bad)  # without a word
        bad.close()
    host.close()


def test_host_connect_unanswered_by_the_guest_times_out(guest, monkeypatch):
    monkeypatch.setattr(vsock_host, "CONNECT_TIMEOUT", 0.3)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.settimeout(5)
    host.connect(guest.uds)
    host.sendall(b"CONNECT 82\n")
    req = guest.wait_for(OP_REQUEST)  # ... and the guest never answers
    assert host.recv(100) == b""
    rst = guest.wait_for(OP_RST)  # the guest hears that the request is off
    assert (rst.src_port, rst.dst_port) == (req.src_port, 82)
    host.close()


def test_host_to_guest_respects_the_guest_credit(guest):
    srv = host_server(guest.uds + "_7")
    guest.buf_alloc = 1000  # the guest can hold 1000 bytes of ours
    guest.send(OP_REQUEST, 6000, 7)
    guest.wait_for(OP_RESPONSE)
    peer, _ = srv.accept()
    peer.sendall(b"x" * 5000)
    assert guest.read_stream(1000) == b"x" * 1000
    assert not wait_until(lambda: guest.poll() != [], timeout=0.3)  # no credit: nothing
    guest.fwd_cnt = 1000  # the guest application read it all
    guest.send(OP_CREDIT_UPDATE, 6000, 7)
    assert guest.read_stream(1000) == b"x" * 1000
    guest.buf_alloc = 64 * 1024
    guest.fwd_cnt = 2000
    guest.send(OP_CREDIT_UPDATE, 6000, 7)
    assert guest.read_stream(3000) == b"x" * 3000
    peer.close()
    srv.close()


def test_a_chunk_larger_than_a_receive_buffer_is_split(guest):
    srv = host_server(guest.uds + "_9")
    guest.send(OP_REQUEST, 6001, 9)
    guest.wait_for(OP_RESPONSE)
    peer, _ = srv.accept()
    data = bytes(range(256)) * 40  # 10240 bytes: three receive buffers
    peer.sendall(data)
    assert guest.read_stream(len(data)) == data
    assert all(len(p.payload) <= 4096 for p in guest.received)
    peer.close()
    srv.close()


def test_refusals_resets_and_foreign_packets(guest):
    guest.send(OP_REQUEST, 5001, 4321)  # nobody listens on <uds>_4321
    rst = guest.wait_for(OP_RST)
    assert (rst.src_port, rst.dst_port) == (4321, 5001)
    guest.send(OP_RW, 5002, 1, b"data for no connection")
    guest.wait_for(OP_RST)
    guest.send(OP_REQUEST, 5003, 1, src_cid=7)  # another CID than the guest's: dropped
    guest.send(OP_RST, 5004, 1)  # RST for nothing: no answer
    assert not wait_until(lambda: guest.poll() != [], timeout=0.3)
    assert guest.transport.error is None


def test_guest_beyond_its_credit_is_reset(guest, monkeypatch):
    monkeypatch.setattr(vsock_connection, "BUF_ALLOC", 16)
    srv = host_server(guest.uds + "_11")
    guest.send(OP_REQUEST, 6002, 11)
    guest.wait_for(OP_RESPONSE)
    peer, _ = srv.accept()
    # one packet of 17 bytes is more than the 16 the device offered
    guest.send(OP_RW, 6002, 11, b"y" * 17)
    guest.wait_for(OP_RST)
    assert guest.dev.host.connections == {}
    peer.close()
    srv.close()


def test_transport_reset_event_ends_every_stream(guest):
    srv = host_server(guest.uds + "_12")
    guest.send(OP_REQUEST, 6003, 12)
    guest.wait_for(OP_RESPONSE)
    peer, _ = srv.accept()
    peer.settimeout(5)
    assert guest.dev.transport_reset() is False  # no event buffer posted yet
    assert peer.recv(10) == b""  # the stream is gone anyway
    evt = guest.drv.ram.alloc(4)
    guest.drv.space.write(evt, b"\xff" * 4)
    guest.event.add([(evt, 4, True)])
    guest.event.kick()
    assert guest.dev.transport_reset() is True
    assert guest.event.get_used() == [(0, 4)]
    assert struct.unpack("<I", guest.drv.space.read(evt, 4))[0] == 0  # TRANSPORT_RESET
    peer.close()
    srv.close()


def test_device_options(tmp_path):
    class Ctx:
        closers: list = []

    for opts in ({"guest-cid": "2", "uds-path": str(tmp_path / "a")},
                 {"guest-cid": "x", "uds-path": str(tmp_path / "a")},
                 {"guest-cid": "3"},
                 {"guest-cid": "3", "uds-path": str(tmp_path / "no" / "dir")}):
        with pytest.raises(OptionError):
            _create(Ctx(), {"driver": "virtio-vsock-device", **opts}, "v")
    dev = _create(Ctx(), {"driver": "virtio-vsock-device", "guest-cid": "5",
                          "uds-path": str(tmp_path / "ok")}, "v")
    assert dev.guest_cid == 5 and (tmp_path / "ok").is_socket()
    dev.close()
    assert not (tmp_path / "ok").exists()
