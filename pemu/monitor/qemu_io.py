"""HMP ``qemu-io DEVICE "COMMAND"``: I/O on a running drive from the monitor, as QEMU's
(its tests use it to write while a block job runs).  The request goes through the
drive's BlockBackend, the way the guest's own requests go (accounting, a mirror).

  write [-P PATTERN] OFFSET LENGTH   fill with the byte PATTERN (default 0xcd)
  read [-P PATTERN] OFFSET LENGTH    read; with -P, check every byte is PATTERN
  flush
Sizes take QEMU's suffixes (k, M, G).
"""

from __future__ import annotations

import shlex

from pemu.block.errors import BlockError
from pemu.monitor.errors import QMPError

_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(text: str) -> int:
    number, unit = text.rstrip("kKmMgGbB"), text[len(text.rstrip("kKmMgGbB")):].lower()
    try:
        return int(number, 0) * _SUFFIX[unit]
    except (ValueError, KeyError):
        raise QMPError(f"qemu-io: invalid size '{text}'") from None


def run(machine, arg: str) -> str:  # noqa: ANN001 - MonitoredMachine
    words = shlex.split(arg)
    if len(words) != 2:
        raise QMPError('usage: qemu-io DEVICE "COMMAND"')
    drive = machine.block.find(device=words[0])
    argv = words[1].split()
    if not argv:
        raise QMPError("qemu-io: no command")
    op, rest = argv[0], argv[1:]
    pattern = 0xCD
    if rest[:1] == ["-P"] and len(rest) > 1:
        pattern, rest = int(rest[1], 0) & 0xFF, rest[2:]
    backend = drive.backend
    try:
        if op == "flush" and not rest:
            backend.flush()
            return ""
        if op not in ("write", "read") or len(rest) != 2:
            raise QMPError(f"qemu-io: unsupported command '{words[1]}'")
        offset, length = _size(rest[0]), _size(rest[1])
        if op == "write":
            backend.pwrite(offset, bytes([pattern]) * length)
            return f"wrote {length}/{length} bytes at offset {offset}\n"
        data = backend.pread(offset, length)
        if "-P" in argv and data != bytes([pattern]) * length:
            bad = next(i for i, b in enumerate(data) if b != pattern)
            return f"Pattern verification failed at offset {offset + bad}\n"
        return f"read {length}/{length} bytes at offset {offset}\n"
    except BlockError as e:
        return f"{op} failed: {e}\n"
