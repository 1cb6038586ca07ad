"""The ``stdio`` backend: the terminal pemu was started from."""

from __future__ import annotations

import sys

from pemu.chardev import terminal
from pemu.chardev.backend import BackendOptions, declare_backend
from pemu.chardev.fd import FdChardev
from pemu.qom.registry import Property


class StdioChardev(FdChardev):
    """Guest output to stdout, keys from stdin (raw mode when stdin is a terminal).

    ``signal=True`` keeps Ctrl-C as SIGINT (QEMU's default for ``-serial stdio``);
    ``mon:stdio`` and ``-nographic`` turn it off so Ctrl-C reaches the guest.  The
    Ctrl-A escapes live in the mux (``pemu.chardev.mux``), which every stdio user
    goes through.
    """

    def __init__(self, id: str | None = None, signal: bool = True,
                 in_fd: int | None = None, out_fd: int | None = None) -> None:
        super().__init__(sys.stdin.fileno() if in_fd is None else in_fd,
                         sys.stdout.fileno() if out_fd is None else out_fd, id)
        self.raw = terminal.set_raw(self.in_fd, allow_signals=signal)
        self.start_reading()

    def close(self) -> None:
        if not self.closed:
            super().close()
            terminal.restore_all()


def _open_stdio(options: BackendOptions) -> StdioChardev:
    options.claim("stdio", "cannot use stdio by multiple character devices")
    return StdioChardev(options.id, signal=options.flag("signal"))


declare_backend("stdio", "the terminal pemu runs in", _open_stdio,
                Property("signal", "bool", "on", "Ctrl-C stops pemu (off: it goes to "
                         "the guest)"))
