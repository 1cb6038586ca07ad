"""The fd sets and named fds of one process, and opening ``/dev/fdset/S`` paths."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from dataclasses import dataclass, field

from pemu.fdpass.handover import take_file
from pemu.qemuopts.keyval import OptionError

FDSET_PREFIX = "/dev/fdset/"
_ADD_FD_KEYS = {"fd", "set", "opaque"}


class FdPassError(OptionError):
    """A bad fd, set or name (a clean message)."""


@dataclass
class FdEntry:
    fd: int
    opaque: str | None = None


@dataclass
class FdSet:
    id: int
    fds: list[FdEntry] = field(default_factory=list)


def _check_fd(fd: int) -> None:
    if fd <= 2:
        raise FdPassError(f"fd {fd}: cannot be a standard I/O stream")
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        raise FdPassError(f"fd {fd}: is not a valid open file descriptor") from None


class FdSets:
    def __init__(self) -> None:
        self._sets: dict[int, FdSet] = {}
        self._named: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- fd sets --------------------------------------------------------------------
    def add_fd(self, fd: int, set_id: int | None = None, opaque: str | None = None
               ) -> tuple[int, int]:
        """Adopt ``fd`` (it is ours to close from now on); returns (set id, fd)."""
        _check_fd(fd)
        with self._lock:
            if any(e.fd == fd for s in self._sets.values() for e in s.fds):
                raise FdPassError(f"fd {fd}: is already in an fd set")
            if set_id is None:
                set_id = max(self._sets, default=-1) + 1
            if set_id < 0:
                raise FdPassError(f"fdset-id {set_id}: must not be negative")
            fdset = self._sets.setdefault(set_id, FdSet(set_id))
            os.set_inheritable(fd, False)
            fdset.fds.append(FdEntry(fd, opaque))
        return set_id, fd

    def remove_fd(self, set_id: int, fd: int | None = None) -> None:
        with self._lock:
            fdset = self._sets.get(set_id)
            entries = [] if fdset is None else \
                [e for e in fdset.fds if fd is None or e.fd == fd]
            if not entries:
                what = f"fdset-id:{set_id}" + ("" if fd is None else f", fd:{fd}")
                raise FdPassError(f"File descriptor named '{what}' not found")
            for entry in entries:
                fdset.fds.remove(entry)
                with contextlib.suppress(OSError):
                    os.close(entry.fd)
            if not fdset.fds:
                del self._sets[set_id]

    def query(self) -> list[dict]:
        with self._lock:
            return [{"fdset-id": s.id,
                     "fds": [{"fd": e.fd, **({"opaque": e.opaque} if e.opaque else {})}
                             for e in s.fds]}
                    for s in sorted(self._sets.values(), key=lambda s: s.id)]

    def dup_from_set(self, set_id: int, flags: int) -> int:
        """A new fd for one of the set's fds whose access mode is ``flags``'s."""
        want = flags & os.O_ACCMODE
        with self._lock:
            fdset = self._sets.get(set_id)
            if fdset is None:
                raise FdPassError(f"{FDSET_PREFIX}{set_id}: no such fd set")
            for entry in fdset.fds:
                if fcntl.fcntl(entry.fd, fcntl.F_GETFL) & os.O_ACCMODE == want:
                    return fcntl.fcntl(entry.fd, fcntl.F_DUPFD_CLOEXEC, 0)
        mode = {os.O_RDONLY: "read-only", os.O_WRONLY: "write-only",
                os.O_RDWR: "read-write"}[want]
        raise FdPassError(f"{FDSET_PREFIX}{set_id}: no {mode} fd in the set")

    # -- named fds (getfd) ------------------------------------------------------------
    def set_named(self, name: str, fd: int) -> None:
        if not name or name[0].isdigit():
            raise FdPassError(f"fdname '{name}': must not be empty or start with a digit")
        os.set_inheritable(fd, False)
        with self._lock:
            old = self._named.pop(name, None)
            self._named[name] = fd
        if old is not None:
            os.close(old)  # getfd with a name in use replaces it, as QEMU's

    def close_named(self, name: str) -> None:
        with self._lock:
            fd = self._named.pop(name, None)
        if fd is None:
            raise FdPassError(f"File descriptor named '{name}' not found")
        os.close(fd)

    def take_named(self, name: str) -> int:
        """Hand a named fd to its user (who then owns it)."""
        with self._lock:
            fd = self._named.pop(name, None)
        if fd is None:
            raise FdPassError(f"File descriptor named '{name}' has not been found")
        return fd

    def close_all(self) -> None:
        with self._lock:
            fds = [e.fd for s in self._sets.values() for e in s.fds] + list(self._named.values())
            self._sets.clear()
            self._named.clear()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


_fd_sets = FdSets()


def fd_sets() -> FdSets:
    return _fd_sets


def _set_id(path: str) -> int | None:
    if not path.startswith(FDSET_PREFIX):
        return None
    tail = path[len(FDSET_PREFIX):]
    if not tail.isdigit():
        raise FdPassError(f"{path}: expected {FDSET_PREFIX}N")
    return int(tail)


def open_path(path: str, flags: int, mode: int = 0o666) -> int:
    """``os.open``, with ``/dev/fdset/S`` resolved to a dup of a passed-in fd (flags
    other than the access mode, O_CREAT say, do not apply to an fd already open)."""
    set_id = _set_id(path)
    if set_id is None:
        handed = take_file(path, flags)  # a live update's: the file may be gone by now
        return handed if handed is not None else os.open(path, flags, mode)
    try:
        return fd_sets().dup_from_set(set_id, flags)
    except FdPassError as e:
        raise PermissionError(13, str(e), path) from None


def fd_param(text: str) -> int:
    """``fd=N`` (an inherited fd) or ``fd=NAME`` (one received with getfd)."""
    if text.isdigit():
        fd = int(text)
        _check_fd(fd)
        return fd
    return fd_sets().take_named(text)


def parse_add_fd(opts: dict[str, str]) -> None:
    """``-add-fd fd=N,set=S[,opaque=TEXT]``"""
    unknown = set(opts) - _ADD_FD_KEYS
    if unknown:
        raise FdPassError(f"-add-fd: invalid parameter '{sorted(unknown)[0]}'")
    for key in ("fd", "set"):
        if key not in opts:
            raise FdPassError(f"-add-fd: parameter '{key}' is missing")
        if not opts[key].isdigit():
            raise FdPassError(f"-add-fd: {key}={opts[key]}: expected a number")
    fd_sets().add_fd(int(opts["fd"]), int(opts["set"]), opts.get("opaque"))
