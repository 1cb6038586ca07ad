"""The caller's other descriptors, for a program the binfmt server starts.

A program started by an execve keeps every descriptor its caller had open without
close-on-exec, at the same numbers: ``dpkg --status-fd 7`` (apt and mmdebstrap read
dpkg's progress there), make's jobserver pipe, a shell's ``3>&1``, configure's ``>&5``.
The binfmt launcher hands over only stdin, stdout and stderr (SCM_RIGHTS, so a chroot
needs nothing but the launcher); the others are still open in the launcher, which waits
for its program, so the server takes copies of them with ``pidfd_getfd`` (``borrow``)
and the forked child puts them at their numbers (``place``).

Which ones: the launcher's descriptors from 3 up that are not close-on-exec.  Everything
the launcher opens itself (its socket, its root and working directories, its signalfd)
is close-on-exec, so the rest came from the caller; the program descriptor that
binfmt_misc opens for flag ``O`` is not, and is left out (it is passed on as AT_EXECFD).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
from collections.abc import Iterable

# x86-64 system call numbers (the host pemu runs on)
SYS_KCMP, SYS_PIDFD_GETFD = 312, 438
KCMP_FILE = 0
SO_PEERPIDFD = 77  # Linux 6.5: a pidfd of the socket's peer, fixed at connect
O_CLOEXEC = 0o2000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: int) -> int:
    result = _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _open_flags(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise OSError(f"no flags in /proc/{pid}/fdinfo/{fd}")


def peer_pidfd(conn: socket.socket) -> int | None:
    """A pidfd of the process at the other end of ``conn`` (None: the kernel has no
    SO_PEERPIDFD).  A root server must take descriptors through this, not through the
    peer's pid: a launcher that exited could leave its pid to another process, whose
    descriptors would then go to the launcher's user."""
    try:
        return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return None


def borrow(pid: int, program_fd: int | None = None, pidfd: int | None = None
           ) -> dict[int, int]:
    """Copies of process ``pid``'s descriptors from 3 up that survive an execve: its
    number -> a close-on-exec descriptor of this process.  ``program_fd`` (ours) is the
    program descriptor the launcher passed: the launcher's own one is left out.
    ``pidfd``: the process's pidfd (``peer_pidfd``; the caller's, left open), else
    one is opened from ``pid`` (and closed).  The copies come through the pidfd only, so if ``pid``
    now names another process they fail (the pidfd's process is gone) instead of
    taking that process's descriptors.  Raises OSError where this process may not
    take them (it needs ptrace access)."""
    own = pidfd is None
    if pidfd is None:
        pidfd = os.pidfd_open(pid)
    taken: dict[int, int] = {}
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            number = int(name)
            if number < 3:
                continue
            try:
                if _open_flags(pid, number) & O_CLOEXEC:
                    continue
            except FileNotFoundError:
                continue  # closed meanwhile
            if program_fd is not None and _syscall(SYS_KCMP, pid, os.getpid(), KCMP_FILE,
                                                   number, program_fd) == 0:
                continue
            taken[number] = _syscall(SYS_PIDFD_GETFD, pidfd, number, 0)
    except BaseException:
        for fd in taken.values():
            os.close(fd)
        raise
    finally:
        if own:
            os.close(pidfd)
    return taken


def _close_on_exec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def place(wanted: dict[int, int | None], keep: Iterable[int]) -> tuple[dict[int, int],
                                                                       list[int]]:
    """In the forked child: each descriptor of ``wanted`` (number -> ours, None: closed)
    at its number, as the program's own (not close-on-exec), and every other descriptor
    without close-on-exec closed (the server's, which the program must not see).
    ``keep`` are descriptors still needed (root, working directory, program): moved out
    of the way where a wanted number is theirs.  pemu's own descriptors are close-on-
    exec and kept; a wanted number that is one of them is not placed (listed in the
    result).  Returns where ``keep``'s descriptors are now, and the numbers not placed.
    The sources in ``wanted`` are closed."""
    floor = max(wanted, default=2) + 1
    ours = {fd for fd in wanted.values() if fd is not None} | set(keep)
    moved: dict[int, int] = {}
    for fd in ours:
        if fd < floor:  # where a wanted descriptor goes: move it up first
            moved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
            os.close(fd)
        else:
            moved[fd] = fd
    refused = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in moved.values():
            continue
        try:
            if not _close_on_exec(fd):
                os.close(fd)  # the server's, or what the program gets next
            elif fd in wanted:
                refused.append(fd)  # pemu's own (the code buffer's memfd)
        except OSError:
            pass  # the listing's own descriptor, gone by now
    for number, fd in wanted.items():
        if fd is None:
            continue
        if number not in refused:
            os.dup2(moved[fd], number)  # inheritable: the program's own
        os.close(moved[fd])
    return {fd: moved[fd] for fd in keep}, refused
