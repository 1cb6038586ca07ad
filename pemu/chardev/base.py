"""The character device interface every frontend (UART, virtio-console, monitor) uses.

A backend pushes host input through ``_deliver``; the base class buffers it and hands
the frontend only as much as the frontend says it can take (``can_receive``), so a
16-byte UART FIFO is never overrun by a paste of a kilobyte.  When the frontend makes
room again it calls ``accept_input`` and the rest follows on the I/O thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu.main_loop import get_main_loop

Receiver = Callable[[bytes], None]
CanReceive = Callable[[], int]
EventHandler = Callable[[str], None]

# Events for ``set_event_handler``: a peer appeared (or the backend is simply there),
# or went away.  A monitor greets a new QMP client on OPENED.
CHR_EVENT_OPENED = "opened"
CHR_EVENT_CLOSED = "closed"

# Stop reading from the host once this much input is waiting for a slow frontend.
INPUT_HIGH_WATER = 64 * 1024


class ChardevError(Exception):
    """A chardev could not be created or opened; the message is shown to the user."""


class Chardev:
    """Base of every backend.  ``write`` never raises for a vanished peer: it drops."""

    def __init__(self, id: str | None = None) -> None:
        self.id = id
        self.label = id or type(self).__name__.lower()
        self._receiver: Receiver | None = None
        self._can_receive: CanReceive | None = None
        self._inbuf = bytearray()
        self._in_lock = threading.RLock()
        self._event_handler: EventHandler | None = None
        self.closed = False
        # Whether the frontend's guest side has the line open (a virtio-serial port the
        # guest opened); None for frontends that never say (a UART is always there).
        self.fe_open: bool | None = None

    # -- frontend side -----------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send guest output to the host."""
        raise NotImplementedError

    def write_some(self, data: bytes) -> int:
        """Send as much of ``data`` as the backend takes now, without blocking; returns
        how many bytes it took.  A frontend that can hold its output (virtio-serial)
        uses this and ``notify_writable``; the default takes everything."""
        self.write(data)
        return len(data)

    def notify_writable(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the I/O thread once ``write_some`` may take more."""
        get_main_loop().call_soon(callback)

    def set_fe_open(self, is_open: bool) -> None:
        """The frontend's guest opened or closed its end (QEMU's qemu_chr_fe_set_open):
        recorded for query-chardev's frontend-open; backends may act on it."""
        self.fe_open = is_open

    def set_receiver(self, callback: Receiver | None, can_receive: CanReceive | None = None
                     ) -> None:
        """Route host input to ``callback``; ``can_receive()`` bounds each chunk."""
        with self._in_lock:
            self._receiver = callback
            self._can_receive = can_receive
        self.accept_input()

    @property
    def be_open(self) -> bool:
        """Whether a peer is there (always, except for sockets waiting for a client)."""
        return not self.closed

    def set_event_handler(self, handler: EventHandler | None) -> None:
        """``handler(CHR_EVENT_OPENED | CHR_EVENT_CLOSED)``, called on the I/O thread.

        If the backend is already open, OPENED is delivered at once, so a frontend
        that registers late still sees it (QEMU does the same).
        """
        self._event_handler = handler
        if handler is not None and self.be_open:
            handler(CHR_EVENT_OPENED)

    def _emit(self, event: str) -> None:
        handler = self._event_handler
        if handler is not None:
            handler(event)

    def accept_input(self) -> None:
        """The frontend has room again: deliver buffered input (on the I/O thread)."""
        if self._inbuf:
            get_main_loop().call_soon(self._flush_input)

    def close(self) -> None:
        self.closed = True

    # -- backend side ------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        with self._in_lock:
            self._inbuf += data
        self._flush_input()

    def _flush_input(self) -> None:
        with self._in_lock:
            while self._inbuf and self._receiver is not None:
                room = len(self._inbuf) if self._can_receive is None else self._can_receive()
                if room <= 0:
                    break
                chunk = bytes(self._inbuf[:room])
                del self._inbuf[:room]
                self._receiver(chunk)
            self._input_drained()

    def _input_backlogged(self) -> bool:
        return len(self._inbuf) >= INPUT_HIGH_WATER

    def _input_drained(self) -> None:
        """Hook for fd backends to resume reading once the backlog shrinks."""
