"""Chardev backends against real files, ptys and sockets."""

from __future__ import annotations

import os
import socket
import termios
import threading
import time
import tracemalloc

import pytest

from pemu.chardev import (
    CHR_EVENT_CLOSED,
    CHR_EVENT_OPENED,
    FileChardev,
    NullChardev,
    PtyChardev,
    SocketChardev,
    StdioChardev,
)
from pemu.main_loop import get_main_loop


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.data += chunk


def _io_thread_caught_up() -> None:
    """Everything handed to the I/O thread so far (deliveries, flushes) has run."""
    done = threading.Event()
    get_main_loop().call_soon(done.set)
    assert done.wait(5)


def test_null_discards():
    _io_thread_caught_up()  # the I/O loop and its fds exist before we count fds
    fds = set(os.listdir("/proc/self/fd"))
    c = NullChardev("n")
    sink, events = Sink(), []
    c.set_receiver(sink)
    c.set_event_handler(events.append)
    assert events == [CHR_EVENT_OPENED] and c.be_open  # always "connected", as in QEMU

    size = 1 << 20
    chunk = b"x" * size
    tracemalloc.start()
    try:
        for _ in range(16):
            assert c.write(chunk) is None  # accepted, never an error
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < size  # 16 MiB written, not even one chunk's worth retained
    c.accept_input()
    _io_thread_caught_up()
    assert sink.data == b""  # output never comes back as input
    assert set(os.listdir("/proc/self/fd")) == fds  # no file, pipe or socket behind it

    c.close()
    assert c.closed and not c.be_open
    c.write(b"after close")  # still dropped silently
    _io_thread_caught_up()
    assert sink.data == b""


def test_file_truncates_then_appends(tmp_path):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old contents")
    c = FileChardev(str(path))
    c.write(b"boot\n")
    c.write(b"done\n")
    c.close()
    assert path.read_bytes() == b"boot\ndone\n"
    c = FileChardev(str(path), append=True)
    c.write(b"more\n")
    c.close()
    assert path.read_bytes() == b"boot\ndone\nmore\n"


def test_file_bad_path_is_clear_error(tmp_path):
    from pemu.chardev import ChardevError
    with pytest.raises(ChardevError, match="could not open"):
        FileChardev(str(tmp_path / "no" / "such" / "dir"))


def test_pty_both_directions(capsys):
    c = PtyChardev("serial0")
    out = capsys.readouterr().out
    assert out == f"char device redirected to {c.path} (label serial0)\n"
    assert c.path.startswith("/dev/pts/")
    sink = Sink()
    c.set_receiver(sink)
    user = os.open(c.path, os.O_RDWR | os.O_NOCTTY)
    try:
        c.write(b"login: ")
        assert os.read(user, 100) == b"login: "
        os.write(user, b"root\r")
        assert wait_until(lambda: sink.data == b"root\r")  # raw: no CR->NL, no echo
    finally:
        os.close(user)
        c.close()


def test_pty_drops_output_while_nobody_is_attached_and_none_for_a_slow_client():
    """QEMU's pty: no client, output goes nowhere; a client that reads slowly gets
    every byte in order (the writer waits), and leaving and coming back is seen."""
    c = PtyChardev("slow", announce=False)
    events = []
    c.set_event_handler(events.append)
    try:
        assert events == [] and not c.be_open
        c.write(b"before anyone attached\n")  # dropped: nobody would read it
        user = os.open(c.path, os.O_RDWR | os.O_NOCTTY)
        assert wait_until(lambda: events == [CHR_EVENT_OPENED], timeout=5)
        # far more than the kernel's pty buffer (about 13 KiB in raw mode)
        payload = b"".join(b"%06d\n" % i for i in range(40000))
        writer = threading.Thread(target=c.write, args=(payload,))
        writer.start()
        got = bytearray()
        while len(got) < len(payload):
            time.sleep(0.001)  # a reader slower than the writer
            got += os.read(user, 4096)
        writer.join(5)
        assert not writer.is_alive()
        assert bytes(got) == payload
        os.close(user)
        assert wait_until(lambda: events == [CHR_EVENT_OPENED, CHR_EVENT_CLOSED])
        c.write(b"x" * 65536)  # nobody there again: returns at once, dropped
        user = os.open(c.path, os.O_RDWR | os.O_NOCTTY)
        assert wait_until(lambda: events[-1] == CHR_EVENT_OPENED, timeout=5)
        os.close(user)
    finally:
        c.close()


