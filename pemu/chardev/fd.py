"""A chardev whose input comes from a host file descriptor polled by the I/O thread."""

from __future__ import annotations

import os
import time

from pemu import threads
from pemu.chardev.base import Chardev
from pemu.main_loop import get_main_loop


class FdChardev(Chardev):
    """Reads ``in_fd`` on the I/O thread and writes ``out_fd`` from the caller's thread."""

    def __init__(self, in_fd: int | None, out_fd: int | None, id: str | None = None) -> None:
        super().__init__(id)
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._reading = False
        self._paused = False
        self._thread_reader = False

    def start_reading(self) -> None:
        if self.in_fd is None or self._reading or self.closed:
            return
        self._reading = True
        try:
            get_main_loop().add_reader(self.in_fd, self._on_readable)
        except PermissionError:
            # epoll refuses regular files (stdin redirected from a file); they are
            # always readable, so a plain blocking reader thread does the job.
            self._thread_reader = True
            threads.start_daemon(self._file_reader, name=f"pemu-{self.label}-in")
        except (OSError, ValueError):
            self._reading = False  # a closed or invalid fd: no input, not an error

    def _file_reader(self) -> None:
        while self._reading and not self.closed:
            if self._input_backlogged():
                time.sleep(0.01)  # the frontend is slow: hold back, keep the order
                continue
            self._on_readable()

    def stop_reading(self) -> None:
        if self._reading and self.in_fd is not None:
            self._reading = False
            get_main_loop().remove_reader(self.in_fd)  # harmless for the thread reader

    def _on_readable(self) -> None:
        try:
            data = os.read(self.in_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stop_reading()
            self._on_eof()
            return
        self._deliver(data)
        if self._input_backlogged() and not self._thread_reader:
            # The frontend is slow (a UART with interrupts off): stop reading so the
            # host side sees backpressure instead of us buffering without bound.
            self._paused = True
            self.stop_reading()

    def _input_drained(self) -> None:
        if self._paused and not self._thread_reader and not self._input_backlogged():
            self._paused = False
            self.start_reading()

    def _on_eof(self) -> None:
        """The peer went away (EOF or error on input)."""

    def write(self, data: bytes) -> None:
        if self.closed or self.out_fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.out_fd, view)
            except BlockingIOError:
                return  # nobody is draining the other side: drop, like QEMU's pty
            except OSError:
                self._on_write_error()
                return
            view = view[n:]

    def _on_write_error(self) -> None:
        """The output side broke (EPIPE, EIO on a closed pty)."""

    def close(self) -> None:
        if not self.closed:
            self.stop_reading()
            super().close()
