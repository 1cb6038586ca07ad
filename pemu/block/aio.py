"""Request queueing off the vCPU thread.

An :class:`AioContext` owns one worker thread that runs submitted block requests in
submission order and then calls the submitter's callback *on the worker thread*.
Devices use it so that a slow disk (or a throttled drive) never stalls the vCPU:
the vCPU thread queues the request and returns; the callback marks the request
complete (e.g. pushes the used ring entry and raises the interrupt under the
device's lock).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from pemu import threads

Callback = Callable[[Any, BaseException | None], None]


class AioContext:
    def __init__(self, name: str = "pemu-block-io") -> None:
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._closed = False
        self._thread = threads.start_daemon(self._run, name=name)

    def submit(self, fn: Callable[[], Any], callback: Callback | None = None) -> None:
        """Run ``fn()`` on the worker; then ``callback(result, None)`` or
        ``callback(None, exception)``."""
        if self._closed:
            raise RuntimeError("AioContext is closed")
        with self._idle:
            self._pending += 1
        self._queue.put((fn, callback))

    def drain(self) -> None:
        """Block until every submitted request has completed (its callback ran)."""
        with self._idle:
            while self._pending:
                self._idle.wait()

    def close(self) -> None:
        if self._closed:
            return
        self.drain()
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, callback = item
            try:
                result, exc = fn(), None
            except BaseException as e:  # noqa: BLE001 - handed to the callback
                result, exc = None, e
            try:
                if callback is not None:
                    callback(result, exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
