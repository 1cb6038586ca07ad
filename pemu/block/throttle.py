"""I/O throttling: iops and bps limits (the ``throttling.*`` drive options).

One leaky bucket per configured limit.  A request first waits until every bucket it
counts against has room, then fills them; the wait happens on the drive's I/O
thread when requests are submitted with BlockBackend.submit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pemu.qemuopts.keyval import OptionError, parse_size

from .errors import BlockError

_KINDS = ("iops-total", "iops-read", "iops-write", "bps-total", "bps-read", "bps-write")


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = 0.0

    def leak(self, dt: float) -> None:
        self.level = max(0.0, self.level - self.rate * dt)

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` fits under the burst."""
        over = self.level + cost - max(self.burst, cost)
        return max(0.0, over / self.rate)


class Throttle:
    def __init__(self, limits: dict[str, tuple[float, float]],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.buckets = {k: _Bucket(rate, burst) for k, (rate, burst) in limits.items()}
        self.clock = clock
        self.sleep = sleep
        self.last = clock()
        self.lock = threading.Lock()

    @classmethod
    def from_options(cls, opts: dict[str, str], **kw) -> Throttle:
        limits: dict[str, tuple[float, float]] = {}
        for key in opts:
            name = key[len("throttling."):]
            base = name[:-4] if name.endswith("-max") else name
            if base not in _KINDS and name not in ("iops-size", "group") and \
                    not name.endswith("-max-length"):
                raise BlockError(f"Invalid throttling option '{key}'")
        for kind in _KINDS:
            text = opts.get(f"throttling.{kind}")
            if text is None:
                continue
            try:
                rate = float(parse_size(text)) if kind.startswith("bps") else float(text)
                burst = opts.get(f"throttling.{kind}-max")
                burst_v = float(parse_size(burst)) if burst else rate
            except (OptionError, ValueError):
                raise BlockError(f"throttling.{kind}: '{text}' is not a number") from None
            if rate <= 0:
                raise BlockError(f"throttling.{kind} must be positive")
            limits[kind] = (rate, max(burst_v, rate / 10))
        return cls(limits, **kw)

    def account(self, is_write: bool, nbytes: int) -> None:
        """Block (sleep) until this request may proceed, then charge it."""
        direction = "write" if is_write else "read"
        costs = {"iops-total": 1, f"iops-{direction}": 1, "bps-total": nbytes,
                 f"bps-{direction}": nbytes}
        with self.lock:
            while True:
                now = self.clock()
                for b in self.buckets.values():
                    b.leak(now - self.last)
                self.last = now
                wait = max((self.buckets[k].wait_for(c) for k, c in costs.items()
                            if k in self.buckets), default=0.0)
                if wait <= 0:
                    break
                self.sleep(wait)
            for k, c in costs.items():
                if k in self.buckets:
                    self.buckets[k].level += c
