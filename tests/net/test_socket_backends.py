"""-netdev stream / dgram / socket without a guest: fake NICs on both ends of a link,
the wire format checked against a raw socket (QEMU's 4-byte big-endian length), and
the option errors."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from pemu.net import all_backends  # noqa: F401
from pemu.net.client import NetClient
from pemu.net.network import Network
from pemu.net.polling import RX_BACKLOG
from pemu.net.stream import MAX_FRAME, RECV_SIZE, FrameReader
from pemu.qemuopts.keyval import OptionError


class FakeNic(NetClient):
    def __init__(self, name: str = "nic", accept: bool = True) -> None:
        super().__init__(name)
        self.got: list[bytes] = []
        self.accept = accept

    def can_receive(self) -> bool:
        return self.accept

    def receive(self, frame: bytes) -> bool:
        self.got.append(frame)
        return True


def wait(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def net():
    network = Network("pemu")
    yield network
    network.close()


def attach(net: Network, text: str, **kw) -> tuple[NetClient, FakeNic]:
    backend = net.add_text(text)
    nic = FakeNic(backend.name, **kw)
    net.attach(nic, backend)
    return backend, nic


def frame(n: int, fill: int) -> bytes:
    return bytes([fill]) * n


def test_frame_reader_splits_and_joins():
    r = FrameReader()
    data = struct.pack(">I", 3) + b"abc" + struct.pack(">I", 0) + struct.pack(">I", 2) + b"d"
    assert r.feed(data) == [b"abc"]  # the empty frame is skipped, "d" waits
    assert r.feed(b"e") == [b"de"]
    with pytest.raises(ValueError):
        r.feed(struct.pack(">I", MAX_FRAME + 1))


def test_stream_pair_over_unix_carries_frames_both_ways(net, tmp_path):
    path = tmp_path / "s"
    server, a = attach(net, f"stream,id=a,server=on,addr.type=unix,addr.path={path}")
    client, b = attach(net, f"stream,id=b,addr.type=unix,addr.path={path}")
    assert wait(lambda: server.describe().startswith("connection from"))
    sent = [frame(60, 1), frame(1514, 2), frame(9000, 3)]
    for f in sent:
        a.send(f)
    b.send(frame(100, 4))
    assert wait(lambda: len(b.got) == 3 and len(a.got) == 1)
    assert b.got == sent and a.got == [frame(100, 4)]
    assert "connected to unix:" in net.info()


def test_stream_wire_format_is_a_big_endian_length_prefix(net):
    """A raw TCP peer sees and sends QEMU's framing."""
    port = free_port()
    _, nic = attach(net, f"stream,id=s,server=on,addr.type=inet,addr.host=127.0.0.1,"
                         f"addr.port={port}")
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        raw.sendall(struct.pack(">I", 64) + frame(64, 7))
        assert wait(lambda: nic.got == [frame(64, 7)])
        nic.send(frame(70, 9))
        raw.settimeout(5)
        data = b""
        while len(data) < 74:
            data += raw.recv(100)
        assert data == struct.pack(">I", 70) + frame(70, 9)
    finally:
        raw.close()


def test_stream_server_drops_a_peer_announcing_a_huge_frame_and_listens_again(net, capsys):
    port = free_port()
    server, nic = attach(net, f"stream,id=s,server=on,addr.type=inet,addr.host=127.0.0.1,"
                              f"addr.port={port}")
    bad = socket.create_connection(("127.0.0.1", port))
    bad.sendall(struct.pack(">I", 0x7FFFFFFF))
    err = []
    assert wait(lambda: err.append(capsys.readouterr().err) or "connection closed" in "".join(err))
    assert "2147483647-byte frame" in "".join(err)
    # (the message comes before the backend is back to listening: wait for that too)
    assert wait(lambda: server.describe().startswith("listening")), server.describe()
    bad.close()
    good = socket.create_connection(("127.0.0.1", port))  # the link is usable again
    good.sendall(struct.pack(">I", 20) + frame(20, 1))
    assert wait(lambda: nic.got == [frame(20, 1)])
    good.close()


def test_stream_stops_reading_while_the_nic_is_backlogged(net):
    """The NIC has no buffers: frames wait in its queue up to RX_BACKLOG, then stay in
    the socket (back-pressure), and all arrive in order once it drains."""
    port = free_port()
    _, nic = attach(net, f"stream,id=s,server=on,addr.type=inet,addr.host=127.0.0.1,"
                         f"addr.port={port}", accept=False)
    raw = socket.create_connection(("127.0.0.1", port))
    count = 4000  # 6 MB: more than the socket buffers and one read can take
    data = b"".join(struct.pack(">I", 1500) + i.to_bytes(2, "big") + bytes(1498)
                    for i in range(count))
    sender = threading.Thread(target=raw.sendall, args=(data,), daemon=True)
    sender.start()
    assert wait(lambda: nic.queued >= RX_BACKLOG, 20)
    time.sleep(0.3)
    held = nic.queued
    time.sleep(0.5)
    # reading stopped: at most one more read past the backlog, then nothing; the rest
    # waits in the kernel's socket buffers and the sender's sendall
    assert nic.queued == held < RX_BACKLOG + RECV_SIZE // 1500 + 2
    nic.accept = True
    nic.flush_incoming()
    assert wait(lambda: len(nic.got) == count, 60)
    assert [int.from_bytes(f[:2], "big") for f in nic.got] == list(range(count))
    raw.close()


