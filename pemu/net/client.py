"""A network client is one end of a point-to-point link: a NIC or a backend.

QEMU's semantics, which guests and backends rely on:

* ``send(frame)`` hands an Ethernet frame to the peer.  If the peer cannot take it now
  (a NIC whose driver has posted no receive buffers), the frame waits in the peer's
  incoming queue instead of being lost; the peer calls ``flush_incoming`` when it can
  take frames again (the driver posted buffers), and the queue drains in order.
* The queue is bounded (``MAX_QUEUED`` frames, QEMU's figure): past it frames are
  dropped, as a real wire drops what a full NIC cannot take; TCP retransmits.
* A link that is down (either end's ``link_down``, set by QMP ``set_link``) drops
  frames in both directions.

Threads: a backend sends from its own thread, a NIC from the vCPU thread.  Each client
guards its incoming queue with ``self.lock``; a NIC uses its transport's lock, so the
device's own entry points (which already hold it) may flush without a second lock.
Nothing here blocks: ``receive`` must return at once.

A backend that can carry a ``virtio_net_hdr`` with each frame (TAP with
``vnet_hdr=on``: ``has_vnet_hdr()``) lets a virtio NIC hand the guest's offloads
through instead of completing checksums and segmenting in Python: the NIC then calls
``use_vnet_hdr`` and every frame on that link, both ways, starts with the 12-byte
header (``vnet_hdr_len``); ``set_offload`` tells the backend what the guest's driver
takes (so the host may hand it unchecksummed or GSO frames).

Several queues (``mq=on`` on a multi-queue TAP): each frame may name the queue it came
from or is meant for (``send(frame, queue)``; ``receive_queue`` gets it, by default
``receive`` ignores it).  A NIC maps it onto its queue pairs, TAP onto its descriptors;
single-queue clients see queue 0 and never need to know.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from pemu.net.ratelimit import RateLimitedWarning

MAX_QUEUED = 10000  # frames waiting for a slow receiver (QEMU's net queue length)


class NetClient:
    """Base of NICs and backends; subclasses override ``receive`` (and ``can_receive``)."""

    kind = "netdev"  # info network shows it; NICs say "nic"

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer: NetClient | None = None
        self.link_down = False
        self.lock: threading.RLock = threading.RLock()
        self._incoming: deque[tuple[bytes, int]] = deque()  # (frame, queue)
        self.dropped = 0  # frames dropped because the queue was full
        self._drop_warning: RateLimitedWarning | None = None
        # observers of every frame crossing this end's link, both ways (filter-dump)
        self.filters: list[Callable[[bytes], None]] = []
        self.vnet_hdr_len = 0  # bytes of virtio_net_hdr before each frame on this link
        # whether every frame this backend sends has correct checksums, because it built
        # them itself (slirp): a NIC may then tell the guest not to verify them
        self.checksums_valid = False

    # -- what subclasses provide -----------------------------------------------------
    def can_receive(self) -> bool:
        return True

    def receive(self, frame: bytes) -> bool:
        """Take one frame; False means "not now" and the frame is queued for later."""
        return True

    def receive_queue(self, frame: bytes, queue: int) -> bool:
        """``receive`` for a frame from (or for) ``queue`` of a multi-queue link."""
        return self.receive(frame)

    def queue_count(self) -> int:
        """How many queues this backend has (``queues=`` of TAP)."""
        return 1

    def link_status_changed(self) -> None:
        """``link_down`` changed (a NIC tells its driver)."""

    def drop(self, why: str) -> None:
        """Count a frame lost at this end and say so, at most once a second."""
        self.dropped += 1
        if self._drop_warning is None:
            self._drop_warning = RateLimitedWarning(f"pemu: {self.kind} {self.name}")
        self._drop_warning(f"dropped a frame: {why}")

    def peer_drained(self) -> None:
        """The peer emptied its incoming queue (a backend that stopped reading the host
        side because of that backlog may read again)."""

    def has_vnet_hdr(self) -> bool:
        """Whether this backend can carry a virtio_net_hdr with each frame."""
        return False

    def has_ufo(self) -> bool:
        """Whether this backend takes UDP fragmentation offload (with a vnet header)."""
        return False

    def set_offload(self, csum: bool, tso4: bool, tso6: bool, ecn: bool, ufo: bool) -> None:
        """What the guest's driver accepts in frames to it (vnet header links only)."""

    def describe(self) -> str:
        """The text after the name in ``info network``."""
        return ""

    def close(self) -> None:
        """Stop and release what the client holds (a backend's thread and sockets)."""

    # -- the link ---------------------------------------------------------------------
    def send(self, frame: bytes, queue: int = 0) -> None:
        """Hand ``frame`` to the peer (queued there if it cannot take it now)."""
        peer = self.peer
        if peer is None or self.link_down or peer.link_down:
            return
        if self.filters or peer.filters:
            plain = frame[self.vnet_hdr_len:]  # observers see the Ethernet frame alone
            for observe in self.filters + peer.filters:
                observe(plain)
        peer._deliver(frame, queue)

    def _deliver(self, frame: bytes, queue: int = 0) -> None:
        with self.lock:
            if not self._incoming and self.can_receive() and self.receive_queue(frame, queue):
                return
            if len(self._incoming) >= MAX_QUEUED:
                self.drop("its receiver is not taking frames (queue full)")
                return
            self._incoming.append((frame, queue))

    def flush_incoming(self) -> None:
        """Deliver queued frames while the receiver takes them (call when it can again)."""
        with self.lock:
            had = bool(self._incoming)
            while self._incoming and self.can_receive():
                if not self.receive_queue(*self._incoming[0]):
                    return
                self._incoming.popleft()
        if had and not self._incoming and self.peer is not None:
            self.peer.peer_drained()

    @property
    def queued(self) -> int:
        return len(self._incoming)

    def purge_incoming(self) -> None:
        with self.lock:
            self._incoming.clear()

    def set_link(self, up: bool) -> None:
        """QMP ``set_link``: QEMU sets both ends, so each side sees the change."""
        for client in (self, self.peer):
            if client is not None and client.link_down == up:
                client.link_down = not up
                if not up:
                    client.purge_incoming()
                client.link_status_changed()


def use_vnet_hdr(a: NetClient, b: NetClient, length: int) -> None:
    """From now on every frame between peers ``a`` and ``b`` starts with a
    ``length``-byte virtio_net_hdr (0: plain frames)."""
    a.vnet_hdr_len = b.vnet_hdr_len = length


def connect(a: NetClient, b: NetClient) -> None:
    """Make ``a`` and ``b`` peers."""
    a.peer = b
    b.peer = a
