"""pemu's own long-lived descriptors, out of the guest's way.

In user mode the guest's descriptors are the host process's: a guest that writes to a
number pemu holds (a shell's ``exec 5>>config.log``, ``exec 6>&1``, a caller's
``--status-fd 7`` passed on by the binfmt server) replaces pemu's file with its own,
and pemu's next write lands in the guest's file: the translation cache's SQLite files
took the numbers configure uses, and configure died writing ``checking ...`` into what
had been the cache's WAL.  So what pemu keeps open for long (the code buffer's memfds,
the cache's database and WAL files, its folder) sits at FD_FLOOR and up, where programs
do not go (they get the lowest free number; shells keep theirs below 256).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
from collections.abc import Iterator

FD_FLOOR = 512


def floor() -> int:
    """FD_FLOOR, or half the descriptor limit where that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(FD_FLOOR, soft // 2)


def moved_up(fd: int) -> int:
    """``fd`` at floor() or above (close-on-exec); the original is closed.  Best
    effort: where no number is free up there, ``fd`` itself."""
    low = floor()
    if fd >= low:
        return fd
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    except OSError:
        return fd
    os.close(fd)
    return high


@contextlib.contextmanager
def opening_high() -> Iterator[None]:
    """What the block opens lands at floor() or above (for files a library opens
    itself: SQLite's): every free number below is taken by a placeholder meanwhile."""
    low = floor()
    placeholders: list[int] = []
    try:
        base = os.open("/", os.O_PATH | os.O_CLOEXEC)
    except OSError:
        yield
        return
    placeholders.append(base)
    try:
        while True:
            fd = fcntl.fcntl(base, fcntl.F_DUPFD_CLOEXEC, 0)  # the lowest free number
            placeholders.append(fd)
            if fd >= low:
                break
    except OSError:
        pass  # out of descriptors: the block opens where it can
    try:
        yield
    finally:
        for fd in placeholders:
            os.close(fd)
