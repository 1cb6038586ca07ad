"""hubport (a frame entering one port leaves through all the others), the legacy -net
options expanded onto hub 0, and filter-dump's pcap read back by tcpdump."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from pemu.net import all_backends  # noqa: F401
from pemu.net.dump import attach_filters
from pemu.net.legacy import expand_net
from pemu.net.network import Network
from pemu.qemuopts.keyval import OptionError
from tests.net.test_socket_backends import FakeNic, wait


def test_hub_forwards_to_every_other_port():
    net = Network("pemu")
    nics = []
    for n in range(3):
        port = net.add_text(f"hubport,id=p{n},hubid=7")
        nic = FakeNic(f"nic{n}")
        net.attach(nic, port)
        nics.append(nic)
    try:
        nics[0].send(b"\x01" * 60)
        assert wait(lambda: nics[1].got == [b"\x01" * 60] and nics[2].got == [b"\x01" * 60])
        assert nics[0].got == []  # never back out of the port it came in
        assert "hub=7" in net.info()
    finally:
        net.close()


def test_hubport_with_a_backend_on_it(tmp_path):
    net = Network("pemu")
    try:
        path = tmp_path / "s"
        net.add_text(f"stream,id=s,server=on,addr.type=unix,addr.path={path}")
        port = net.add_text("hubport,id=p0,hubid=0,netdev=s")
        assert port.peer is net.netdevs["s"]
        with pytest.raises(OptionError, match="already in use"):
            net.add_text("hubport,id=p1,hubid=0,netdev=s")
        with pytest.raises(OptionError, match="'hubid' is missing"):
            net.add_text("hubport,id=p2")
    finally:
        net.close()


def test_legacy_net_puts_nic_and_backend_on_hub_0():
    specs, nics = expand_net(["nic,model=virtio,macaddr=52:54:00:12:34:77",
                              "user,id=u0,restrict=on", "none"], "pemu")
    assert [(s.type, dict(s.items)) for s in specs] == [
        ("hubport", {"id": "hub0port0", "hubid": "0"}),
        ("user", {"id": "u0", "restrict": "on"}),
        ("hubport", {"id": "hub0port1", "hubid": "0", "netdev": "u0"})]
    assert nics == [{"driver": "virtio-net-device", "netdev": "hub0port0",
                     "mac": "52:54:00:12:34:77"}]
    _, direct = expand_net(["nic,netdev=n0"], "pemu")
    assert direct[0]["netdev"] == "n0"


@pytest.mark.parametrize("text, message", [
    ("nic,vlan=1", "vlan= was removed"),
    ("nic,model=e1000", "NIC model 'e1000' is not supported"),
    ("nic,bogus=1", "Invalid parameter 'bogus'"),
    ("user,bogus=1", "Invalid parameter 'bogus'"),
    ("nic,macaddr=01:00:00:00:00:01", "multicast"),
])
def test_legacy_net_errors(text, message):
    with pytest.raises(OptionError, match=message):
        expand_net([text], "pemu")


def arp(op: int) -> bytes:
    mac = bytes.fromhex("525400123456")
    return (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 4, op)
            + mac + bytes([10, 0, 2, 15]) + bytes(6) + bytes([10, 0, 2, 2]))


def test_filter_dump_writes_a_pcap_of_both_directions(tmp_path):
    net = Network("pemu")
    a = net.add_text(f"stream,id=a,server=on,addr.type=unix,addr.path={tmp_path / 's'}")
    b = net.add_text(f"stream,id=b,addr.type=unix,addr.path={tmp_path / 's'}")
    nic_a, nic_b = FakeNic("na"), FakeNic("nb")
    net.attach(nic_a, a)
    net.attach(nic_b, b)
    dump = tmp_path / "a.pcap"
    attach_filters(net, [{"qom-type": "filter-dump", "id": "f0", "netdev": "a",
                          "file": str(dump), "maxlen": "30"}], "pemu")
    try:
        nic_a.send(arp(1))  # guest -> netdev a
        assert wait(lambda: nic_b.got)
        nic_b.send(arp(2) + bytes(100))  # back in through netdev a
        assert wait(lambda: nic_a.got)
    finally:
        net.close()
    data = dump.read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, 30, 1)
    _, _, incl, orig = struct.unpack_from("<IIII", data, 24)
    assert (incl, orig) == (30, 42)
    _, _, incl2, orig2 = struct.unpack_from("<IIII", data, 24 + 16 + 30)
    assert (incl2, orig2) == (30, 142)
    if shutil.which("tcpdump"):
        out = subprocess.run(["tcpdump", "-n", "-r", str(dump)], capture_output=True,
                             text=True, timeout=30)
        lines = out.stdout.splitlines()
        assert len(lines) == 2 and all("arp" in ln for ln in lines), out.stdout  # cut: "[|arp]"


@pytest.mark.parametrize("opts, message", [
    ({"netdev": "nope", "file": "x"}, "netdev 'nope' not found"),
    ({"netdev": "n0"}, "Parameter 'file' is missing"),
    ({"netdev": "n0", "file": "x", "maxlen": "0"}, "maxlen"),
    ({"netdev": "n0", "file": "/nonexistent/dir/x"}, "cannot open"),
])
def test_filter_dump_errors(opts, message):
    net = Network("pemu")
    net.add_text("hubport,id=n0,hubid=0")
    with pytest.raises(OptionError, match=message):
        attach_filters(net, [{"qom-type": "filter-dump", "id": "f", **opts}], "pemu")


def test_other_filters_are_refused():
    with pytest.raises(OptionError, match="filter-mirror object is not implemented"):
        attach_filters(Network("pemu"), [{"qom-type": "filter-mirror", "id": "m"}], "pemu")


