"""A backend that runs its own poll loop on a thread: stream, dgram, socket, tap.

The vCPU thread must never wait for the network, so ``receive`` (a frame from the
guest) only appends to a queue and wakes the backend's thread through a pipe; that
thread writes the queued frames to the host side and reads frames from it, which it
hands to the NIC with ``send``.

Back-pressure towards the host side: when the NIC cannot take frames (no receive
buffers posted) they wait in the NIC's incoming queue.  Once ``RX_BACKLOG`` frames
wait there the backend stops reading its descriptor, so a fast sender is slowed by
the kernel's socket buffer (TCP flow control, or drops for datagrams) instead of
filling pemu's memory; the NIC's ``peer_drained`` wakes the loop when the guest has
caught up.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import traceback
from collections import deque

from pemu import threads
from pemu.net.client import MAX_QUEUED, NetClient

RX_BACKLOG = 256  # frames waiting in the NIC before the backend stops reading
IDLE_POLL_MS = 1000


class PollingBackend(NetClient):
    """Subclasses provide ``wanted()`` (fd -> poll events), ``ready(fd, revents)`` and
    ``transmit()`` (write ``self.tx`` out), all called on the backend's thread."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.tx: deque[bytes] = deque()  # frames from the guest, for the host side
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threads.start_daemon(self._run, name=f"pemu-net-{self.name}")

    # -- what subclasses provide (backend thread) --------------------------------------
    def wanted(self) -> dict[int, int]:
        return {}

    def ready(self, fd: int, revents: int) -> None:
        """``fd`` has ``revents``."""

    def transmit(self) -> None:
        """Write the frames queued in ``self.tx`` to the host side."""
        self.tx.clear()

    def timeout_ms(self) -> int:
        return IDLE_POLL_MS

    def release(self) -> None:
        """Close the subclass's descriptors (after the thread stopped)."""

    # -- the guest's frames (vCPU thread) ---------------------------------------------
    def receive(self, frame: bytes) -> bool:
        if len(self.tx) < MAX_QUEUED:
            self.tx.append(frame)
            self.wake()
        else:
            self.drop("the host side is not keeping up with the guest (queue full)")
        return True

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # a wake-up is already pending (pipe full) or we are closing

    def peer_drained(self) -> None:
        self.wake()  # the NIC took its backlog: read the host side again

    def peer_backlogged(self) -> bool:
        peer = self.peer
        return peer is not None and peer.queued >= RX_BACKLOG

    # -- the loop (backend thread) ----------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping:
                self._iterate()
        except Exception:  # noqa: BLE001 - the guest keeps running without this link
            print(f"pemu: -netdev {self.kind},id={self.name}: the backend thread failed:",
                  file=sys.stderr)
            traceback.print_exc()

    def _iterate(self) -> None:
        if self.tx:
            self.transmit()
        poller = select.poll()
        for fd, events in self.wanted().items():
            poller.register(fd, events)
        poller.register(self._wake_r, select.POLLIN)
        for fd, revents in poller.poll(self.timeout_ms()):
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except OSError:
                    pass
            elif not self._stopping:
                self.ready(fd, revents)

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.release()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
