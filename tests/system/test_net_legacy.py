"""The legacy shorthand with the lean guest: ``-net nic,model=virtio -net user`` (the
NIC and slirp meet on hub 0), ``guestfwd=...-cmd:`` (a guest connection runs a host
command), ``guestfwd=...-tcp:HOST:PORT`` (a chardev the test listens for), and
``-object filter-dump`` on the user netdev: tcpdump reads the pcap and finds the
guest's ICMP echo to the gateway and slirp's reply."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest

from tests.system.lean_guest import LeanGuest, need_lean_guest

pytestmark = pytest.mark.slow


def test_net_nic_net_user_guestfwd_and_filter_dump(tmp_path):
    need_lean_guest()
    dump = tmp_path / "user.pcap"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(300)
    heard: list[bytes] = []

    def host_end() -> None:  # pemu connects at start; the guest speaks first
        conn, _ = listener.accept()
        with conn:
            heard.append(conn.recv(100))
            conn.sendall(b"the-host-chardev-answers\n")

    host = threading.Thread(target=host_end, daemon=True)
    host.start()
    guest = LeanGuest(["-net", "nic,model=virtio,macaddr=52:54:00:12:34:77",
                       "-net", "user,id=u0,ipv6=off,restrict=on,"
                               "guestfwd=tcp:10.0.2.100:1234-cmd:echo guestfwd-says-hi,"
                               "guestfwd=tcp:10.0.2.101:1235-tcp:127.0.0.1:"
                               f"{listener.getsockname()[1]}",
                       "-object", f"filter-dump,id=f0,netdev=u0,file={dump}"])
    try:
        guest.wait_prompt()
        guest.run("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && "
                  "route add default gw 10.0.2.2")
        out = guest.run("for i in $(seq 10); do ping -c 1 -W 2 10.0.2.2 >/dev/null && break;"
                        " done; ping -c 2 -W 2 10.0.2.2", 120)
        assert "2 packets received" in out, out
        out = guest.run("(sleep 3) | nc 10.0.2.100 1234", 60)
        assert "guestfwd-says-hi" in out.split("nc 10.0.2.100 1234", 1)[-1], out
        # the chardev stays connected (as in QEMU), so nc would never see an end
        out = guest.run("(echo from-the-guest; sleep 3) | timeout 8 nc 10.0.2.101 1235; true",
                        60)
        assert "the-host-chardev-answers" in out.split("nc 10.0.2.101 1235", 1)[-1], out
        host.join(30)
        assert heard and heard[0].startswith(b"from-the-guest"), heard
    finally:
        guest.close()
        listener.close()
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed: the pcap is not checked")
    text = subprocess.run(["tcpdump", "-n", "-r", str(dump)], capture_output=True,
                          text=True, timeout=30).stdout
    assert "10.0.2.15 > 10.0.2.2: ICMP echo request" in text, text
    assert "10.0.2.2 > 10.0.2.15: ICMP echo reply" in text, text
    assert "52:54:00:12:34:77" in subprocess.run(
        ["tcpdump", "-n", "-e", "-r", str(dump)], capture_output=True, text=True).stdout
