"""Waking a backend thread that sleeps in poll(), at most one pipe write per sleep.

A backend thread (slirp's, a socket or TAP backend's) polls its descriptors plus the
read end of a pipe; other threads (the vCPU handing over a guest frame, the monitor,
``close``) write a byte to wake it.  Writing one byte per guest frame cost a system
call on the vCPU thread for every packet, although the thread only needs waking when
it is, or is about to be, asleep: while it runs it sees the new work anyway.

The protocol (both sides run under the GIL, so their steps interleave but never
overlap):

* the backend thread calls ``going_to_sleep()`` *before* it looks at its queues to
  choose the poll timeout, and ``woke(revents_of_fd)`` after poll returned;
* a producer first publishes its work (appends to a queue, sets a flag), then calls
  ``wake()``, which writes only while the thread is marked asleep.

Either the thread's look at its queues comes after the producer's publish (it sees
the work and polls with timeout 0), or the producer's ``wake()`` comes after the
thread marked itself asleep (and writes the byte).  ``wake(force=True)`` always
writes, for callers whose work the thread checks only at the top of its loop.
"""

from __future__ import annotations

import os
import select


class Wakeup:
    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        self._asleep = False
        self.writes = 0  # how many wake-ups were written (tests, profiling)

    def going_to_sleep(self) -> None:
        self._asleep = True

    def woke(self, revents: int) -> None:
        self._asleep = False
        if revents & select.POLLIN:
            try:
                while os.read(self.fd, 4096):
                    pass
            except OSError:
                pass  # drained (EAGAIN) or closing

    def wake(self, force: bool = False) -> None:
        if not (self._asleep or force):
            return
        self.writes += 1
        try:
            os.write(self._write_fd, b"\0")
        except OSError:
            pass  # a wake-up is already pending (pipe full) or we are closing

    def close(self) -> None:
        for fd in (self.fd, self._write_fd):
            os.close(fd)
