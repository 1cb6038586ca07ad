"""The ``pty`` backend: a pseudo-terminal that a user attaches to with screen/minicom.

It behaves as QEMU's: while nobody holds the slave open, guest output is dropped (there
is no one to read it, and the kernel's buffer would only fill with stale text); while
somebody does (``virsh console``, screen), nothing is dropped: a write that finds the
pty's buffer full waits for the reader to drain it, which holds the guest's UART back
the way a slow terminal would.  Whether anyone is attached shows on the master: with
no slave open it polls as hung up.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import sys
import tty

from pemu.chardev.backend import declare_backend
from pemu.chardev.base import CHR_EVENT_CLOSED, CHR_EVENT_OPENED
from pemu.chardev.fd import FdChardev
from pemu.fdpass.handover import CHARDEV, take
from pemu.main_loop import get_main_loop

# How often a pty nobody holds looks for a new client (QEMU polls once a second too).
RECONNECT_POLL_S = 1.0
TIOCGPTN = 0x80045430  # Linux: the number N of a pty master's /dev/pts/N


def _slave_path(master: int) -> str:
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    return f"/dev/pts/{number}"


class PtyChardev(FdChardev):
    """Allocates a pty pair; the guest talks to the master, users open the slave."""

    def __init__(self, id: str | None = None, announce: bool = True,
                 handed: list[int] | None = None) -> None:
        if handed is not None and len(handed) == 1:  # a live update: the same pty
            master = handed[0]
        else:
            master, slave = os.openpty()
            tty.setraw(slave)  # the guest owns line discipline; the host must not echo
            os.close(slave)  # held by clients only: the master tells if one is there
        os.set_blocking(master, False)
        super().__init__(master, master, id)
        self.path = _slave_path(master)
        self.connected = False
        self._poll_timer = None
        if announce:
            print(f"char device redirected to {self.path} (label {self.label})",
                  file=sys.stdout, flush=True)
        self._check_client()

    @property
    def be_open(self) -> bool:
        return self.connected and not self.closed

    def _master_events(self, timeout_ms: int) -> int:
        poller = select.poll()
        poller.register(self.out_fd, select.POLLOUT)
        ready = poller.poll(timeout_ms)
        return ready[0][1] if ready else 0

    def _client_present(self) -> bool:
        return not self._master_events(0) & select.POLLHUP

    def _check_client(self) -> None:
        self._poll_timer = None
        if self.closed:
            return
        if self._client_present():
            self._set_connected(True)
        else:
            self._poll_timer = get_main_loop().add_timer(RECONNECT_POLL_S, self._check_client)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected or self.closed:
            return
        self.connected = connected
        if connected:
            self.start_reading()
            self._emit(CHR_EVENT_OPENED)
        else:
            self.stop_reading()
            self._emit(CHR_EVENT_CLOSED)
            if self._poll_timer is None:
                self._poll_timer = get_main_loop().add_timer(RECONNECT_POLL_S,
                                                             self._check_client)

    def _on_eof(self) -> None:
        self._set_connected(False)  # EIO on the master: the last client closed the slave

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.connected:
            # a client may have just opened the slave, before the poll timer noticed
            if not self._client_present():
                return
            get_main_loop().call_soon(lambda: self._set_connected(True))
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out_fd, view):]
            except BlockingIOError:
                # the client reads slower than the guest writes: wait for it, as a
                # terminal would make a real UART wait; a client that leaves ends it
                if self._master_events(-1) & select.POLLHUP:
                    return
            except OSError:
                return  # the slave's last holder went; the reader notices and reports

    # -- a live update (pemu/fdpass/handover.py): the user's terminal stays attached --
    def handover_fds(self) -> list[int] | None:
        return None if self.closed else [self.in_fd]

    def handed_over(self) -> None:
        """The new pemu reads the master now: stop reading it, close our copy."""
        self.close()

    def close(self) -> None:
        if not self.closed:
            if self._poll_timer is not None:
                self._poll_timer.cancel()
                self._poll_timer = None
            super().close()
            os.close(self.in_fd)


declare_backend("pty", "a new pseudo-terminal (its path is printed)",
                lambda options: PtyChardev(
                    options.id, handed=take(CHARDEV, options.id) if options.id else None))
