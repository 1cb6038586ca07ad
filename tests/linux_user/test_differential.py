"""Our C programs under qemu-riscv64 and under pemu: same stdout, stderr and status."""

from __future__ import annotations

import pytest
from conftest import SYSROOT, run_pemu, run_qemu

# every test here runs on both TCG backends
pytestmark = pytest.mark.usefixtures("tcg_backend")


def _same(build, qemu, name, static, args=(), tmp_path=None):
    prog = str(build(name, static))
    prefix = [] if static else ["-L", SYSROOT]
    q = run_qemu(*prefix, prog, *[a.format(tmp=tmp_path, who="q") for a in args])
    p = run_pemu(*prefix, prog, *[a.format(tmp=tmp_path, who="p") for a in args])
    assert (p.stdout.decode(), p.stderr.decode(), p.returncode) == \
        (q.stdout.decode(), q.stderr.decode(), q.returncode)
    return p


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_fileio(build, qemu, tmp_path, static):
    p = _same(build, qemu, "fileio", static, ["{tmp}/{who}dir"], tmp_path)
    assert b"entries 4" in p.stdout and b"from child 1" in p.stdout


def test_signals_dynamic(build, qemu):
    p = _same(build, qemu, "signals", False)
    assert p.returncode == 7
    assert b"handler on altstack: 1" in p.stdout


def test_signals_static(build, qemu):
    _same(build, qemu, "signals", True)


def test_threads_dynamic(build, qemu):
    p = _same(build, qemu, "threads", False)
    assert b"total 659700" in p.stdout


def test_cpu_bound_static(build, qemu):
    p = _same(build, qemu, "cpu_bound", True, ["20000"])
    assert b"primes 2262" in p.stdout


def test_posix_timers_dynamic(build, qemu):
    p = _same(build, qemu, "timers", False)
    out = p.stdout.decode()
    assert "one-shot: hits 1, code SI_TIMER, value 42" in out
    assert "blocked: one signal yes, overrun >=3" in out
    assert "thread-id timer: sig ok, code SI_TIMER, value 77" in out


def test_signalfd_dynamic(build, qemu):
    p = _same(build, qemu, "signalfd", False)
    out = p.stdout.decode()
    assert "sigqueue: sig 10, code SI_QUEUE, pid ok 1, value 42" in out
    assert "blocking read: 128, sig 10, code SI_USER" in out
    assert "left for sigtimedwait: 17" in out  # a blocked SIGCHLD is never dropped


def test_socket_messages_dynamic(build, qemu):
    p = _same(build, qemu, "socket_messages", False)
    out = p.stdout.decode()
    assert "SCM_RIGHTS: len 20, cloexec 1, read 21: through the passed fd" in out
    assert "SCM_CREDENTIALS: len 28, pid is mine 1, uid 1, gid 1" in out
    assert "recvmmsg: 3: [alpha] [be] [gamma delta]" in out
