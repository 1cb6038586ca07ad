"""Asynchronous QMP events, stamped with the host time and sent to every QMP monitor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EventSink = Callable[[dict[str, object]], None]


def make_event(name: str, data: dict[str, object] | None = None,
               now: float | None = None) -> dict[str, object]:
    """An event message as QMP puts it on the wire (timestamp from the host clock)."""
    t = time.time() if now is None else now
    seconds = int(t)
    message: dict[str, object] = {
        "event": name,
        "timestamp": {"seconds": seconds, "microseconds": int((t - seconds) * 1_000_000)},
    }
    if data is not None:
        message["data"] = data
    return message


class EventBus:
    """Fan-out of machine events to the monitors connected right now.

    Machines call ``emit`` from any thread (vCPU, I/O, monitor); each subscriber
    (one QMP session) takes care of its own write locking.
    """

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []
        self._lock = threading.Lock()
        self.history: list[dict[str, object]] = []  # the last few, for HMP and tests
        self.history_limit = 64

    def subscribe(self, sink: EventSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def emit(self, name: str, data: dict[str, object] | None = None) -> None:
        message = make_event(name, data)
        with self._lock:
            sinks = list(self._sinks)
            self.history.append(message)
            del self.history[:-self.history_limit]
        for sink in sinks:
            sink(message)
