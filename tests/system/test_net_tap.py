"""-netdev tap with the lean guest, in a network namespace the test makes (``unshare
-n``: needs root/CAP_NET_ADMIN, skipped otherwise).  The namespace holds a TAP
interface at 192.168.77.1 and pemu attached to it; the guest is 192.168.77.2.  TCP
both ways: the guest downloads from an HTTP server in the namespace, and the
namespace downloads from the guest's busybox httpd; sha256 compared each time.  With
vnet_hdr=on the guest's TSO reaches the kernel unsegmented (and the kernel hands the
guest unsegmented TCP): tcpdump on the TAP sees frames longer than an Ethernet MTU.
The TAP has two queues and virtio-net ``mq=on``: the driver takes VIRTIO_NET_F_MQ (a
one-CPU Linux then uses one of the two pairs; with ``-smp 2`` it uses both, which
/sys/class/net/eth0/queues shows, but a second vCPU doubles this test's time)."""

from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import time

import pytest

from tests.net.test_tap import can_unshare_net
from tests.system.lean_guest import LeanGuest, need_lean_guest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not can_unshare_net(),
                                 reason="needs root (CAP_NET_ADMIN) and unshare -n")]

HOST, GUEST = "192.168.77.1", "192.168.77.2"


def namespace_setup(multi_queue: bool) -> str:
    """The shell that makes the namespace's TAP, then runs its arguments."""
    mq = " multi_queue" if multi_queue else ""
    return (f"ip link set lo up && ip tuntap add dev ptap0 mode tap{mq} && "
            f"ip addr add {HOST}/24 dev ptap0 && ip link set ptap0 up && exec \"$@\"")


def in_namespace(pid: int, *cmd: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", *cmd], **kw)


def frame_lengths(pcap: bytes) -> list[int]:
    """The original length of every packet in a pcap file."""
    lengths, at = [], 24  # after the file header
    while at + 16 <= len(pcap):
        _, _, incl, orig = struct.unpack_from("<IIII", pcap, at)
        lengths.append(orig)
        at += 16 + incl
    return lengths


@pytest.mark.parametrize("vnet_hdr", ["on"])  # off: tests/net/test_tap.py
def test_tcp_both_ways_over_tap(tmp_path, vnet_hdr):
    need_lean_guest()
    payload = os.urandom(200_000)
    (tmp_path / "blob").write_bytes(payload)
    guest = LeanGuest(["-netdev", f"tap,id=n0,ifname=ptap0,script=no,downscript=no,"
                                  f"vnet_hdr={vnet_hdr},queues=2",
                       "-device", "virtio-net-device,netdev=n0,mq=on"],
                      prefix=["unshare", "-n", "sh", "-c", namespace_setup(True), "sh"])
    server = dump = None
    try:
        guest.wait_prompt()
        if shutil.which("tcpdump"):
            # --immediate-mode: without it libpcap reads TPACKET_V3 blocks, and on this
            # host's 6.18 kernel the block holding the transfer (a few TSO frames) was
            # never handed over before tcpdump stopped: the file held only link-up frames
            dump = in_namespace(guest.proc.pid, "tcpdump", "-i", "ptap0", "-s", "64", "-U",
                                "--immediate-mode",
                                "-w", str(tmp_path / "tap.pcap"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # its "listening on ptap0" line: the capture is on (on a loaded host it
            # could start after the traffic it was to see)
            # (poll, not select: a test worker's descriptors may number over 1023)
            ready = select.poll()
            ready.register(dump.stderr, select.POLLIN)
            if ready.poll(60_000):
                dump.stderr.readline()
        server = in_namespace(guest.proc.pid, sys.executable, "-m", "http.server", "--bind",
                              HOST, "8000", "--directory", str(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        guest.run(f"ifconfig eth0 {GUEST} netmask 255.255.255.0 up")
        features = re.search(r"\b[01]{64}\b", guest.run(
            "cat /sys/bus/virtio/devices/virtio*/features")).group(0)
        assert features[22] == "1", features  # VIRTIO_NET_F_MQ, bit 22 from the left
        time.sleep(0.5)
        out = guest.run(f"for i in $(seq 20); do wget -q -O /tmp/blob http://{HOST}:8000/blob"
                        f" && break; sleep 1; done; sha256sum /tmp/blob", 180)
        assert hashlib.sha256(payload).hexdigest() in out, out
        # the other way: the guest serves, the namespace fetches
        guest.run("mkdir -p /www && dd if=/dev/urandom of=/www/g bs=1k count=150 2>/dev/null"
                  " && httpd -p 8080 -h /www")
        theirs = re.search(r"\b([0-9a-f]{64})  /www/g", guest.run("sha256sum /www/g")).group(1)
        fetch = in_namespace(guest.proc.pid, sys.executable, "-c",
                             "import hashlib, urllib.request; print(hashlib.sha256(urllib."
                             f"request.urlopen('http://{GUEST}:8080/g', timeout=60).read())"
                             ".hexdigest())", stdout=subprocess.PIPE, text=True)
        ours = fetch.communicate(timeout=120)[0].strip()
        assert ours == theirs and len(ours) == 64, (ours, theirs)
        if dump is not None:
            dump.terminate()
            dump.wait(timeout=30)
            lengths = frame_lengths((tmp_path / "tap.pcap").read_bytes())
            assert lengths and max(lengths) > 1514, max(lengths, default=None)
    finally:
        for proc in (server, dump):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        guest.close()
