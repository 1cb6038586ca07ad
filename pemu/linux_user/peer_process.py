"""The binfmt launcher's process, read through its pidfd.

The server learns the launcher's pid from SO_PEERCRED and what it needs of that
process from /proc/<pid>.  A pid alone can be recycled: a launcher that exited leaves
its number to the next process, whose supplementary groups would then be given to the
launcher's user.  The pidfd (SO_PEERPIDFD, fixed at connect) names the process itself,
so /proc/<pid> is opened first and the pidfd asked afterwards whether its process is
still alive with that pid: a pid is not reused while its process lives, so then the
directory opened was the launcher's, and reads through it fail (ESRCH) if the launcher
is reaped meanwhile rather than reading another process.
"""

from __future__ import annotations

import errno
import os


def pidfd_pid(pidfd: int) -> int:
    """The pid of ``pidfd``'s process (its ``Pid:`` in fdinfo): -1 once it has exited,
    0 where it is in a pid namespace this process cannot see."""
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise OSError(errno.EINVAL, f"descriptor {pidfd} is not a pidfd")


def read_status(pid: int, pidfd: int) -> str:
    """/proc/<pid>/status of the process ``pidfd`` refers to; ProcessLookupError if
    that process is not ``pid`` (any more)."""
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if pidfd_pid(pidfd) != pid:
            raise ProcessLookupError(errno.ESRCH, f"process {pid} is gone")
        fd = os.open("status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        with open(fd, closefd=True) as status:
            return status.read()
    finally:
        os.close(proc)


def supplementary_groups(pid: int, pidfd: int) -> list[int]:
    """The supplementary groups of process ``pid``, checked against its ``pidfd``
    (``read_status``); OSError where they cannot be read from that very process."""
    for line in read_status(pid, pidfd).splitlines():
        if line.startswith("Groups:"):
            return [int(g) for g in line.split()[1:]]
    raise OSError(errno.EINVAL, f"no Groups line in /proc/{pid}/status")


__all__ = ["pidfd_pid", "read_status", "supplementary_groups"]