def test_receiver_flow_control_holds_input_until_room():
    c = PtyChardev("fc", announce=False)
    got = bytearray()
    room = [2]

    def recv(chunk):
        got.extend(chunk)
        room[0] -= len(chunk)

    c.set_receiver(recv, lambda: room[0])
    user = os.open(c.path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(user, b"abcdef")
        assert wait_until(lambda: got == b"ab")
        time.sleep(0.05)
        assert got == b"ab"  # nothing beyond the frontend's room is pushed
        room[0] = 10
        c.accept_input()
        assert wait_until(lambda: got == b"abcdef")
    finally:
        os.close(user)
        c.close()


def test_tcp_server_nowait_and_reconnect():
    c = SocketChardev(host="127.0.0.1", port=0, server=True, wait=False, id="s")
    sink = Sink()
    c.set_receiver(sink)
    port = c.listen_address[1]
    c.write(b"dropped while nobody listens")
    try:
        for round_ in range(2):
            peer = socket.create_connection(("127.0.0.1", port))
            assert c.wait_connected(5)
            peer.sendall(b"hi%d" % round_)
            assert wait_until(lambda r=round_: sink.data.endswith(b"hi%d" % r))
            c.write(b"hello")
            assert peer.recv(100) == b"hello"
            peer.close()
            assert wait_until(lambda: not c.connected)
    finally:
        c.close()


def test_a_second_client_waits_until_the_first_leaves(tmp_path):
    """As QEMU's server: one peer at a time, the next one queued, not hung up on
    (libvirt opens its next monitor connection while the last one is closing)."""
    path = str(tmp_path / "mon.sock")
    c = SocketChardev(path=path, server=True, wait=False, id="mon")
    sink = Sink()
    c.set_receiver(sink)
    first, second = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        first.connect(path)
        assert c.wait_connected(5)
        second.connect(path)  # into the backlog
        second.sendall(b"queued")
        time.sleep(0.3)
        assert sink.data == b""  # not taken while the first is connected
        c.write(b"to-first")
        assert first.recv(100) == b"to-first"
        first.close()
        assert wait_until(lambda: sink.data == b"queued")  # taken, not closed
        c.write(b"to-second")
        second.settimeout(5)
        assert second.recv(100) == b"to-second"
    finally:
        first.close()
        second.close()
        c.close()


def test_tcp_server_wait_blocks_until_client(tmp_path):
    import threading

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = {}

    def make():
        result["c"] = SocketChardev(host="127.0.0.1", port=port, server=True, wait=True)

    t = threading.Thread(target=make)
    t.start()
    assert wait_until(lambda: _can_connect(port, result))
    t.join(5)
    c = result["c"]
    assert c.connected
    c.close()
    result["peer"].close()


def _can_connect(port, result):
    try:
        result["peer"] = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        return True
    except OSError:
        return False


def test_unix_client_and_server(tmp_path):
    path = str(tmp_path / "sock")
    server = SocketChardev(path=path, server=True, wait=False)
    client = SocketChardev(path=path, server=False)
    got_s, got_c = Sink(), Sink()
    server.set_receiver(got_s)
    client.set_receiver(got_c)
    try:
        assert server.wait_connected(5)
        client.write(b"ping")
        assert wait_until(lambda: got_s.data == b"ping")
        server.write(b"pong")
        assert wait_until(lambda: got_c.data == b"pong")
    finally:
        client.close()
        server.close()
    assert not os.path.exists(path)


def test_client_connect_refused_is_clear_error(tmp_path):
    from pemu.chardev import ChardevError
    with pytest.raises(ChardevError, match="could not connect"):
        SocketChardev(path=str(tmp_path / "nobody"), server=False)


def test_stdio_on_a_terminal_goes_raw_and_is_restored():
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    c = StdioChardev("stdio", signal=False, in_fd=slave, out_fd=slave)
    try:
        raw = termios.tcgetattr(slave)
        assert c.raw
        assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON
        assert not raw[3] & termios.ISIG
        sink = Sink()
        c.set_receiver(sink)
        os.write(master, b"\x03x")  # Ctrl-C reaches the guest with signal=off
        assert wait_until(lambda: sink.data == b"\x03x")
        c.write(b"out\n")
        assert os.read(master, 100) == b"out\r\n"  # output processing kept
    finally:
        c.close()
    assert termios.tcgetattr(slave) == before
    os.close(master)
    os.close(slave)


def test_stdio_from_a_regular_file_and_from_nothing(tmp_path):
    path = tmp_path / "keys"
    path.write_bytes(b"echo hi\n" * 1000)
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    c = StdioChardev("stdio", in_fd=fd, out_fd=w)  # epoll cannot poll regular files
    sink = Sink()
    c.set_receiver(sink)
    try:
        assert not c.raw
        assert wait_until(lambda: len(sink.data) == 8000)
        assert bytes(sink.data) == path.read_bytes()
    finally:
        c.close()
        for f in (fd, r, w):
            os.close(f)
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    StdioChardev("stdio", in_fd=closed, out_fd=None).close()  # no input: no crash


def test_socket_events_open_before_data_and_close():
    from pemu.chardev import CHR_EVENT_CLOSED, CHR_EVENT_OPENED

    c = SocketChardev(host="127.0.0.1", port=0, server=True, wait=False)
    log = []
    c.set_event_handler(log.append)
    assert log == []  # nobody connected yet
    c.set_receiver(lambda data: log.append(data))
    try:
        for _ in range(2):
            peer = socket.create_connection(c.listen_address)
            peer.sendall(b"{}")
            assert wait_until(lambda: log[-1:] == [b"{}"])
            assert log[-2] == CHR_EVENT_OPENED  # the greeting can go out first
            peer.close()
            assert wait_until(lambda: log[-1:] == [CHR_EVENT_CLOSED])
    finally:
        c.close()


def test_always_open_backends_report_opened_at_once(tmp_path):
    from pemu.chardev import CHR_EVENT_OPENED

    log = []
    FileChardev(str(tmp_path / "f")).set_event_handler(log.append)
    NullChardev("n").set_event_handler(log.append)
    assert log == [CHR_EVENT_OPENED, CHR_EVENT_OPENED]
