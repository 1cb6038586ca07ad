"""passt as a backend: -netdev stream to its UNIX socket, a fake NIC asks for a DHCP
lease and passt's offer comes back through the length-prefixed stream."""

from __future__ import annotations

import time

from pemu.net import all_backends  # noqa: F401
from pemu.net.network import Network
from tests.net.passt_helper import start_passt, stop_passt
from tests.net.test_slirp import FakeNic, dhcp_discover


def test_passt_offers_a_lease_over_netdev_stream(tmp_path):
    proc, sock = start_passt(tmp_path)
    net = Network("pemu")
    try:
        backend = net.add_text(f"stream,id=p,addr.type=unix,addr.path={sock}")
        nic = FakeNic()
        net.attach(nic, backend)
        offer = b""
        end = time.monotonic() + 10
        while time.monotonic() < end and not offer:  # passt may still be settling
            nic.send(dhcp_discover())
            time.sleep(0.3)
            offer = next((f for f in nic.got if f[12:14] == b"\x08\x00"
                          and f[14 + 9] == 17 and f[14 + 20:14 + 22] == b"\x00\x43"), b"")
        assert offer, nic.got
        bootp = offer[14 + 20 + 8:]
        assert bootp[0] == 2 and bootp[4:8] == bytes.fromhex("12345678")  # our BOOTREPLY
        assert bootp[16:20] == bytes([10, 0, 2, 15])  # yiaddr: passt's -a
        assert "connected to unix:" in backend.describe()
    finally:
        net.close()
        stop_passt(proc)
