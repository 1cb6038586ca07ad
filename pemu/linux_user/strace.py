"""-strace: one line per guest system call, in qemu's style (``PID name(args) = ret``)."""

from __future__ import annotations

import os

from .syscalls.registry import NO_RESULT, RESTART, RESTART_NOINTR, SYSCALLS, syscall_name


class Strace:
    def __init__(self, fd: int = 2) -> None:
        self.fd = fd

    def _emit(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            pass

    def before(self, pid: int, nr: int, args: tuple[int, ...]) -> None:
        entry = SYSCALLS.get(nr)
        nargs = entry[1] if entry else 6
        shown = ",".join(_fmt(a) for a in args[:nargs])
        self._emit(f"{pid} {syscall_name(nr)}({shown})")

    def after(self, nr: int, ret: object) -> None:
        if ret is NO_RESULT:
            self._emit("\n")
        elif ret in (RESTART, RESTART_NOINTR):
            self._emit(" = ? (interrupted, restarting)\n")
        elif isinstance(ret, int) and -4096 < ret < 0:
            err = -ret
            note = " (unimplemented)" if nr not in SYSCALLS else ""
            self._emit(f" = -1 errno={err} ({os.strerror(err)}){note}\n")
        elif isinstance(ret, int) and ret > 0xFFFF:
            self._emit(f" = 0x{ret:x}\n")
        else:
            self._emit(f" = {ret}\n")

    def flush(self) -> None:
        """Lines are written unbuffered; kept so callers need not care."""


def _fmt(value: int) -> str:
    if value >= 1 << 63:
        return str(value - (1 << 64))
    return f"0x{value:x}" if value > 0xFFFF else str(value)
