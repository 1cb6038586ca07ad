"""The ``pty`` backend: a pseudo-terminal that a user attaches to with screen/minicom."""

from __future__ import annotations

import os
import sys
import tty

from pemu.chardev.backend import declare_backend
from pemu.chardev.fd import FdChardev
from pemu.fdpass.handover import CHARDEV, take


class PtyChardev(FdChardev):
    """Allocates a pty pair; the guest talks to the master, users open the slave.

    We keep the slave open ourselves so that the master does not report EIO/HUP in a
    loop while no one is attached; output written meanwhile waits in the kernel's pty
    buffer and is dropped once that is full.
    """

    def __init__(self, id: str | None = None, announce: bool = True,
                 handed: list[int] | None = None) -> None:
        if handed is not None and len(handed) == 2:  # a live update: the same pty
            master, slave = handed
        else:
            master, slave = os.openpty()
            tty.setraw(slave)  # the guest owns line discipline; the host must not echo
        os.set_blocking(master, False)
        super().__init__(master, master, id)
        self._slave = slave
        self.path = os.ttyname(slave)
        if announce:
            print(f"char device redirected to {self.path} (label {self.label})",
                  file=sys.stdout, flush=True)
        self.start_reading()

    # -- a live update (pemu/fdpass/handover.py): the user's terminal stays attached --
    def handover_fds(self) -> list[int] | None:
        return None if self.closed else [self.in_fd, self._slave]

    def handed_over(self) -> None:
        """The new pemu reads the master now: stop reading it, close our copies."""
        self.close()

    def close(self) -> None:
        if not self.closed:
            super().close()
            os.close(self.in_fd)
            os.close(self._slave)


declare_backend("pty", "a new pseudo-terminal (its path is printed)",
                lambda options: PtyChardev(
                    options.id, handed=take(CHARDEV, options.id) if options.id else None))
