"""Programs whose oracle is the host kernel itself: the same C source built for the
host with ``gcc`` and run natively must print what it prints under pemu.

Used where Debian's qemu-riscv64 (7.2) is no oracle: it answers clone3 with ENOSYS
(so glibc falls back to clone), dies of SIGBUS on a robust PI mutex whose owner thread
exited, hangs when the owner of a process-shared robust mutex exits, and answers ENOSYS
to ioctls it does not know (TIOCGPTLCK, TIOCGPKT, FIOQSIZE; the kernel says ENOTTY).
The programs print only what is the same on every architecture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import PROGRAMS, ROOT, SYSROOT, run_pemu

A64_CC = "aarch64-linux-gnu-gcc"


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """Build a program from tests/programs for the host and return its output."""
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc to build the native oracle")
    out_dir = tmp_path_factory.mktemp("native-programs")

    def run_native(name: str) -> subprocess.CompletedProcess:
        exe = out_dir / name
        if not exe.exists():
            subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe),
                            str(PROGRAMS / f"{name}.c")], check=True, capture_output=True)
        return subprocess.run([str(exe)], capture_output=True, timeout=60)

    return run_native


def _same_as_kernel(build, native, name: str, static: bool, *pemu_args: str):
    prog = str(build(name, static))
    prefix = [] if static else ["-L", SYSROOT]
    expected = native(name)
    got = run_pemu(*pemu_args, *prefix, prog, timeout=120)
    assert (got.stdout.decode(), got.returncode) == \
        (expected.stdout.decode(), expected.returncode), got.stderr.decode()[-2000:]
    return got


def test_clone3_and_execveat_static(build, native):
    """clone3 threads (CLEARTID wake, PARENT_SETTID), a fork with CLONE_PIDFD, the
    kernel's argument checks, CLONE_CLEAR_SIGHAND, posix_spawn and execveat; -strace
    shows that the threads and forks really came from clone3."""
    p = _same_as_kernel(build, native, "clone3_exec", True, "-strace")
    out = p.stdout.decode()
    assert "thread: parent_tid matches 1, other tid 1, value 42" in out
    assert "fork: pidfd 1, cloexec 1, waitid 0, pid matches 1, status 7" in out
    assert "checks: size 128, used tail: E2BIG" in out
    assert "execveat: AT_EMPTY_PATH 3" in out and "execveat: relative 3" in out
    made = [line for line in p.stderr.decode().splitlines() if " clone3(" in line
            and not line.endswith(")") and " = -1 " not in line]
    assert len(made) >= 4, p.stderr.decode()[-2000:]


def test_vfork_and_posix_spawn_then_exec(build, native):
    """A vfork child runs in its parent's pemu until it execs (syscalls/vfork_child.py):
    its dup2/close, mask and dispositions reach the new program and not the parent, its
    pid is the one vfork returned, a failed exec returns to it (and posix_spawn returns
    the errno), a child that never execs writes the parent's memory, and one that asks
    for something kept aside (its pid, SIG_IGN before the exec) becomes a process of
    its own.  qemu-riscv64 is no oracle here: it runs vfork as fork."""
    p = _same_as_kernel(build, native, "vfork_exec", True)
    out = p.stdout.decode()
    assert "vfork+dup2: read 1, pid matches 1, status 0" in out
    assert "failed exec: child saw ENOENT, status 42" in out
    assert "no exec: shared value 1234, status 3" in out
    assert "posix_spawn missing: ENOENT" in out


def test_pi_and_robust_mutexes_static(build, native):
    """PTHREAD_PRIO_INHERIT mutexes under contention, robust mutexes (plain and PI)
    whose owner exits holding them (EOWNERDEAD, with a waiter blocked and without),
    raw FUTEX_LOCK_PI/TRYLOCK_PI/UNLOCK_PI errors and FUTEX_WAKE_OP."""
    p = _same_as_kernel(build, native, "pi_robust", True)
    out = p.stdout.decode()
    assert "pi mutex: counter 8000" in out
    assert "robust pi: lock after owner died: EOWNERDEAD" in out
    assert "wake_op: returned >=1 1, w2 5" in out


def test_futexes_shared_between_processes(build, native):
    """A process-shared semaphore, mutex and condition variable in MAP_SHARED memory
    (the futexes are the host's), and a robust mutex whose owner process exits holding
    it: exit_group walks the robust list, the waiter in the other process gets
    EOWNERDEAD; a signal handler interrupts a shared wait (EINTR), a timed one ends."""
    p = _same_as_kernel(build, native, "shared_futex", False)
    out = p.stdout.decode()
    assert "mutex and condition: counter 2020" in out
    assert "robust: lock after the owner process exited: EOWNERDEAD" in out
    assert "signal: sem_wait -1 EINTR, handler ran 1" in out


def test_terminal_and_socket_ioctls(build, native):
    """A pty pair (TIOCGPTPEER, lock, number, termios, window size, packet mode,
    exclusive mode), interface queries on loopback (SIOCGIFCONF with its pointer,
    SIOCGIFINDEX/NAME/FLAGS/MTU), queue sizes, and ENOTTY for what is unknown."""
    p = _same_as_kernel(build, native, "ioctls", False)
    out = p.stdout.decode()
    assert "window 111x33" in out and "unknown ioctl: ENOTTY" in out


@pytest.mark.parametrize("name", ["clone3_exec", "pi_robust", "vfork_exec"])
def test_aarch64_static(native, tmp_path, name):
    """The same programs as arm64 guests (the syscall layer is shared): static, since
    the cross toolchain's static glibc is all an arm64 build needs."""
    if shutil.which(A64_CC) is None:
        pytest.skip(f"{A64_CC} is not installed")
    exe = tmp_path / name
    subprocess.run([A64_CC, "-static", "-O2", "-pthread", "-o", str(exe),
                    str(PROGRAMS / f"{name}.c")], check=True, capture_output=True)
    code = "import sys; from pemu.linux_user.main import main_aarch64; " \
           "sys.exit(main_aarch64(sys.argv[1:]))"
    got = subprocess.run([sys.executable, "-c", code, str(exe)], capture_output=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    expected = native(name)
    assert (got.stdout.decode(), got.returncode) == \
        (expected.stdout.decode(), expected.returncode), got.stderr.decode()[-2000:]
