"""-runas and -chroot: pemu opens everything as root, then runs the guest as the given
user inside the given directory."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time

import pytest

from tests.hardening.test_sandbox import _backend, _qmp, _wait_for
from tests.system.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping root needs root")


def _status_lines(pid: int, *keys: str) -> dict[str, list[str]]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.split() for k, _, v in (line.partition(":") for line in f) if k in keys}


def _eventually(check, proc: subprocess.Popen, what: str) -> None:
    """The QMP socket exists before isolation is applied (setup comes first): poll."""
    deadline = time.monotonic() + 60
    while not check():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _start(baremetal, qmp: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(baremetal), "-display", "none", "-serial", "null",
         *_backend(), "-qmp", f"unix:{qmp},server=on,wait=off", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)


@needs_root
@pytest.mark.parametrize("option", [["-runas", "nobody"], ["-run-with", "user=nobody"]])
def test_runas_nobody_drops_root_and_the_guest_runs(baremetal, tmp_path, option):
    nobody = pwd.getpwnam("nobody")
    qmp = str(tmp_path / "qmp.sock")
    proc = _start(baremetal, qmp, *option)
    try:
        _wait_for(qmp, proc)
        _eventually(lambda: _status_lines(proc.pid, "Uid")["Uid"][0] != "0", proc,
                    "pemu never dropped root")
        ids = _status_lines(proc.pid, "Uid", "Gid", "Groups")
        assert ids["Uid"] == [str(nobody.pw_uid)] * 4  # real, effective, saved, fs
        assert ids["Gid"] == [str(nobody.pw_gid)] * 4
        assert ids["Groups"] == [str(nobody.pw_gid)]  # root's groups are gone too
        replies = _qmp(qmp, "query-status", "quit")
        assert replies[1]["return"]["status"] == "running"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_root
def test_chroot_then_runas(baremetal, tmp_path):
    jail = tmp_path / "jail"
    jail.mkdir()
    qmp = str(tmp_path / "qmp.sock")
    proc = _start(baremetal, qmp, "-chroot", str(jail), "-runas", "nobody", "-sandbox", "on")
    try:
        _wait_for(qmp, proc)
        _eventually(lambda: os.readlink(f"/proc/{proc.pid}/root") == str(jail), proc,
                    "pemu never entered the chroot")
        assert _qmp(qmp, "query-status", "quit")[1]["return"]["status"] == "running"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unknown_user_is_refused_before_anything_starts(baremetal):
    r = subprocess.run([sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt",
                        "-bios", "none", "-kernel", str(baremetal), "-display", "none",
                        "-runas", "no-such-user-pemu"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == 'pemu-system-riscv64: User "no-such-user-pemu" doesn\'t exist'
