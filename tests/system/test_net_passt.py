"""passt behind -netdev stream with the lean guest: busybox udhcpc takes passt's lease,
then the guest downloads a file from an HTTP server the test runs on 127.0.0.1, which
passt shows the guest as the gateway 10.0.2.2; the sha256 must match."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.net.passt_helper import GATEWAY, GUEST_IP, start_passt, stop_passt
from tests.system.lean_guest import UDHCPC_SCRIPT, LeanGuest, need_lean_guest, serve

pytestmark = pytest.mark.slow

def test_passt_lease_and_a_download_from_host_loopback(tmp_path):
    need_lean_guest()
    payload = os.urandom(300_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob").write_bytes(payload)
    server, port = serve(www)
    proc, sock = start_passt(tmp_path)
    guest = LeanGuest(["-netdev", f"stream,id=n0,addr.type=unix,addr.path={sock}",
                       "-device", "virtio-net-device,netdev=n0"])
    try:
        guest.wait_prompt()
        guest.run(UDHCPC_SCRIPT)
        guest.run("ifconfig eth0 up && udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh", 120)
        assert f"inet addr:{GUEST_IP}" in guest.run("ifconfig eth0")
        out = guest.run(f"wget -q -O - http://{GATEWAY}:{port}/blob | sha256sum", 180)
        assert hashlib.sha256(payload).hexdigest() in out, out
    finally:
        guest.close()
        stop_passt(proc)
        server.shutdown()
