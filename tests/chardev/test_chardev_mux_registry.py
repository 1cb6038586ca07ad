"""Ctrl-A escapes of the mux, and -chardev / -serial option handling."""

from __future__ import annotations

import os
import socket
import time

import pytest

from pemu.chardev import (
    Chardev,
    ChardevRegistry,
    FileChardev,
    MuxChardev,
    NullChardev,
    PtyChardev,
    SocketChardev,
    mux,
)
from pemu.qemuopts.keyval import OptionError


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


class Terminal(Chardev):
    """A backend whose 'keyboard' the test types on and whose 'screen' it reads."""

    def __init__(self) -> None:
        super().__init__("term")
        self.screen = bytearray()

    def write(self, data: bytes) -> None:
        self.screen += data

    def type(self, data: bytes) -> None:
        self._deliver(data)


@pytest.fixture
def muxed():
    term = Terminal()
    m = MuxChardev(term)
    serial = m.add_frontend("serial0")
    monitor = m.add_frontend("monitor")
    got = {"serial": bytearray(), "monitor": bytearray()}
    serial.set_receiver(got["serial"].extend)
    monitor.set_receiver(got["monitor"].extend)
    return term, m, serial, monitor, got


def test_input_goes_to_focused_frontend_and_ctrl_a_c_switches(muxed):
    term, m, serial, monitor, got = muxed
    focus_events = []
    monitor.on_focus = focus_events.append
    term.type(b"ls\r")
    term.type(b"\x01c")
    term.type(b"info\r")
    term.type(b"\x01cpwd")
    assert got["serial"] == b"ls\rpwd"
    assert got["monitor"] == b"info\r"
    assert focus_events == [True, False]


def test_ctrl_a_a_and_double_ctrl_a_send_ctrl_a(muxed):
    term, _, _, _, got = muxed
    term.type(b"x\x01ay\x01\x01z")
    assert got["serial"] == b"x\x01y\x01z"


def test_escape_split_across_reads(muxed):
    term, _, _, _, got = muxed
    term.type(b"a\x01")
    term.type(b"hb")
    assert got["serial"] == b"ab"
    assert b"C-a x    exit emulator" in term.screen


def test_outputs_of_both_frontends_reach_the_terminal(muxed):
    term, _, serial, monitor, _ = muxed
    serial.write(b"[guest]")
    monitor.write(b"(pemu) ")
    assert term.screen == b"[guest](pemu) "


def test_ctrl_a_x_calls_quit_handler(muxed):
    term, *_ = muxed
    calls = []
    saved = mux._quit_handler
    mux.set_quit_handler(lambda: calls.append("quit"))
    try:
        term.type(b"\x01x")
    finally:
        mux.set_quit_handler(saved)
    assert calls == ["quit"]
    assert b"terminated" in term.screen


def test_ctrl_a_s_and_b_hooks(muxed):
    term, m, serial, _, got = muxed
    calls = []
    m.commit_handler = lambda: calls.append("commit")
    serial.on_break = lambda: calls.append("break")
    term.type(b"\x01s\x01b\x01q")  # unknown keys after Ctrl-A are swallowed
    assert calls == ["commit", "break"]
    assert got["serial"] == b""


# -- registry ---------------------------------------------------------------------

def test_chardev_file_and_null(tmp_path):
    reg = ChardevRegistry()
    f = reg.add({"backend": "file", "id": "log", "path": str(tmp_path / "l")})
    n = reg.add({"backend": "null", "id": "n"})
    assert isinstance(f, FileChardev) and isinstance(n, NullChardev)
    assert reg.attach("log", "serial0") is f
    with pytest.raises(OptionError, match="already in use"):
        reg.attach("log", "serial1")
    reg.close_all()


@pytest.mark.parametrize("opts, message", [
    ({"backend": "null"}, "'id' is missing"),
    ({"backend": "bogus", "id": "x"}, "not a valid char driver"),
    ({"backend": "file", "id": "x"}, "'path' is missing"),
    ({"backend": "null", "id": "x", "colour": "red"}, "Invalid parameter 'colour'"),
    ({"backend": "socket", "id": "x", "port": "http"}, "not a number"),
    ({"backend": "socket", "id": "x", "port": "1", "server": "maybe"}, "not a boolean"),
])
def test_chardev_option_errors(opts, message):
    with pytest.raises(OptionError, match=message):
        ChardevRegistry().add(opts)


