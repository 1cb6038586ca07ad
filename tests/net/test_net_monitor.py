"""The monitor's network commands on a machine with a real -netdev user and a
virtio-net NIC (no guest): QMP set_link/netdev_add/netdev_del, HMP info network,
set_link, hostfwd_add/hostfwd_remove (a real listening socket on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest

from pemu.hw.virtio.net import S_LINK_UP, VirtioNet
from pemu.monitor.commands import SCHEMA
from pemu.monitor.hmp import HMPInterpreter
from pemu.monitor.machine import MonitoredMachine
from pemu.monitor.qmp import CommandContext, QMPSession
from pemu.net import all_backends  # noqa: F401
from pemu.net.network import Network
from pemu.net.options import parse_netdev


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def machine():
    m = MonitoredMachine()
    m.network = Network("pemu")
    backend = m.network.add(parse_netdev("user,id=n0,ipv6=off,restrict=on", "pemu"))
    nic = VirtioNet(bytes.fromhex("525400123499"), id="net0")
    m.network.attach(nic, backend)
    yield m
    m.network.close()


def qmp(machine, command: str, **args):
    session = QMPSession(SCHEMA, lambda s: CommandContext(machine, None, s), lambda b: None)
    session.negotiated = True
    reply = session.handle({"execute": command, "arguments": args})
    session.close()
    return reply


def test_set_link_through_qmp(machine):
    nic = machine.network.nics["net0"]
    assert qmp(machine, "set_link", name="net0", up=False) == {"return": {}}
    assert nic.link_down and nic.peer.link_down and not nic.status & S_LINK_UP
    assert qmp(machine, "set_link", name="n0", up=True) == {"return": {}}
    assert not nic.link_down and nic.status & S_LINK_UP
    reply = qmp(machine, "set_link", name="nope", up=True)
    assert reply["error"]["class"] == "DeviceNotFound"


def test_netdev_add_and_del_through_qmp(machine):
    port = free_port()
    reply = qmp(machine, "netdev_add", type="user", id="n1", restrict=True, ipv6=False,
                hostfwd=[{"str": f"tcp:127.0.0.1:{port}-:22"}])
    assert reply == {"return": {}}, reply
    assert listening(port)
    assert "Duplicate ID" in qmp(machine, "netdev_add", type="user", id="n1")["error"]["desc"]
    assert "does not accept value 'vde'" in \
        qmp(machine, "netdev_add", type="vde", id="t")["error"]["desc"]
    assert qmp(machine, "netdev_del", id="n1") == {"return": {}}
    assert not listening(port)
    assert "in use" in qmp(machine, "netdev_del", id="n0")["error"]["desc"]


def test_netdev_add_stream_takes_a_socket_address_object(machine, tmp_path):
    path = tmp_path / "s.sock"
    reply = qmp(machine, "netdev_add", type="stream", id="s0", server=True,
                addr={"type": "unix", "path": str(path)})
    assert reply == {"return": {}}, reply
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))  # it listens there
    assert "s0: index=0,type=stream," in HMPInterpreter(machine).execute("info network")
    assert qmp(machine, "netdev_del", id="s0") == {"return": {}}
    assert not path.exists()
    assert qmp(machine, "netdev_add", type="hubport", id="h0", hubid=3) == {"return": {}}
    assert machine.network.netdevs["h0"].hub.id == 3


def test_hmp_info_network_and_hostfwd(machine):
    hmp = HMPInterpreter(machine)
    info = hmp.execute("info network")
    assert "net0: index=0,type=nic,model=virtio-net-device,macaddr=52:54:00:12:34:99" in info
    assert " \\ n0: index=0,type=user,net=10.0.2.0,restrict=on" in info
    port = free_port()
    assert hmp.execute(f"hostfwd_add tcp:127.0.0.1:{port}-:22") == ""
    assert listening(port)
    assert "Bad host port" in hmp.execute("hostfwd_add n0 tcp:127.0.0.1:x-:22")
    assert "removed" in hmp.execute(f"hostfwd_remove n0 tcp:127.0.0.1:{port}")
    assert not listening(port)
    assert "not found" in hmp.execute(f"hostfwd_remove tcp:127.0.0.1:{port}")
    assert hmp.execute("set_link net0 off") == ""
    assert "link=down" in hmp.execute("info network")
    assert "Error" in hmp.execute("set_link nothing on")


def test_query_rx_filter(machine):
    (info,) = qmp(machine, "query-rx-filter")["return"]
    assert info["name"] == "net0" and info["main-mac"] == "52:54:00:12:34:99"
    assert info["promiscuous"] is True  # until a driver sets its receive mode
    assert qmp(machine, "query-rx-filter", name="n0")["error"]["class"] == "DeviceNotFound"
