"""inherited_fds: the binfmt server taking a launcher's descriptors and a forked child
putting them at their numbers (test_binfmt.py checks the same through binfmt_misc)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest

from pemu.linux_user import inherited_fds

# a stand-in for the launcher: it opens a close-on-exec file of its own (as the launcher
# opens its socket and directories), says so, and waits
HOLDER = ("import os, sys; os.open('/dev/null', os.O_RDONLY | os.O_CLOEXEC); "
          "print('ready', flush=True); sys.stdin.read()")


def _same(a: int, b: int) -> bool:
    x, y = os.fstat(a), os.fstat(b)
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


@pytest.fixture
def holder(tmp_path):
    """A process holding two inherited descriptors, 5 (a file) and 9 (a pipe's end)."""
    path = tmp_path / "five"
    # above 9, so that the redirections below never close what they copy
    low = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    five = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(low)
    read_end, low = os.pipe()
    write_end = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(low)

    # the shell moves them to 5 and 9, as a caller's redirections would
    redirect = f"5>&{five} 9>&{write_end} {five}>&- {write_end}>&-"
    proc = subprocess.Popen(["bash", "-c", f'exec "$0" -c "$1" {redirect}', sys.executable,
                             HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            pass_fds=(five, write_end))
    assert proc.stdout.readline() == b"ready\n"
    os.close(write_end)
    yield proc, path, read_end, five
    proc.stdin.close()
    proc.wait()
    os.close(read_end)
    os.close(five)


def test_borrow_takes_what_an_execve_would_pass_on(holder):
    proc, _, _, five = holder
    try:
        taken = inherited_fds.borrow(proc.pid)
    except PermissionError:
        pytest.skip("no ptrace access to a child here (pidfd_getfd)")
    try:
        # not its own close-on-exec one, not its pipes to us (0, 1, 2 go by SCM_RIGHTS)
        assert set(taken) == {5, 9}, taken
        assert _same(taken[5], five)
        assert all(os.get_inheritable(fd) is False for fd in taken.values())
        # the launcher's program descriptor (flag O) is left out
        again = inherited_fds.borrow(proc.pid, program_fd=taken[5])
        assert 5 not in again and 9 in again
        for fd in again.values():
            os.close(fd)
    finally:
        for fd in taken.values():
            os.close(fd)


def test_place_puts_them_at_their_numbers_and_closes_the_rest(holder):
    proc, path, read_end, _ = holder
    try:
        taken = inherited_fds.borrow(proc.pid)
    except PermissionError:
        pytest.skip("no ptrace access to a child here (pidfd_getfd)")
    keep = os.open("/", os.O_PATH | os.O_CLOEXEC)
    stray = os.open("/dev/null", os.O_RDONLY)  # inheritable: the server's, not the program's
    os.set_inheritable(stray, True)
    pid = os.fork()
    if pid == 0:  # checks in the child; the exit status says which failed
        code = 1
        try:
            # as in the server's child: only what it still needs is open (and stdio)
            needed = {*taken.values(), keep, stray}
            for name in os.listdir("/proc/self/fd"):
                if int(name) > 2 and int(name) not in needed:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
            # one of pemu's own (close-on-exec) where the caller had a descriptor: kept
            own = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(own, 7, inheritable=False)
            os.close(own)
            wanted = {0: None, 1: os.dup(1), 2: os.dup(2), 5: taken[5], 9: taken[9],
                      7: os.dup(taken[9])}
            now, refused = inherited_fds.place(wanted, [keep])
            code = 2
            assert refused == [7] and os.path.samestat(os.fstat(now[keep]), os.stat("/"))
            assert os.path.samestat(os.fstat(7), os.stat("/proc/self/exe"))
            code = 3
            os.write(5, b"to-five\n")
            os.write(9, b"to-nine\n")
            code = 4
            assert os.get_inheritable(5) and os.get_inheritable(9)
            code = 5
            for fd in (0, stray):
                try:
                    os.fstat(fd)
                    raise AssertionError(f"{fd} is open")
                except OSError:
                    pass
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.close(keep)
    os.close(stray)
    for fd in taken.values():
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == b"to-five\n"
    assert os.read(read_end, 100) == b"to-nine\n"
