"""QMP add-fd, remove-fd, query-fdsets, getfd, closefd (pemu.fdpass holds the fds).

The fd itself travels with the command on the QMP UNIX socket (SCM_RIGHTS); the
listener keeps it on the session (``session.passed_fds``) until the command takes it.
"""

from __future__ import annotations

import os

from pemu.fdpass import FdPassError, fd_sets
from pemu.monitor.errors import QMPError


def _take_passed_fd(ctx) -> int:
    passed = getattr(ctx.session, "passed_fds", None)
    fd = passed.take() if passed is not None else None
    if fd is None:
        raise QMPError("No file descriptor supplied via SCM_RIGHTS")
    return fd


def _fd_error(e: FdPassError) -> QMPError:
    return QMPError(str(e))


def register(schema) -> None:
    s, command = schema, schema.command
    s.struct("AddfdInfo", {"fdset-id": "int", "fd": "int"})
    s.struct("FdsetFdInfo", {"fd": "int", "*opaque": "str"})
    s.struct("FdsetInfo", {"fdset-id": "int", "fds": "[FdsetFdInfo]"})

    @command("add-fd", {"*fdset-id": "int", "*opaque": "str"}, "AddfdInfo")
    def add_fd(ctx, fdset_id: int | None = None, opaque: str | None = None) -> dict:
        fd = _take_passed_fd(ctx)
        try:
            set_id, fd = fd_sets().add_fd(fd, fdset_id, opaque)
        except FdPassError as e:
            os.close(fd)
            raise _fd_error(e) from None
        return {"fdset-id": set_id, "fd": fd}

    @command("remove-fd", {"fdset-id": "int", "*fd": "int"})
    def remove_fd(ctx, fdset_id: int, fd: int | None = None) -> None:
        try:
            fd_sets().remove_fd(fdset_id, fd)
        except FdPassError as e:
            raise _fd_error(e) from None

    @command("query-fdsets", returns="[FdsetInfo]")
    def query_fdsets(ctx) -> list:
        return fd_sets().query()

    @command("getfd", {"fdname": "str"})
    def getfd(ctx, fdname: str) -> None:
        fd = _take_passed_fd(ctx)
        try:
            fd_sets().set_named(fdname, fd)
        except FdPassError as e:
            os.close(fd)
            raise _fd_error(e) from None

    @command("closefd", {"fdname": "str"})
    def closefd(ctx, fdname: str) -> None:
        try:
            fd_sets().close_named(fdname)
        except FdPassError as e:
            raise _fd_error(e) from None
