"""pemu in the kernel's binfmt_misc for a test: the resident server and its launcher.

The registrations are real (root is needed), under entry names of their own that are
removed afterwards; the newest entry for a magic wins, so a registered
qemu-user-binfmt does not interfere while the test runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from pemu.linux_user import binfmt
from pemu.linux_user.binfmt_launcher import socket_name

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def pemu_binfmt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", *args],
                          capture_output=True, text=True, env=ENV, timeout=60)


def register(name: str, *args: str) -> None:
    result = pemu_binfmt("--install", "--name", name, *args)
    assert result.returncode == 0, result.stderr


def require_binfmt_misc() -> Path:
    """The kernel's binfmt_misc, writable; skips the test where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("registering in binfmt_misc needs root")
    try:
        binfmt.ensure_mounted()
    except binfmt.BinfmtError as e:
        pytest.skip(str(e))
    if not os.access(binfmt.BINFMT_DIR / "register", os.W_OK):
        pytest.skip("binfmt_misc is read-only here")
    return binfmt.BINFMT_DIR


@contextlib.contextmanager
def served(name: str, launcher: Path) -> Iterator[subprocess.Popen]:
    """`pemu-binfmt --serve` and a launcher registered for it (flags POCF: F keeps it
    working inside chroots); both gone afterwards.  The server runs in a session of its
    own, as a service manager or ``setsid`` starts it (its process group is orphaned
    there: test_binfmt's ^Z test checks that its programs still stop)."""
    proc = subprocess.Popen([sys.executable, "-m", "pemu.linux_user.binfmt", "--serve",
                             "--name", name], env=ENV, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # ready once it accepts connections
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(b"\0" + socket_name("riscv64", name))
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
            finally:
                probe.close()
        register(name, "--server", "--launcher", str(launcher))
        try:
            yield proc
        finally:
            pemu_binfmt("--remove", "--name", name)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def registered(name: str, interpreter: str, flags: str) -> Iterator[None]:
    """Another interpreter for riscv64 programs (qemu-riscv64-static, say) for a while:
    the newest entry wins, so it takes over from earlier ones until it is removed."""
    register(name, "--interpreter", interpreter, "--flags", flags)
    try:
        yield
    finally:
        pemu_binfmt("--remove", "--name", name)
