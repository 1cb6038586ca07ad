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

import select
import sys
import threading
import traceback
from collections import deque

from pemu import threads
from pemu.net.client import MAX_QUEUED, NetClient
from pemu.net.wakeup import Wakeup

RX_BACKLOG = 256  # frames waiting in the NIC before the backend stops reading
IDLE_POLL_MS = 1000


class PollingBackend(NetClient):
    """Subclasses provide ``wanted()`` (fd -> poll events), ``ready(fd, revents)`` and
    ``transmit()`` (write ``self.tx`` out), all called on the backend's thread."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.tx: deque = deque()  # frames from the guest, for the host side
        self._stopping = False
        self.wakeup = Wakeup()
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
        return self.queue_tx(frame)

    def queue_tx(self, item: object) -> bool:
        """Queue what ``transmit`` writes out (a frame, or what a subclass needs)."""
        if len(self.tx) < MAX_QUEUED:
            self.tx.append(item)
            self.wake()
        else:
            self.drop("the host side is not keeping up with the guest (queue full)")
        return True

    def wake(self) -> None:
        self.wakeup.wake()

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
        self.wakeup.going_to_sleep()  # before anything that decides how long to sleep
        poller = select.poll()
        for fd, events in self.wanted().items():
            poller.register(fd, events)
        poller.register(self.wakeup.fd, select.POLLIN)
        events = poller.poll(0 if self.tx else self.timeout_ms())
        self.wakeup.woke(next((ev for fd, ev in events if fd == self.wakeup.fd), 0))
        for fd, revents in events:
            if fd != self.wakeup.fd and not self._stopping:
                self.ready(fd, revents)

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.wakeup.wake(force=True)  # the loop tests _stopping only at its top
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.release()
        self.wakeup.close()
