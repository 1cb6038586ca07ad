"""Backends with no input side worth a thread: null and file."""

from __future__ import annotations

import os

from pemu.chardev.base import Chardev, ChardevError


class NullChardev(Chardev):
    """Discards output, never produces input (``-serial null``)."""

    def write(self, data: bytes) -> None:
        pass


class FileChardev(Chardev):
    """Appends or truncates-and-writes guest output to a host file (``file:PATH``)."""

    def __init__(self, path: str, append: bool = False, id: str | None = None) -> None:
        super().__init__(id)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            self._fd = os.open(path, flags, 0o666)
        except OSError as e:
            raise ChardevError(f"could not open '{path}': {e.strerror}") from None
        self.path = path

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except OSError:
                return  # disk full or similar: drop, as a real line would
            view = view[n:]

    def close(self) -> None:
        if not self.closed:
            super().close()
            os.close(self._fd)
