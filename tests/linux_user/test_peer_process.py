"""peer_process: a process's /proc status read only while its pidfd says the pid is
still that process (the binfmt server's defence against a recycled launcher pid)."""

from __future__ import annotations

import os
import subprocess

import pytest

from pemu.linux_user import peer_process


@pytest.fixture
def sleeper():
    procs = []

    def start(**kw) -> subprocess.Popen:
        proc = subprocess.Popen(["sleep", "60"], **kw)
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_groups_of_the_live_process(sleeper):
    if os.geteuid() != 0:
        pytest.skip("setting supplementary groups needs root")
    proc = sleeper(extra_groups=[4242, 4343])
    pidfd = os.pidfd_open(proc.pid)
    try:
        assert peer_process.pidfd_pid(pidfd) == proc.pid
        assert peer_process.supplementary_groups(proc.pid, pidfd) == [4242, 4343]
    finally:
        os.close(pidfd)


def test_a_pid_that_is_not_the_pidfds_process_is_refused(sleeper):
    """What a recycled pid looks like: /proc/<pid> is there, but it is another process
    than the one the pidfd holds."""
    launcher, other = sleeper(), sleeper()
    pidfd = os.pidfd_open(launcher.pid)
    try:
        with pytest.raises(ProcessLookupError):
            peer_process.read_status(other.pid, pidfd)
    finally:
        os.close(pidfd)


def test_an_exited_process_is_refused(sleeper):
    proc = sleeper()
    pidfd = os.pidfd_open(proc.pid)
    try:
        proc.kill()
        proc.wait()
        assert peer_process.pidfd_pid(pidfd) == -1
        with pytest.raises(OSError):
            peer_process.supplementary_groups(proc.pid, pidfd)
    finally:
        os.close(pidfd)
