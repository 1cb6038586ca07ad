"""One backend shared by several frontends (serial + monitor), with QEMU's Ctrl-A keys.

Output of every frontend goes to the backend.  Input goes to the frontend that has the
focus, after the escape filter: Ctrl-A followed by

  x   quit the emulator           h or ?   print the key list
  c   move focus to the next frontend (serial <-> monitor)
  a or Ctrl-A   send a literal Ctrl-A   s   flush disks   b   send a break

Quitting, flushing disks and breaks are hooks, because only the board knows how to
shut down cleanly; the monitor learns it gained or lost focus through ``on_focus``.
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable

from pemu.chardev import terminal
from pemu.chardev.base import INPUT_HIGH_WATER, Chardev

ESCAPE = 0x01  # Ctrl-A

HELP_TEXT = (
    "\r\n"
    "C-a h    print this help\r\n"
    "C-a x    exit emulator\r\n"
    "C-a s    save disk data back to file (if -snapshot)\r\n"
    "C-a b    send break (magic sysrq)\r\n"
    "C-a c    switch between console and monitor\r\n"
    "C-a a    sends C-a (so does C-a C-a)\r\n"
)


def _default_quit() -> None:
    # Raise KeyboardInterrupt in the main thread, whose finally blocks flush disks and
    # restore the terminal.  Boards replace this with an orderly shutdown request.
    terminal.restore_all()
    _thread.interrupt_main()


_quit_handler: Callable[[], None] = _default_quit


def set_quit_handler(handler: Callable[[], None]) -> None:
    """What Ctrl-A x does for every mux (the board's shutdown request)."""
    global _quit_handler
    _quit_handler = handler


class MuxFrontend(Chardev):
    """One user of the mux: its writes go out, its input arrives while it has focus."""

    def __init__(self, mux: MuxChardev, label: str) -> None:
        super().__init__(label)
        self.mux = mux
        self.on_focus: Callable[[bool], None] | None = None
        self.on_break: Callable[[], None] | None = None

    def write(self, data: bytes) -> None:
        self.mux.backend.write(data)

    def accept_input(self) -> None:
        super().accept_input()
        self.mux.backend.accept_input()

    def room(self) -> int:
        return INPUT_HIGH_WATER - len(self._inbuf)


class MuxChardev:
    """Created by ``mon:stdio``, ``-nographic`` or ``-chardev ...,mux=on``."""

    def __init__(self, backend: Chardev) -> None:
        self.backend = backend
        self.frontends: list[MuxFrontend] = []
        self.focus = 0
        self._got_escape = False
        self._lock = threading.RLock()
        self.commit_handler: Callable[[], None] | None = None
        backend.set_receiver(self._on_input, self._can_receive)

    @property
    def id(self) -> str | None:
        return self.backend.id

    def add_frontend(self, label: str) -> MuxFrontend:
        with self._lock:
            fe = MuxFrontend(self, label)
            self.frontends.append(fe)
            return fe

    def focused(self) -> MuxFrontend | None:
        return self.frontends[self.focus] if self.frontends else None

    def switch_focus(self) -> None:
        with self._lock:
            if len(self.frontends) < 2:
                return
            old = self.frontends[self.focus]
            self.focus = (self.focus + 1) % len(self.frontends)
            new = self.frontends[self.focus]
        if old.on_focus:
            old.on_focus(False)
        if new.on_focus:
            new.on_focus(True)

    def _can_receive(self) -> int:
        fe = self.focused()
        return fe.room() if fe is not None else 4096

    def _on_input(self, data: bytes) -> None:
        plain = bytearray()
        for ch in data:
            if self._got_escape:
                self._got_escape = False
                if ch in (ESCAPE, ord("a")):
                    plain.append(ESCAPE)
                else:
                    self._send(plain)
                    plain = bytearray()
                    self._escape(ch)
            elif ch == ESCAPE:
                self._got_escape = True
            else:
                plain.append(ch)
        self._send(plain)

    def _send(self, data: bytearray) -> None:
        fe = self.focused()
        if data and fe is not None:
            fe._deliver(bytes(data))

    def _escape(self, ch: int) -> None:
        key = chr(ch)
        if key in ("h", "?"):
            self.backend.write(HELP_TEXT.encode())
        elif key == "x":
            self.backend.write(b"pemu: terminated\r\n")
            _quit_handler()
        elif key == "c":
            self.switch_focus()
        elif key == "s":
            if self.commit_handler:
                self.commit_handler()
        elif key == "b":
            fe = self.focused()
            if fe is not None and fe.on_break:
                fe.on_break()
        # Any other key after Ctrl-A is swallowed, as QEMU does.

    def close(self) -> None:
        self.backend.close()
