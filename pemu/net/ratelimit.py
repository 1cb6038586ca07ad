"""A warning that a guest (or a host peer) can trigger at will must not flood stderr
or slow the emulator: at most one line a second, with a count of what was held back."""

from __future__ import annotations

import sys
import time


class RateLimitedWarning:
    """At most one line a second on stderr; the lines in between are counted."""

    def __init__(self, prefix: str, interval: float = 1.0) -> None:
        self.prefix = prefix
        self.interval = interval
        self.last = -interval
        self.suppressed = 0
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more suppressed)" if self.suppressed else ""
        print(f"{self.prefix}: {message}{more}", file=sys.stderr)
        self.last = now
        self.suppressed = 0
