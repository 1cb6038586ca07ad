"""``-d guest_errors``: report what a guest did wrong without stopping it."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class GuestErrorLog:
    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            self.count += 1
            if self.enabled:
                self.stream.write(f"pemu: guest error: {message}\n")
                self.stream.flush()
