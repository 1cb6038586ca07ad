"""-netdev / -nic parsing against the declared backends, with QEMU's messages; the
hostfwd rule syntax; -netdev help from the registry; and the link's queue semantics."""

from __future__ import annotations

import socket

import pytest

from pemu.chardev.registry import ChardevRegistry
from pemu.net import all_backends  # noqa: F401
from pemu.net.backend import NOT_BUILT, netdev_help
from pemu.net.client import MAX_QUEUED, NetClient, connect
from pemu.net.network import Network, NetworkError
from pemu.net.options import parse_mac, parse_netdev, parse_nic
from pemu.net.user import HostfwdError, parse_hostfwd
from pemu.qemuopts.keyval import OptionError
from tests.cli.test_command_line import emulator, refused

P = "pemu-system-riscv64"


def error_of(fn, *args) -> str:
    with pytest.raises(OptionError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("text, expected", [
    ("foo,id=x", f"{P}: -netdev foo,id=x: Parameter 'type' does not accept value 'foo'"),
    ("user,id=x,bogus=1", f"{P}: -netdev user,id=x,bogus=1: Invalid parameter 'bogus'"),
    ("user", f"{P}: -netdev user: Parameter 'id' is missing"),
    ("user,id=x,restrict=maybe",
     f"{P}: -netdev user,id=x,restrict=maybe: Parameter 'restrict' expects 'on' or 'off'"),
    ("user,id=x,net=10.0.2.0,net=10.0.3.0", "Parameter 'net' given twice"),
    ("l2tpv3,id=x", "l2tpv3 netdev backend is not implemented in pemu yet"),
])
def test_netdev_errors_are_qemus(text, expected):
    assert expected in error_of(parse_netdev, text, P)


@pytest.mark.parametrize("text, expected", [
    ("user,id=x,guestfwd=tcp:10.0.2.100:80-", "Missing the device"),
    ("user,id=x,guestfwd=tcp:10.0.2.100:80-chr0", "could not open guest forwarding device"),
    ("user,id=x,guestfwd=tcp:1.2.3.4:80-cmd:true", "is not in the network"),
    ("user,id=x,guestfwd=udp:10.0.2.100:80-cmd:true", "Only TCP"),
])
def test_guestfwd_errors(text, expected):
    def add(t: str, p: str) -> None:
        network = Network(p)
        network.chardevs = ChardevRegistry()  # as the board's: DEV specs open there
        network.add_text(t)

    assert expected in error_of(add, text, P)


def test_netdev_keeps_repeated_hostfwd_in_order():
    spec = parse_netdev("user,id=n0,hostfwd=tcp::1-:22,hostfwd=udp::2-:53", P)
    assert spec.type == "user" and spec.id == "n0"
    assert [v for k, v in spec.items if k == "hostfwd"] == ["tcp::1-:22", "udp::2-:53"]


def test_nic_splits_into_a_netdev_and_a_device():
    nic = parse_nic("user,mac=52:54:00:00:00:09,hostfwd=tcp::5-:22,model=virtio", P, 3)
    assert nic is not None
    assert nic.model == "virtio-net-device" and nic.mac == "52:54:00:00:00:09"
    assert nic.netdev.id == "nic3"
    assert dict(nic.netdev.items) == {"id": "nic3", "hostfwd": "tcp::5-:22"}
    assert parse_nic("none", P, 0) is None
    assert "Invalid parameter 'bad'" in error_of(parse_nic, "user,bad=1", P, 0)
    assert "NIC model 'e1000'" in error_of(parse_nic, "user,model=e1000", P, 0)
    assert "mac" in error_of(parse_nic, "user,mac=11:22", P, 0)


def test_mac_parsing():
    assert parse_mac("52:54:00:12:34:56", "x") == bytes.fromhex("525400123456")
    assert "multicast" in error_of(parse_mac, "01:00:5e:00:00:01", "x")


@pytest.mark.parametrize("rule, message", [
    ("tcp:1", "Missing : separator"),
    ("icmp::1-:2", "Bad protocol name"),
    ("tcp:1.2.3:1-:2", "Bad host address"),
    ("tcp::1:2", "Missing - separator"),
    ("tcp::x-:2", "Bad host port"),
    ("tcp::1-999.1.1.1:2", "Bad guest address"),
    ("tcp::1-:99999", "Bad guest port"),
])
def test_bad_hostfwd_rules(rule, message):
    with pytest.raises(HostfwdError, match=message):
        parse_hostfwd(rule, "10.0.2.15")


def test_hostfwd_defaults():
    r = parse_hostfwd(":127.0.0.1:2222-:22", "10.0.2.15")
    assert (r.udp, r.host_addr, r.host_port, r.guest_addr, r.guest_port) == \
        (False, "127.0.0.1", 2222, "10.0.2.15", 22)
    assert parse_hostfwd("udp::53-10.0.2.9:53", "x").describe() == "udp:0.0.0.0:53-10.0.2.9:53"


def test_user_options_are_checked_against_net():
    net = Network(P)
    with pytest.raises(OptionError, match="dhcpstart=10.0.3.15 is not in the network"):
        net.add(parse_netdev("user,id=a,dhcpstart=10.0.3.15", P))
    with pytest.raises(OptionError, match="Bad host port"):
        net.add(parse_netdev("user,id=b,hostfwd=tcp::x-:1", P))
    net.add(parse_netdev("user,id=c,net=192.168.76.0/24,ipv6=off,restrict=on", P))
    with pytest.raises(OptionError, match="Duplicate ID 'c' for netdev"):
        net.add(parse_netdev("user,id=c", P))
    assert "net=192.168.76.0,restrict=on" in net.info()
    with pytest.raises(NetworkError):
        net.set_link("nothing", False)
    net.remove("c")
    assert net.netdevs == {}


def test_netdev_help_lists_the_backends_pemu_has():
    heading, *names = netdev_help().splitlines()
    assert heading == "Available netdev backend types:"
    assert {"user", "stream", "dgram", "socket"} <= set(names)
    assert not set(names) & set(NOT_BUILT)
    r = emulator("riscv64", "-netdev", "help")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "Available netdev backend types:"
    assert "user" in r.stdout.splitlines()[1:]
    r = emulator("riscv64", "-netdev", "user,help")
    assert r.returncode == 0 and "hostfwd=" in r.stdout


def test_command_line_refuses_with_one_line(tmp_path):
    dtb = f"virt,dumpdtb={tmp_path / 'virt.dtb'}"
    refused(emulator("riscv64", "-netdev", "user,id=n0,bogus=1"), "Invalid parameter 'bogus'")
    refused(emulator("riscv64", "-nic", "user,model=rtl8139"), "rtl8139")
    refused(emulator("riscv64", "-M", dtb, "-device", "virtio-net-device,netdev=zz"),
            "can't find value 'zz'")


class Sink(NetClient):
    def __init__(self) -> None:
        super().__init__("sink")
        self.open = False
        self.got: list[bytes] = []

    def can_receive(self) -> bool:
        return self.open

    def receive(self, frame: bytes) -> bool:
        self.got.append(frame)
        return True


def test_link_queues_for_a_slow_receiver_and_drops_past_the_limit():
    a, b = NetClient("a"), Sink()
    connect(a, b)
    for i in range(MAX_QUEUED + 5):
        a.send(i.to_bytes(4, "big"))
    assert b.queued == MAX_QUEUED and b.dropped == 5 and b.got == []
    b.open = True
    b.flush_incoming()
    assert [int.from_bytes(f, "big") for f in b.got] == list(range(MAX_QUEUED))
    a.set_link(False)
    a.send(b"x")
    b.send(b"y")
    assert len(b.got) == MAX_QUEUED and a.link_down and b.link_down


def test_nic_and_netdev_build_on_the_board(tmp_path):
    dtb = f"virt,dumpdtb={tmp_path / 'virt.dtb'}"
    r = emulator("riscv64", "-M", dtb, "-nic", "user,ipv6=off,mac=52:54:00:00:00:05")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = emulator("riscv64", "-M", dtb, "-netdev", "user,id=n0,ipv6=off")
    assert r.returncode == 0 and "warning: netdev n0 has no peer" in r.stderr
    r = emulator("riscv64", "-M", dtb, "-netdev", "user,id=n0", "-device",
                 "virtio-net-device,netdev=n0", "-device", "virtio-net-device,netdev=n0")
    refused(r, "can't take value 'n0', it's in use")
    with socket.socket() as busy:  # a port someone listens on cannot be forwarded
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = emulator("riscv64", "-M", dtb, "-netdev",
                     f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
                     "-device", "virtio-net-device,netdev=n0")
    refused(r, "Could not set up host forwarding rule")
