"""Opt-in event counters for finding where system mode loses time.

``PEMU_COUNTERS=1`` in the environment turns them on; pemu then prints, when the
process exits, every counter with its total and its rate per second of run time, on
stderr.  What is counted (names are ``group:detail``):

* ``exit:*``      why generated code came back to Python (miss, request, exception)
* ``request:*``   who asked the vCPU loop to look again (the calling function)
* ``helper:*``    helper calls from generated code, by helper (CSRs by register)
* ``sysreg:*``    AArch64 MRS/MSR that took the helper, by register
* ``tlb:*``       TLB flushes (all, by ASID, by page) and address-space switches
* ``tb:*``        translations: new code, the same code again under other flags, blocks
                  over two pages (cached in jump caches only), lookups of cached blocks
* ``trap:*``      exceptions and interrupts taken, by cause

``PEMU_COUNTERS=threads`` keys every counter by the host thread that counted it as
well (``pemu-vcpu1 helper:...``; hart 0 runs on ``MainThread``): where an SMP guest's
extra exits come from, hart by hart.

When off, each counting site costs one test of a module global (``ENABLED``), and
the helper-call counting wrapper is not even installed: this is a debugging aid that
must not slow the normal run.  Counting is for one thread's events; counts from other
threads may be lost in a race, which does not matter for rates.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import Counter

ENABLED = os.environ.get("PEMU_COUNTERS", "") not in ("", "0")
PER_THREAD = os.environ.get("PEMU_COUNTERS", "") == "threads"


class _ThreadCounter(Counter):
    """A Counter whose keys carry the counting thread's name (PEMU_COUNTERS=threads):
    ``COUNTS[name] += n`` at every counting site, unchanged."""

    def __getitem__(self, name: str) -> int:
        return super().__getitem__(f"{threading.current_thread().name} {name}")

    def __setitem__(self, name: str, n: int) -> None:
        super().__setitem__(f"{threading.current_thread().name} {name}", n)


COUNTS: Counter[str] = _ThreadCounter() if PER_THREAD else Counter()
_START = time.monotonic()


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name`` (callers test ``ENABLED`` first on hot paths)."""
    COUNTS[name] += n


def caller_name(depth: int = 2) -> str:
    """The function that called the caller (for ``request:*``: who asked)."""
    frame = sys._getframe(depth)
    return frame.f_code.co_name


def report(seconds: float | None = None) -> str:
    """Every counter, largest first: total and per second of ``seconds`` (default:
    since the process started)."""
    if seconds is None:
        seconds = time.monotonic() - _START
    seconds = max(seconds, 1e-9)
    lines = [f"pemu counters over {seconds:.1f} s (total, per second):"]
    for name, n in sorted(COUNTS.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name:40} {n:12d} {n / seconds:12.0f}/s")
    return "\n".join(lines)


def _report_at_exit() -> None:
    if COUNTS:
        print(report(), file=sys.stderr)


if ENABLED:
    atexit.register(_report_at_exit)


__all__ = ["COUNTS", "ENABLED", "caller_name", "count", "report"]
