"""Ending the process at once after a termination signal, as QEMU does.

By the time the signal handler's stop has unwound the machine, the devices, drives and
chardevs are closed.  What is left is the interpreter's own teardown: joining helper
threads and freeing every object of a guest's run (the translated blocks and their
tables, page snapshots), which took 5-8 s for the lean Linux guest on a loaded host.
libvirt and test harnesses send SIGTERM and expect the process gone within seconds,
so after a signal pemu runs its exit handlers (the translation cache saves itself
within the budget the handler set), flushes its standard streams and leaves.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn


def exit_promptly(status: int) -> NoReturn:
    """Run the atexit handlers, flush stdout/stderr and end the process now."""
    atexit._run_exitfuncs()  # noqa: SLF001 - the documented behaviour of normal exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to save
            stream.flush()
    os._exit(status)


__all__ = ["exit_promptly"]
