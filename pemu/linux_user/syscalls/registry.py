"""The syscall table and the dispatcher that calls handlers with error mapping."""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable

from ..syscall_numbers import GUEST_SYSCALL_NAMES, GUEST_SYSCALL_NUMBERS
from ..vmem import GuestFault

NO_RESULT = object()
RESTART = -512  # the kernel's ERESTARTSYS, never seen by the guest
# the kernel's ERESTARTNOINTR: the call runs again after any signal handler, whatever
# its SA_RESTART (FUTEX_LOCK_PI: a waiter interrupted must not return unlocked)
RESTART_NOINTR = -513

Handler = Callable[..., object]
# guest number -> (handler, number of argument registers it takes)
SYSCALLS: dict[int, tuple[Handler, int]] = {}


def syscall(name: str, nargs: int | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for the guest syscall ``name`` (asm-generic naming)."""
    nr = GUEST_SYSCALL_NUMBERS[name]

    def register(fn: Handler) -> Handler:
        count = nargs if nargs is not None else len(inspect.signature(fn).parameters) - 1
        SYSCALLS[nr] = (fn, count)
        return fn

    return register


def syscall_name(nr: int) -> str:
    return GUEST_SYSCALL_NAMES.get(nr, f"syscall_{nr}")


def dispatch(thread: object, nr: int, args: tuple[int, ...]) -> object:
    """Run one syscall; returns an int for a0, NO_RESULT or RESTART."""
    entry = SYSCALLS.get(nr)
    if entry is None:
        return -errno.ENOSYS
    fn, nargs = entry
    try:
        return fn(thread, *args[:nargs])
    except GuestFault:
        return -errno.EFAULT
    except OSError as e:
        if e.errno == errno.EINTR:
            return RESTART
        return -(e.errno or errno.EIO)
    except (OverflowError, ValueError):
        return -errno.EINVAL
