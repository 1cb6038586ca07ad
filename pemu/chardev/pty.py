"""The ``pty`` backend: a pseudo-terminal that a user attaches to with screen/minicom."""

from __future__ import annotations

import os
import sys
import tty

from pemu.chardev.backend import declare_backend
from pemu.chardev.fd import FdChardev


class PtyChardev(FdChardev):
    """Allocates a pty pair; the guest talks to the master, users open the slave.

    We keep the slave open ourselves so that the master does not report EIO/HUP in a
    loop while no one is attached; output written meanwhile waits in the kernel's pty
    buffer and is dropped once that is full.
    """

    def __init__(self, id: str | None = None, announce: bool = True) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # the guest owns line discipline; the host pty must not echo
        os.set_blocking(master, False)
        super().__init__(master, master, id)
        self._slave = slave
        self.path = os.ttyname(slave)
        if announce:
            print(f"char device redirected to {self.path} (label {self.label})",
                  file=sys.stdout, flush=True)
        self.start_reading()

    def close(self) -> None:
        if not self.closed:
            super().close()
            os.close(self.in_fd)
            os.close(self._slave)


declare_backend("pty", "a new pseudo-terminal (its path is printed)",
                lambda options: PtyChardev(options.id))
