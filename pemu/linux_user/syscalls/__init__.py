"""Guest system calls: a registry filled by the per-area modules of this package.

A handler takes the calling ``GuestThread`` and the raw 64-bit argument registers
it declares, and returns the value for a0 (a negative errno on failure).  Handlers
may raise ``GuestFault`` (a bad guest pointer: the dispatcher returns -EFAULT) or
``OSError`` (its errno is returned).  ``NO_RESULT`` means "leave a0 alone"
(rt_sigreturn), ``RESTART`` means "re-execute the ecall unless a handler without
SA_RESTART runs first", ``RESTART_NOINTR`` "re-execute it after any handler".
"""

from __future__ import annotations

from . import (  # noqa: F401,E501,I001
    files,
    fsmeta,
    io_multiplex,
    memory,
    misc,
    posix_timers,
    proc,
    robust_list,
    signal_calls,
    signalfd,
    socket_messages,
    sockets,
    sync,
    time_calls,
)
from .registry import NO_RESULT, RESTART, RESTART_NOINTR, SYSCALLS, dispatch  # noqa: F401
