"""-netdev tap without a guest.  The real device tests run in a private network
namespace (``unshare -n``, needs root/CAP_NET_ADMIN): a fake NIC behind the backend
sends an ARP request to the kernel's address on the TAP interface and reads the
kernel's reply; a second open of the same interface is refused as busy; fd= takes an
open descriptor.  The error for a missing /dev/net/tun needs no privilege."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from pemu.net import all_backends, tap  # noqa: F401
from pemu.net.network import Network
from pemu.qemuopts.keyval import OptionError
from tests.system.conftest import ROOT, pemu_env


def test_missing_dev_net_tun_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(tap, "TUN_PATH", "/nonexistent/tun")
    with pytest.raises(OptionError, match="could not open /nonexistent/tun: no such device"):
        Network("pemu").add_text("tap,id=t0,ifname=ptest0")


@pytest.mark.parametrize("text, message", [
    ("tap,id=t,script=/etc/qemu-ifup", "pemu runs no interface scripts"),
    ("tap,id=t,downscript=/etc/qemu-ifdown", "pemu runs no interface scripts"),
    ("tap,id=t,queues=0", "expected 1 to 16"),
    ("tap,id=t,fd=0,ifname=x", "fd= cannot go with ifname="),
    ("tap,id=t,vhost=on", "no vhost-net"),
])
def test_bad_tap_options(text, message):
    with pytest.raises(OptionError, match=message):
        Network("pemu").add_text(text)


def can_unshare_net() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


needs_netns = pytest.mark.skipif(not can_unshare_net(),
                                 reason="needs root (CAP_NET_ADMIN) and unshare -n for a "
                                        "private network namespace")

IN_NAMESPACE = textwrap.dedent("""
    import os, struct, subprocess, time
    from pemu.net import all_backends
    from pemu.net.client import NetClient
    from pemu.net.network import Network
    from pemu.qemuopts.keyval import OptionError

    MAC = bytes.fromhex("525400aabbcc")

    class Nic(NetClient):
        def __init__(self):
            super().__init__("nic")
            self.got = []
        def receive(self, frame):
            self.got.append(frame)
            return True

    def ip(*args):
        subprocess.run(["ip", *args], check=True)

    net = Network("pemu")
    backend = net.add_text("tap,id=t0,ifname=ptest0,script=no,downscript=no,vnet_hdr=VNET")
    nic = Nic()
    net.attach(nic, backend)
    ip("addr", "add", "192.168.77.1/24", "dev", "ptest0")
    ip("link", "set", "ptest0", "up")
    arp = (b"\\xff" * 6 + MAC + b"\\x08\\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 4, 1)
           + MAC + bytes([192, 168, 77, 2]) + bytes(6) + bytes([192, 168, 77, 1]))
    end = time.monotonic() + 5
    reply = None
    while reply is None and time.monotonic() < end:
        nic.send(arp)
        time.sleep(0.1)
        reply = next((f for f in nic.got if f[12:14] == b"\\x08\\x06"
                      and f[20:22] == b"\\x00\\x02"), None)
    assert reply is not None, nic.got
    assert reply[:6] == MAC and reply[28:32] == bytes([192, 168, 77, 1])
    print("ARP-REPLY-OK", backend.describe())
    try:
        Network("pemu").add_text("tap,id=t1,ifname=ptest0")
    except OptionError as e:
        print("SECOND-OPEN:", e)
    net.close()
""")


@needs_netns
@pytest.mark.parametrize("vnet", ["off", "on"])
def test_tap_frames_both_ways_and_busy_interface(vnet):
    r = subprocess.run(["unshare", "-n", sys.executable, "-c",
                        IN_NAMESPACE.replace("VNET", vnet)],
                       capture_output=True, text=True, env=pemu_env(), cwd=ROOT, timeout=60)
    assert "ARP-REPLY-OK ifname=ptest0,script=no,downscript=no" in r.stdout, r.stdout + r.stderr
    assert "SECOND-OPEN:" in r.stdout and "Device or resource busy" in r.stdout, r.stdout


FD_IN_NAMESPACE = textwrap.dedent("""
    import os
    from pemu.net import all_backends
    from pemu.net.network import Network
    from pemu.net.tap import open_tap
    fd, name = open_tap("pfd%d", vnet_hdr=True, multi_queue=False)
    backend = Network("pemu").add_text(f"tap,id=t0,fd={fd}")
    print("FD-OK", backend.describe(), backend.vnet_hdr)
    backend.close()
    mq = Network("pemu").add_text("tap,id=t1,ifname=pmq0,queues=4")
    print("MQ", len(mq.fds))
    mq.close()
""")


@needs_netns
def test_tap_fd_and_queues():
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", FD_IN_NAMESPACE],
                       capture_output=True, text=True, env=pemu_env(), cwd=ROOT, timeout=60)
    assert "FD-OK ifname=pfd0,script=no,downscript=no True" in r.stdout, r.stdout + r.stderr
    assert "MQ 4" in r.stdout, r.stdout + r.stderr
