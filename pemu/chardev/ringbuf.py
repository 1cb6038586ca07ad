"""The ``ringbuf`` backend (alias ``memory``): guest output kept in a ring in memory.

``-chardev ringbuf,id=ID[,size=N]`` keeps the last ``size`` bytes (a power of two,
default 64 KiB) the guest wrote; older bytes are overwritten.  QMP ``ringbuf-read``
takes bytes out (oldest first) and ``ringbuf-write`` sends bytes to the guest as if
typed on the line (pemu.monitor.chardev_commands).
"""

from __future__ import annotations

import threading

from pemu.chardev.backend import BackendOptions, QMPData, declare_backend
from pemu.chardev.base import Chardev, ChardevError
from pemu.qemuopts.keyval import OptionError, parse_size
from pemu.qom.registry import Property, TypeInfo

DEFAULT_SIZE = 64 * 1024


class RingbufChardev(Chardev):
    def __init__(self, size: int = DEFAULT_SIZE, id: str | None = None) -> None:
        if size <= 0 or size & (size - 1):
            raise ChardevError(f"size {size} must be a power of two")
        super().__init__(id)
        self.size = size
        self._ring = bytearray()  # never longer than size: the newest bytes
        self._lock = threading.Lock()  # guest output (vCPU) vs. QMP reads (monitor)

    def write(self, data: bytes) -> None:
        with self._lock:
            self._ring += data
            del self._ring[:max(0, len(self._ring) - self.size)]

    def read(self, count: int) -> bytes:
        """Take up to ``count`` of the oldest bytes out of the ring."""
        with self._lock:
            out = bytes(self._ring[:count])
            del self._ring[:count]
            return out

    def inject(self, data: bytes) -> None:
        """Host input for the frontend (QMP ringbuf-write)."""
        self._deliver(data)

    @property
    def count(self) -> int:
        return len(self._ring)

    def describe(self) -> str:
        return "memory"


def _open_ringbuf(options: BackendOptions) -> RingbufChardev:
    text = options.text("size") or str(DEFAULT_SIZE)
    try:
        size = parse_size(text)
    except (OptionError, ValueError):
        raise OptionError(f"{options.what}: size '{text}' is not a size") from None
    return RingbufChardev(size, options.id)


def _ringbuf_from_qmp(info: TypeInfo, data: QMPData) -> dict[str, str]:
    """QMP's ChardevRingbuf: an optional ``size``."""
    unknown = set(data) - {"size"}
    if unknown:
        raise OptionError(f"chardev backend '{info.name}' has no parameter "
                          f"'{sorted(unknown)[0]}'")
    return {"size": str(data["size"])} if "size" in data else {}


_SIZE = Property("size", "size", str(DEFAULT_SIZE), "bytes kept (a power of two)")
declare_backend("ringbuf", "guest output kept in memory (QMP ringbuf-read/-write)",
                _open_ringbuf, _SIZE, from_qmp=_ringbuf_from_qmp)
declare_backend("memory", "the old name of ringbuf", _open_ringbuf, _SIZE,
                from_qmp=_ringbuf_from_qmp)