def test_dgram_pair_over_udp_and_unix(net, tmp_path):
    p1, p2 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)

    def inet(local: int, remote: int) -> str:
        return (f"local.type=inet,local.host=127.0.0.1,local.port={local},"
                f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote}")

    _, a = attach(net, f"dgram,id=a,{inet(p1, p2)}")
    _, b = attach(net, f"dgram,id=b,{inet(p2, p1)}")
    a.send(frame(1514, 5))
    b.send(frame(60, 6))
    assert wait(lambda: b.got == [frame(1514, 5)] and a.got == [frame(60, 6)])
    x, y = tmp_path / "x", tmp_path / "y"
    _, c = attach(net, f"dgram,id=c,local.type=unix,local.path={x},remote.type=unix,"
                       f"remote.path={y}")
    _, d = attach(net, f"dgram,id=d,local.type=unix,local.path={y},remote.type=unix,"
                       f"remote.path={x}")
    c.send(frame(300, 8))
    assert wait(lambda: d.got == [frame(300, 8)])


def test_legacy_socket_listen_connect_and_udp(net):
    port = free_port()
    listen, a = attach(net, f"socket,id=l,listen=127.0.0.1:{port}")
    _, b = attach(net, f"socket,id=c,connect=127.0.0.1:{port}")
    assert wait(lambda: listen.describe().startswith("connection from"))
    a.send(frame(80, 1))
    assert wait(lambda: b.got == [frame(80, 1)])
    p1, p2 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    _, c = attach(net, f"socket,id=u1,udp=127.0.0.1:{p2},localaddr=127.0.0.1:{p1}")
    _, d = attach(net, f"socket,id=u2,udp=127.0.0.1:{p1},localaddr=127.0.0.1:{p2}")
    d.send(frame(90, 2))
    assert wait(lambda: c.got == [frame(90, 2)])
    assert "type=socket" in net.info()


def test_legacy_socket_fd_of_a_socketpair(net):
    left, right = socket.socketpair()
    _, nic = attach(net, f"socket,id=f,fd={left.detach()}")
    right.sendall(struct.pack(">I", 40) + frame(40, 3))
    assert wait(lambda: nic.got == [frame(40, 3)])
    right.close()


@pytest.mark.parametrize("text, message", [
    ("stream,id=s", "Parameter 'addr.type' is missing"),
    ("stream,id=s,addr.type=inet,addr.port=1", "Parameter 'addr.host' is missing"),
    ("stream,id=s,addr.type=inet,addr.host=127.0.0.1,addr.port=x", "expects a port"),
    ("stream,id=s,addr.type=unix", "Parameter 'addr.path' is missing"),
    ("stream,id=s,addr.type=vsock,addr.path=x", "does not accept value 'vsock'"),
    ("stream,id=s,addr.type=unix,addr.path=/nonexistent/pemu.sock", "cannot connect to"),
    ("stream,id=s,addr.type=fd,addr.str=9999", "is not open"),
    ("dgram,id=d,local.type=inet,local.host=127.0.0.1,local.port=1", "remote address is"),
    ("dgram,id=d", "local address is required"),
    ("socket,id=s", "exactly one of"),
    ("socket,id=s,listen=:1,connect=127.0.0.1:1", "exactly one of"),
    ("socket,id=s,mcast=127.0.0.1:5000", "is not a multicast address"),
    ("socket,id=s,udp=127.0.0.1:5000", "needs localaddr"),
])
def test_bad_socket_options_are_refused(text, message):
    with pytest.raises(OptionError, match=message):
        Network("pemu").add_text(text)


def test_stream_server_refuses_an_address_in_use(net):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(OptionError, match="cannot listen on 127.0.0.1"):
            net.add_text(f"stream,id=s,server=on,addr.type=inet,addr.host=127.0.0.1,"
                         f"addr.port={port}")


def test_a_flood_the_host_side_cannot_take_is_dropped_with_one_warning(net, capsys, tmp_path):
    """Frames from the guest faster than the backend's thread drains them: past
    MAX_QUEUED they are dropped, counted, and reported at most once a second."""
    from pemu.net.client import MAX_QUEUED

    backend, nic = attach(net, f"stream,id=s,server=on,addr.type=unix,addr.path="
                               f"{tmp_path / 's'}")
    backend.transmit = lambda: None  # a host side that takes nothing
    for _ in range(MAX_QUEUED + 500):
        nic.send(frame(60, 1))
    assert backend.dropped == 500
    err = capsys.readouterr().err
    assert err.count("dropped a frame: the host side is not keeping up") == 1, err


def test_frames_the_nic_never_takes_are_dropped_past_the_queue(net, capsys, tmp_path):
    from pemu.net.client import MAX_QUEUED

    path = tmp_path / "s"
    server, nic = attach(net, f"stream,id=s,server=on,addr.type=unix,addr.path={path}",
                         accept=False)
    for _ in range(MAX_QUEUED + 10):
        server.send(frame(60, 2))  # as if read from the socket
    assert nic.queued == MAX_QUEUED and nic.dropped == 10
    assert "receiver is not taking frames" in capsys.readouterr().err
