"""The process around the machine, as QEMU sets it up: ``-daemonize``, ``-pidfile``,
``-msg timestamp=on`` and ``-name ...,debug-threads=on``.

``-daemonize`` is how libvirt starts an emulator to probe it: it runs the command and
waits for it to *return*, then reads the pid file and connects to the QMP socket.  So,
as in QEMU, the parent process stays until the child has finished its start-up (the
monitor sockets listen) and then exits 0; if the start-up fails the parent exits with
the child's status, and the child's error, still on the inherited stderr, is what the
caller reads.  The child runs on in its own session with stdio on /dev/null.
"""

from __future__ import annotations

import atexit
import datetime
import fcntl
import os
import sys
from typing import TextIO

from pemu import threads
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError

_READY = b"\0"
_ready_pipe: list[int] = []  # the write end while a -daemonize start-up is under way


class StampedStream:
    """stderr with QEMU's ``-msg`` prefixes: an ISO 8601 UTC time and/or the guest
    name at the start of every line."""

    def __init__(self, stream: TextIO, timestamp: bool, guest_name: str | None) -> None:
        self._stream = stream
        self._timestamp = timestamp
        self._guest_name = guest_name
        self._line_start = True

    def _prefix(self) -> str:
        parts = []
        if self._timestamp:
            now = datetime.datetime.now(datetime.UTC)
            parts.append(now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        if self._guest_name:
            parts.append(self._guest_name)
        return "".join(f"{p} " for p in parts)

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._line_start:
                out.append(self._prefix())
            out.append(piece)
            self._line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def __getattr__(self, name: str) -> object:  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


def check_daemonize(cfg: SystemConfig) -> None:
    """QEMU's refusals: nothing may need the terminal the daemon leaves behind."""
    if not cfg.daemonize:
        return
    if cfg.nographic and not cfg.nodefaults:
        raise OptionError("-nographic cannot be used with -daemonize")
    specs = [*cfg.serial, *cfg.monitor, *cfg.qmp]
    specs += [c.get("backend", "") for c in cfg.chardevs]
    if any(s.split(":", 1)[-1] == "stdio" or s == "stdio" for s in specs):
        raise OptionError("cannot use stdio with -daemonize")


def _write_pidfile(path: str) -> None:
    """QEMU's pid file: locked while pemu runs (a second one refuses), removed at exit."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise OptionError(f"cannot create PID file: {e.strerror}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OptionError(f"cannot create PID file: Cannot lock pid file '{path}': "
                          "another process holds it") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() == pid:  # not in a child that inherited the handler
            try:
                os.unlink(path)
            except OSError:
                pass

    atexit.register(remove)  # fd stays open: the lock lives as long as pemu


def _fork_daemon() -> None:
    """Fork; the parent waits for ``startup_done`` or the child's exit, then exits."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            ready = pipe.read(1) == _READY
        if ready:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code > 0 else 1)
    os.close(read_end)
    os.setsid()
    os.set_inheritable(write_end, False)
    _ready_pipe.append(write_end)


def setup_process(cfg: SystemConfig) -> None:
    """Before the machine is built: fork for -daemonize, write -pidfile, prefix stderr
    for -msg, name host threads for debug-threads=on."""
    check_daemonize(cfg)
    if cfg.daemonize:
        _fork_daemon()
    if cfg.pidfile:
        _write_pidfile(cfg.pidfile)
    if cfg.msg_timestamp or cfg.msg_guest_name:
        sys.stderr = StampedStream(sys.stderr, cfg.msg_timestamp,
                                   cfg.name if cfg.msg_guest_name else None)
    threads.name_host_threads = cfg.debug_threads


def startup_done() -> None:
    """The machine is built and the monitors listen: a -daemonize parent may exit now
    (QEMU's os_setup_post).  The daemon leaves the caller's directory and terminal."""
    if not _ready_pipe:
        return
    write_end = _ready_pipe.pop()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.write(write_end, _READY)
    os.close(write_end)
