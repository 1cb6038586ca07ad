"""``-netdev hubport,id=ID,hubid=N[,netdev=BACKEND]``: QEMU's hub, a shared segment.

Every frame that enters one port of hub N leaves through all its other ports, as on
an Ethernet hub.  The legacy ``-net nic -net user`` options put everything on hub 0
(pemu/net/legacy.py).  A port's peer is a NIC, or with ``netdev=`` a backend.

Forwarding runs on the hub's own thread: a port only queues what it receives.  Two
NICs on one hub, each sending under its own transport lock from a different vCPU,
would otherwise take each other's locks in opposite orders.
"""

from __future__ import annotations

import threading
from collections import deque

from pemu import threads
from pemu.net.backend import NetdevOptions, declare_netdev
from pemu.net.client import MAX_QUEUED, NetClient
from pemu.qom.registry import Property


class Hub:
    def __init__(self, hub_id: int) -> None:
        self.id = hub_id
        self.ports: list[HubPort] = []
        self._frames: deque[tuple[HubPort, bytes]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add_port(self, name: str) -> HubPort:
        port = HubPort(name, self)
        self.ports.append(port)
        return port

    def carry(self, source: HubPort, frame: bytes) -> bool:
        with self._ready:
            if len(self._frames) >= MAX_QUEUED:
                return False
            self._frames.append((source, frame))
            if self._thread is None:
                self._thread = threads.start_daemon(self._run, name=f"pemu-hub{self.id}")
            self._ready.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._frames and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                source, frame = self._frames.popleft()
            for port in self.ports:
                if port is not source:
                    port.send(frame)

    def remove_port(self, port: HubPort) -> None:
        if port in self.ports:
            self.ports.remove(port)
        if not self.ports:
            with self._ready:
                self._stopping = True
                self._ready.notify()


class HubPort(NetClient):
    kind = "hubport"

    def __init__(self, name: str, hub: Hub) -> None:
        super().__init__(name)
        self.hub = hub

    def receive(self, frame: bytes) -> bool:
        if not self.hub.carry(self, frame):
            self.drop("the hub's queue is full")
        return True

    def describe(self) -> str:
        return f"hub={self.hub.id}"

    def close(self) -> None:
        self.hub.remove_port(self)


def _open(opts: NetdevOptions) -> HubPort:
    text = opts.text("hubid")
    if text is None:
        raise opts.error("Parameter 'hubid' is missing")
    if not text.isdigit():
        raise opts.error(f"Parameter 'hubid' expects a number (got '{text}')")
    network = opts.network
    port = network.hub(int(text)).add_port(opts.id)
    backend_id = opts.text("netdev")
    if backend_id is not None:
        backend = network.netdevs.get(backend_id)
        if backend is None:
            raise opts.error(f"netdev '{backend_id}' not found")
        if backend.peer is not None:
            raise opts.error(f"netdev '{backend_id}' is already in use")
        network.connect(port, backend)
    return port


declare_netdev(
    "hubport", "a port of a hub: frames in on one port go out of all the others", _open,
    Property("hubid", "str", None, "the hub's number"),
    Property("netdev", "str", None, "a backend to put on this port (else a NIC takes it)"),
)
