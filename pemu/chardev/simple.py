"""Backends with no input side worth a thread: null and file (declared at the end)."""

from __future__ import annotations

import os

from pemu.chardev.backend import BackendOptions, QMPData, declare_backend
from pemu.chardev.base import Chardev, ChardevError
from pemu.fdpass import open_path
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import Property, TypeInfo


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
            self._fd = open_path(path, flags, 0o666)  # /dev/fdset/N too
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


def _open_file(options: BackendOptions) -> FileChardev:
    return FileChardev(options.required("path"), options.flag("append"), options.id)


def _file_from_qmp(info: TypeInfo, data: QMPData) -> dict[str, str]:
    """QMP's ChardevFile: ``out`` is the path (``in`` is not supported)."""
    out = data.get("out")
    if not isinstance(out, str):
        raise OptionError("Parameter 'backend.data.out' is missing")
    return {"path": out, "append": "on" if data.get("append") else "off"}


declare_backend("null", "discards output, never gives input",
                lambda options: NullChardev(options.id))
declare_backend("file", "writes output to a host file", _open_file,
                Property("path", "str", description="the file (created if missing)"),
                Property("append", "bool", "off", "append instead of truncating"),
                from_qmp=_file_from_qmp)
