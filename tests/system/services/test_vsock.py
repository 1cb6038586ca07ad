"""The userspace virtio-vsock-pci on the real Debian guest (issue 21): no vhost
module on the host, streams bridged to UNIX sockets, both directions.

host -> guest: the guest's own qemu-guest-agent listens on AF_VSOCK
(``-m vsock-listen``); the host writes ``CONNECT <port>`` on the device's UNIX socket
and speaks the agent's protocol through it.
guest -> host: nothing in the Debian initramfs is an AF_VSOCK client (busybox nc and
iperf3 know no vsock), so a tiny static program (vsock_echo.c, no libc) is built
with riscv64-linux-gnu-gcc, typed into the guest as base64, and connects to a host
UNIX-socket server on ``<uds-path>_<port>``.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.system.services.conftest import VSOCK_GUEST_CID, VSOCK_SOCKET

pytestmark = pytest.mark.slow

AGENT_PORT = 1234
ECHO_PORT = 5000
CC = "riscv64-linux-gnu-gcc"
SOURCE = Path(__file__).with_name("vsock_echo.c")


def connect_to_guest(uds: Path, port: int, timeout: float) -> tuple[socket.socket, int]:
    """``CONNECT port`` until the guest's listener answers ``OK <hostport>``."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)  # longer than pemu waits for the guest (vsock_host.py)
        sock.connect(str(uds))
        sock.sendall(f"CONNECT {port}\n".encode())
        reply = sock.makefile("rb").readline()
        if reply.startswith(b"OK "):
            return sock, int(reply.split()[1])
        sock.close()  # nobody listens yet (the guest answered RST): try again
        if time.monotonic() > deadline:
            raise AssertionError(f"the guest never accepted vsock port {port}")
        time.sleep(2)


def test_host_reaches_the_guest_agent_over_vsock(services_guest):
    guest = services_guest
    out = guest.console.run(
        f"qemu-ga -d -m vsock-listen -p {VSOCK_GUEST_CID}:{AGENT_PORT} "
        "-f /tmp/qga-vsock.pid -t /tmp && echo QGA-VSOCK-STARTED", "QGA-VSOCK-DONE",
        timeout=120)
    assert "QGA-VSOCK-STARTED" in out, out
    sock, hostport = connect_to_guest(guest.work / VSOCK_SOCKET, AGENT_PORT, 120)
    assert hostport >= 1 << 30
    with sock, sock.makefile("rwb") as f:
        for n in (4242, 4343):  # twice: the stream goes on after the first answer
            f.write(json.dumps({"execute": "guest-sync", "arguments": {"id": n}}).encode()
                    + b"\n")
            f.flush()
            assert json.loads(f.readline()) == {"return": n}
        f.write(b'{"execute": "guest-info"}\n')
        f.flush()
        info = json.loads(f.readline())["return"]
        assert info["version"].startswith("10.")


def build_echo(tmp: Path) -> Path:
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} is not installed (Debian gcc-riscv64-linux-gnu)")
    binary = tmp / "vsock-echo"
    subprocess.run([CC, "-Os", "-static", "-nostdlib", "-ffreestanding",
                    "-fno-stack-protector", "-fno-pic", "-no-pie", "-Wl,--build-id=none",
                    "-s", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def test_guest_reaches_a_host_unix_socket_server(services_guest, tmp_path):
    guest = services_guest
    binary = build_echo(tmp_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(guest.work / f"{VSOCK_SOCKET}_{ECHO_PORT}"))
    server.listen(1)
    server.settimeout(300)
    heard: list[bytes] = []

    def serve() -> None:
        peer, _ = server.accept()
        with peer:
            data = b""
            while chunk := peer.recv(4096):  # the guest half-closes after its message
                data += chunk
            heard.append(data)
            peer.sendall(b"host got: " + data + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        text = base64.b64encode(binary.read_bytes()).decode()
        guest.console.run("rm -f /tmp/vsock-echo.b64", "B64-RESET")
        for i in range(0, len(text), 400):  # short lines for the guest's tty
            guest.console.run(f"echo -n '{text[i:i + 400]}' >> /tmp/vsock-echo.b64",
                              "B64-CHUNK")
        out = guest.console.run(
            "base64 -d /tmp/vsock-echo.b64 > /tmp/vsock-echo && chmod +x /tmp/vsock-echo "
            f"&& /tmp/vsock-echo {ECHO_PORT} hello-from-the-guest", "VSOCK-ECHO-DONE",
            timeout=300)
        thread.join(timeout=60)
        assert heard == [b"hello-from-the-guest"], out
        assert "host got: hello-from-the-guest" in out, out
    finally:
        server.close()
