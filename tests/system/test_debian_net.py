"""Debian's riscv64 guest on the network: virtio-net-device on virtio-mmio with
``-netdev user`` (libslirp).  One boot for the module; every check talks to it.

The guest's /init runs udhcpc (``pemu.net=dhcp``) and dropbear (``pemu.sshd=1``, root
with an empty password).  The real OpenSSH client logs in through ``hostfwd``; the
guest fetches a file from an HTTP server this test runs on 127.0.0.1 (the guest sees
it as 10.0.2.2); QMP ``set_link`` takes the carrier away and gives it back.  Traffic
stays on 127.0.0.1: nothing here resolves or contacts an outside name.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, ROOT, pemu_cmd, pemu_env

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1200  # seconds to "sshd up" (about 2 minutes on an idle 2-core host)
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QMP:
    """A minimal synchronous QMP client over a UNIX socket."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            msg = json.loads(self.file.readline())
            if "event" not in msg:
                return msg

    def execute(self, command: str, **args) -> object:
        self.file.write(json.dumps({"execute": command, "arguments": args}).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        assert "return" in reply, reply
        return reply["return"]

    def hmp(self, line: str) -> str:
        return self.execute("human-monitor-command", **{"command-line": line})

    def close(self) -> None:
        self.sock.close()


class Guest:
    def __init__(self, proc: subprocess.Popen, console: str, qmp: QMP, ssh_port: int):
        self.proc, self.console_path, self.qmp, self.ssh_port = proc, console, qmp, ssh_port

    @property
    def console(self) -> str:
        with open(self.console_path, errors="replace") as f:
            return f.read()

    def ssh(self, command: str, port: int | None = None, timeout: float = 120,
            text: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["sshpass", "-p", "", "ssh", "-p", str(port or self.ssh_port),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=60", "root@127.0.0.1", command],
            capture_output=True, text=text, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if not (shutil.which("ssh") and shutil.which("sshpass")):
        pytest.skip("needs openssh-client and sshpass")
    from pemu.accel.tcg.backend.x86_64 import host_supported
    from pemu.net.slirp_ffi import SlirpUnavailable, library

    if not host_supported():
        pytest.skip("the native TCG backend needs an x86-64 Linux host")
    try:
        library()
    except SlirpUnavailable as e:
        pytest.skip(str(e))
    tmp = tmp_path_factory.mktemp("debian-net")
    console, qmp_path, port = str(tmp / "console.log"), str(tmp / "qmp.sock"), free_port()
    cmd = pemu_cmd(
        "-accel", "tcg,backend=native", "-M", "virt", "-m", "512M", "-display", "none",
        "-kernel", str(DEBIAN / "Image"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
        "-append", "console=ttyS0 pemu.net=dhcp pemu.sshd=1",
        "-serial", f"file:{console}", "-qmp", f"unix:{qmp_path},server=on,wait=off",
        "-netdev", f"user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-device,netdev=n0,id=nic0,mac=52:54:00:12:34:77")
    stderr = open(tmp / "stderr.log", "w+")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, env=pemu_env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=stderr, stderr=stderr)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not os.path.exists(qmp_path) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.2)
    qmp = QMP(qmp_path)
    g = Guest(proc, console, qmp, port)
    while "PEMU-TEST sshd up" not in g.console:
        if proc.poll() is not None or time.monotonic() > deadline:
            stderr.seek(0)
            pytest.fail(f"no sshd: {g.console[-3000:]}\n{stderr.read()[-2000:]}")
        time.sleep(1)
    yield g
    qmp.close()
    proc.terminate()
    proc.wait(timeout=60)
    stderr.seek(0)
    errors = stderr.read()
    stderr.close()
    assert "Traceback" not in errors, errors[-3000:]


def test_the_guest_took_its_dhcp_lease(guest):
    assert "PEMU-TEST net eth0 10.0.2.15/24" in guest.console
    assert re.search(r"PEMU-TEST virtio virtio\d device-id 0x0001 driver virtio_net",
                     guest.console) or "virtio_net" in guest.ssh("lsmod").stdout


def test_ssh_through_hostfwd_runs_a_command(guest):
    r = guest.ssh("uname -a; cat /sys/class/net/eth0/address")
    assert r.returncode == 0, r.stderr
    assert re.match(r"Linux \S+ 6\.12\.\S+-riscv64 .* riscv64", r.stdout), r.stdout
    assert "52:54:00:12:34:77" in r.stdout  # the MAC from -device ...,mac=


def test_the_guest_fetches_a_file_from_the_host(guest, tmp_path):
    blob = os.urandom(3 << 20)  # several MiB: many full-size frames and TCP windows
    (tmp_path / "blob").write_bytes(blob)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        r = guest.ssh(f"wget -q -O - http://10.0.2.2:{port}/blob | sha256sum", timeout=300)
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == hashlib.sha256(blob).hexdigest()


def test_the_host_reads_a_large_file_from_the_guest(guest):
    """guest -> host bulk data: full-size frames the guest checksums by offload."""
    r = guest.ssh("head -c 2000000 /dev/urandom > /tmp/sent && sha256sum /tmp/sent")
    assert r.returncode == 0, r.stderr
    got = guest.ssh("cat /tmp/sent", text=False, timeout=300)
    assert got.returncode == 0 and len(got.stdout) == 2000000
    assert hashlib.sha256(got.stdout).hexdigest() == r.stdout.split()[0]


def test_set_link_down_and_up_is_seen_by_the_guest(guest):
    # a guest-side recorder samples the carrier while the link goes down and up
    r = guest.ssh("(for i in $(seq 1 60); do cat /sys/class/net/eth0/carrier; sleep 0.2; "
                  "done > /tmp/carrier.log 2>&1 &) ; echo started")
    assert "started" in r.stdout
    time.sleep(2)
    guest.qmp.execute("set_link", name="nic0", up=False)
    assert "link=down" in guest.qmp.hmp("info network")
    time.sleep(3)
    guest.qmp.execute("set_link", name="nic0", up=True)
    time.sleep(2)
    log = ""
    for _ in range(30):
        r = guest.ssh("cat /sys/class/net/eth0/carrier; echo --; cat /tmp/carrier.log")
        log = r.stdout
        if r.returncode == 0 and log.count("\n") > 30:
            break
        time.sleep(2)
    now, _, samples = log.partition("--\n")
    seq = [s for s in samples.split() if s in ("0", "1")]
    assert now.strip() == "1"
    assert "0" in seq and seq[0] == "1", seq
    assert "1" in seq[seq.index("0"):], seq  # up again after down


def test_hostfwd_added_from_the_monitor_reaches_the_guest(guest):
    port = free_port()
    assert guest.qmp.hmp(f"hostfwd_add n0 tcp:127.0.0.1:{port}-:22") == ""
    r = guest.ssh("echo through-the-new-rule", port=port)
    assert "through-the-new-rule" in r.stdout, r.stderr
    assert "removed" in guest.qmp.hmp(f"hostfwd_remove n0 tcp:127.0.0.1:{port}")
    info = guest.qmp.hmp("info network")
    assert "nic0: index=0,type=nic,model=virtio-net-device,macaddr=52:54:00:12:34:77" in info


def test_no_kernel_complaint(guest):
    for bad in ("Kernel panic", "Oops", "BUG:", "soft lockup", "NETDEV WATCHDOG",
                "rx error", "bad gso"):
        assert bad not in guest.console, guest.console[-3000:]
