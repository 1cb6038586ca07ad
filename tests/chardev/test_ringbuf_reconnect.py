"""The ringbuf backend with QMP ringbuf-read/-write, and reconnect= for client sockets."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from pemu.chardev import ChardevRegistry, RingbufChardev, SocketChardev
from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED
from pemu.monitor.chardev_commands import chardev_add, ringbuf_read, ringbuf_write
from pemu.monitor.errors import QMPError
from pemu.qemuopts.keyval import OptionError


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_ringbuf_keeps_the_newest_bytes_and_reads_take_them_out():
    reg = ChardevRegistry()
    ring = reg.add({"backend": "ringbuf", "id": "r", "size": "16"})
    assert isinstance(ring, RingbufChardev) and ring.size == 16
    ring.write(b"0123456789")
    ring.write(b"abcdefghij")  # 20 bytes into 16: the 4 oldest are gone
    assert ringbuf_read(reg, "r", 6) == "456789"
    assert ringbuf_read(reg, "r", 100, "base64") == base64.b64encode(b"abcdefghij").decode()
    assert ringbuf_read(reg, "r", 5) == ""


def test_ringbuf_read_of_binary_output_in_both_formats():
    reg = ChardevRegistry()
    ring = reg.add({"backend": "memory", "id": "m"})  # the old name, default size
    assert ring.size == 64 * 1024
    ring.write(b"ok\xff\x00")
    assert ringbuf_read(reg, "m", 2) == "ok"
    assert base64.b64decode(ringbuf_read(reg, "m", 2, "base64")) == b"\xff\x00"
    ring.write(b"\xfe!")
    assert ringbuf_read(reg, "m", 9) == "\ufffd!"


def test_ringbuf_write_reaches_the_frontend_as_input():
    reg = ChardevRegistry()
    ring = reg.add({"backend": "ringbuf", "id": "r"})
    got = bytearray()
    ring.set_receiver(got.extend)
    ringbuf_write(reg, "r", "typed\n")
    ringbuf_write(reg, "r", base64.b64encode(b"\x01\x02").decode(), "base64")
    assert wait_until(lambda: bytes(got) == b"typed\n\x01\x02")


def test_ringbuf_errors():
    reg = ChardevRegistry()
    reg.add({"backend": "null", "id": "n"})
    reg.add({"backend": "ringbuf", "id": "r"})
    with pytest.raises(QMPError, match="not found"):
        ringbuf_read(reg, "nope", 1)
    with pytest.raises(QMPError, match="not a ringbuf"):
        ringbuf_write(reg, "n", "x")
    with pytest.raises(QMPError, match="greater than zero"):
        ringbuf_read(reg, "r", 0)
    with pytest.raises(QMPError, match="base64"):
        ringbuf_write(reg, "r", "@@@", "base64")
    with pytest.raises(OptionError, match="power of two"):
        reg.add({"backend": "ringbuf", "id": "odd", "size": "1000"})


def test_ringbuf_through_chardev_add():
    reg = ChardevRegistry()
    chardev_add(reg, "q", {"type": "ringbuf", "data": {"size": 1024}})
    assert reg.get("q").size == 1024


def test_client_reconnect_connects_once_the_server_is_there(tmp_path):
    path = str(tmp_path / "late.sock")
    client = SocketChardev(path=path, reconnect=0.05, id="c")  # no server yet: not fatal
    events = []
    client.set_event_handler(events.append)
    got = bytearray()
    client.set_receiver(got.extend)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.settimeout(5)
    try:
        for round_ in range(2):  # first connection, then again after the server hung up
            conn, _ = server.accept()
            assert wait_until(lambda: client.connected)
            assert events == [CHR_EVENT_OPENED]
            conn.sendall(b"hello%d" % round_)
            assert wait_until(lambda r=round_: got.endswith(b"hello%d" % r))
            client.write(b"back")
            conn.settimeout(5)
            assert conn.recv(10) == b"back"
            conn.close()
            assert wait_until(lambda: CHR_EVENT_CLOSED in events)
            events.clear()
    finally:
        client.close()
        server.close()


def test_reconnect_options_on_the_command_line(tmp_path):
    reg = ChardevRegistry()
    path = str(tmp_path / "none.sock")
    chardev = reg.add({"backend": "socket", "id": "c", "path": path, "reconnect-ms": "100"})
    try:
        assert not chardev.connected  # waiting, not failed
    finally:
        chardev.close()
    with pytest.raises(OptionError, match="could not connect"):
        reg.add({"backend": "socket", "id": "d", "path": path})  # no reconnect: fatal
    with pytest.raises(OptionError, match="only for client"):
        reg.add({"backend": "socket", "id": "e", "path": path, "server": "on",
                 "wait": "off", "reconnect": "1"})


def test_socket_write_some_takes_what_fits_and_says_when_there_is_room(tmp_path):
    """virtio-serial's guest output waits for a peer that stopped reading instead of
    blocking the vCPU; nothing is lost once the peer reads again."""
    path = str(tmp_path / "slow.sock")
    server = SocketChardev(path=path, server=True, wait=False)
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(path)
    try:
        assert server.wait_connected(5)
        data = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
        sent = 0
        while sent < len(data):
            n = server.write_some(data[sent:])
            if n == 0:
                break
            sent += n
        assert 0 < sent < len(data)
        room = []
        server.notify_writable(lambda: room.append(True))
        time.sleep(0.1)
        assert not room  # still full: no call yet
        got = bytearray()
        peer.settimeout(5)
        while len(got) < sent:
            got += peer.recv(65536)
        assert wait_until(lambda: room)
        assert server.write_some(data[sent:sent + 10]) == 10
        while len(got) < sent + 10:
            got += peer.recv(65536)
        assert bytes(got) == data[:sent + 10]
    finally:
        peer.close()
        server.close()
