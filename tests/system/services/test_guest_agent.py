"""The real guest agent (Debian's qemu-ga 10.0) over virtio-serial-pci (issue 21).

The shared Debian boot (conftest.py) has a virtserialport named org.qemu.guest_agent.0
whose chardev is a host Unix socket; the guest's /init starts qemu-ga on it.  These
checks speak qemu-ga's protocol on that socket, with raw bytes where the protocol
itself is checked and through pemu's client (pemu-ga, pemu.guest_agent) elsewhere.
guest-shutdown is checked by the fixture's teardown (it ends the shared guest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time

import pytest

from pemu.guest_agent import GuestAgent
from tests.system.conftest import ROOT, pemu_env
from tests.system.services.conftest import AGENT_SOCKET

pytestmark = pytest.mark.slow
AGENT_TIMEOUT = 120  # seconds for one answer from a guest on a loaded host


def _socket(guest) -> str:
    return str(guest.work / AGENT_SOCKET)


@pytest.fixture
def agent(services_guest):
    """A connection of its own per test: the chardev serves one client at a time, and
    some tests connect by other means (raw sockets, pemu-ga)."""
    services_guest.console.wait_for(r"PEMU-TEST guest-agent on /dev/vport\d+p\d+", 120)
    with GuestAgent(_socket(services_guest), timeout=AGENT_TIMEOUT) as ga:
        yield ga


def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, "the agent's socket closed"
        buf += chunk
    end = buf.index(b"\n")
    line = bytes(buf[:end])
    del buf[:end + 1]
    return line


def test_guest_sync_with_the_delimiter_on_raw_bytes(services_guest):
    """0xFF resets the agent's parser (here: it throws away a half request), and
    guest-sync-delimited answers with 0xFF before its reply."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(AGENT_TIMEOUT)
        sock.connect(_socket(services_guest))
        sock.sendall(b'{"execute": "guest-inf')  # a client that died mid-request
        sock.sendall(b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 4242}}\n')
        buf = bytearray()
        while b"\xff" not in buf:
            chunk = sock.recv(4096)
            assert chunk, "the agent's socket closed"
            buf += chunk
        del buf[:buf.index(b"\xff") + 1]
        assert json.loads(_read_line(sock, buf)) == {"return": 4242}
        sock.sendall(b'{"execute": "guest-sync", "arguments": {"id": 77}}\n')
        assert json.loads(_read_line(sock, buf)) == {"return": 77}


def test_a_new_client_skips_the_stale_replies_of_the_last(services_guest):
    time.sleep(1)  # the last test's client is gone: the chardev takes one at a time
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(_socket(services_guest))
        for n in range(3):  # requests whose replies nobody reads
            sock.sendall(json.dumps({"execute": "guest-sync", "arguments": {"id": n}}).encode())
        time.sleep(1)
    with GuestAgent(_socket(services_guest), timeout=AGENT_TIMEOUT) as ga:
        assert ga.execute("guest-sync", {"id": 31337}) == 31337


def test_guest_info(agent):
    info = agent.info()
    assert info["version"].startswith("10.")
    enabled = {c["name"] for c in info["supported_commands"] if c["enabled"]}
    assert {"guest-exec", "guest-file-open", "guest-shutdown"} <= enabled


def test_the_host_sees_the_agent_holding_its_port_open(services_guest):
    qmp = services_guest.qmp()
    try:
        chardevs = {c["label"]: c for c in qmp.execute("query-chardev")}
    finally:
        qmp.close()
    assert chardevs["qga0"]["frontend-open"] is True


def test_guest_exec_uname_through_pemu_ga(services_guest):
    done = subprocess.run([sys.executable, "-m", "pemu.guest_agent.main", "--timeout",
                           str(AGENT_TIMEOUT), _socket(services_guest), "exec", "--",
                           "uname", "-m"], env=pemu_env(), cwd=ROOT, capture_output=True,
                          timeout=AGENT_TIMEOUT * 3)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"riscv64\n", b"")
    failed = subprocess.run([sys.executable, "-m", "pemu.guest_agent.main",
                             _socket(services_guest), "exec", "--", "sh", "-c",
                             "echo oops >&2; exit 3"], env=pemu_env(), cwd=ROOT,
                            capture_output=True, timeout=AGENT_TIMEOUT * 3)
    assert (failed.returncode, failed.stderr) == (3, b"oops\n")


def test_guest_exec_status_by_hand(agent):
    pid = agent.execute("guest-exec", {"path": "uname", "arg": ["-m"],
                                       "capture-output": True})["pid"]
    deadline = time.monotonic() + AGENT_TIMEOUT
    while not (status := agent.execute("guest-exec-status", {"pid": pid}))["exited"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["exitcode"] == 0
    assert base64.b64decode(status["out-data"]) == b"riscv64\n"


def test_a_file_written_by_the_agent_is_read_by_the_guest_shell(services_guest, agent):
    text = f"written through qemu-ga at {time.time()}\n"
    agent.file_write("/tmp/from-agent.txt", text.encode())
    out = services_guest.console.run("cat /tmp/from-agent.txt", "AGENT-FILE-END", 120)
    assert text.strip() in out
    assert agent.file_read("/tmp/from-agent.txt") == text.encode()


def test_large_transfers_lose_nothing_either_way(agent):
    """64 KiB into the guest (host -> guest through the port's receive buffers) and its
    sha256 back, then 96 KiB of guest output (guest -> host) checked byte for byte."""
    data = bytes(range(256)) * 256
    agent.file_write("/tmp/big.bin", data)
    result = agent.exec(["sha256sum", "/tmp/big.bin"], timeout=AGENT_TIMEOUT)
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    back = agent.exec(["sh", "-c", "cat /tmp/big.bin /tmp/big.bin | head -c 98304"],
                      timeout=AGENT_TIMEOUT)
    assert back.stdout == (data + data)[:98304]


def test_guest_get_osinfo(agent):
    info = agent.osinfo()
    assert info["machine"] == "riscv64"
    assert info["kernel-release"].startswith("6.12")


def test_guest_network_get_interfaces(agent):
    interfaces = {i["name"]: i for i in agent.network_interfaces()}
    assert "lo" in interfaces
    addresses = {a["ip-address"] for a in interfaces["lo"].get("ip-addresses", [])}
    assert "127.0.0.1" in addresses
