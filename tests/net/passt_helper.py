"""Start Debian's passt for a test: a UNIX socket in the test's folder, the guest
network 10.0.2.0/24 with the gateway 10.0.2.2 (passt maps the gateway to the host's
loopback, so a guest reaches 127.0.0.1 there and nothing else is needed), IPv4 only,
one client, stopped by the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

GUEST_IP, GATEWAY = "10.0.2.15", "10.0.2.2"


def start_passt(folder: Path) -> tuple[subprocess.Popen, Path]:
    passt = shutil.which("passt")
    if passt is None:
        pytest.skip("passt is not installed (Debian package passt)")
    sock = folder / "passt.sock"
    proc = subprocess.Popen([passt, "-f", "-1", "-4", "-q", "--runas",
                             f"{os.getuid()}:{os.getgid()}", "-s", str(sock),
                             "-a", GUEST_IP, "-n", "24", "-g", GATEWAY, "-D", "none",
                             "-S", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            pytest.fail(f"passt did not start: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    return proc, sock


def stop_passt(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stderr.close()