def test_duplicate_id_rejected():
    reg = ChardevRegistry()
    reg.add({"backend": "null", "id": "a"})
    with pytest.raises(OptionError, match="duplicate chardev id"):
        reg.add({"backend": "null", "id": "a"})


def test_mux_on_shares_one_chardev():
    reg = ChardevRegistry()
    m = reg.add({"backend": "null", "id": "c", "mux": "on"})
    a = reg.attach("c", "serial0")
    b = reg.attach("c", "monitor")
    assert isinstance(m, MuxChardev) and a is not b and m.frontends == [a, b]


def test_serial_legacy_specs(tmp_path, capsys):
    reg = ChardevRegistry()
    assert reg.from_legacy("none", "serial0") is None
    assert isinstance(reg.from_legacy("null", "serial0"), NullChardev)
    f = reg.from_legacy(f"file:{tmp_path / 'out'}", "serial1")
    f.write(b"x")
    assert (tmp_path / "out").read_bytes() == b"x"
    p = reg.from_legacy("pty", "serial2")
    assert isinstance(p, PtyChardev)
    assert f"char device redirected to {p.path} (label serial2)" in capsys.readouterr().out
    reg.add({"backend": "null", "id": "mine"})
    assert reg.from_legacy("chardev:mine", "serial3") is reg.get("mine")
    with pytest.raises(OptionError, match="not found"):
        reg.from_legacy("chardev:nope", "serial4")
    with pytest.raises(OptionError, match="not a valid char driver"):
        reg.from_legacy("vc:80x24", "serial5")
    reg.close_all()


def test_serial_tcp_server_nowait_legacy():
    reg = ChardevRegistry()
    fe = reg.from_legacy("tcp:127.0.0.1:0,server=on,wait=off", "serial0")
    assert isinstance(fe, SocketChardev)
    got = bytearray()
    fe.set_receiver(got.extend)
    peer = socket.create_connection(fe.listen_address)
    try:
        assert fe.wait_connected(5)
        peer.sendall(b"k")
        assert wait_until(lambda: got == b"k")
    finally:
        peer.close()
        reg.close_all()


def test_serial_unix_legacy_old_spellings(tmp_path):
    reg = ChardevRegistry()
    path = str(tmp_path / "s")
    fe = reg.from_legacy(f"unix:{path},server,nowait", "serial0")
    assert isinstance(fe, SocketChardev) and os.path.exists(path)
    with pytest.raises(OptionError, match="invalid parameter 'telnet'"):
        reg.from_legacy("tcp:127.0.0.1:0,server=on,telnet=on", "serial1")
    with pytest.raises(OptionError, match="HOST:PORT"):
        reg.from_legacy("tcp:4444", "serial2")
    reg.close_all()


def test_mon_prefix_gives_monitor_frontend_on_same_backend():
    reg = ChardevRegistry()
    seen = []

    def fake_create(backend, opts, cid, what):  # no real stdio in tests
        seen.append(opts)
        return Terminal()

    reg._create = fake_create
    serial = reg.from_legacy("mon:stdio", "serial0")
    assert len(reg.monitor_frontends) == 1
    monitor = reg.monitor_frontends[0]
    assert isinstance(serial, mux.MuxFrontend) and serial.mux is monitor.mux
    term = serial.mux.backend
    got = bytearray()
    monitor.set_receiver(got.extend)
    term.type(b"\x01cq")
    assert got == b"q"
    assert seen[0]["backend"] == "stdio" and seen[0]["signal"] == "off"  # Ctrl-C to guest


def test_second_stdio_is_rejected():
    reg = ChardevRegistry()
    reg.claim("stdio")
    with pytest.raises(OptionError, match="multiple character devices"):
        reg.from_legacy("stdio", "serial1")
