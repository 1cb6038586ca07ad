"""The machine's network: its netdev backends by id, the NICs peered with them, and
what the monitor does to them (``set_link``, ``netdev_add``/``netdev_del``,
``info network``, ``hostfwd_add``/``hostfwd_remove``)."""

from __future__ import annotations

from pemu.net.backend import NetdevOptions, factory_of, netdev_type
from pemu.net.client import NetClient, connect
from pemu.net.hub import Hub
from pemu.net.options import NetdevSpec, parse_netdev
from pemu.qemuopts.keyval import OptionError


class NetworkError(ValueError):
    """A monitor request that names nothing or cannot be done; the message is QEMU's."""


class Network:
    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.netdevs: dict[str, NetClient] = {}
        self.nics: dict[str, NetClient] = {}
        self.hubs: dict[int, Hub] = {}  # -netdev hubport, -net (hub 0)
        self.closers: list = []  # what else to close at exit (filter-dump's files)
        self.chardevs = None  # the machine's ChardevRegistry (guestfwd=...-DEV opens one)

    # -- backends ---------------------------------------------------------------------
    def add(self, spec: NetdevSpec) -> NetClient:
        if spec.id in self.netdevs:
            raise OptionError(f"{spec.what}: Duplicate ID '{spec.id}' for netdev")
        info = netdev_type(spec.type, spec.what)
        client = factory_of(info)(NetdevOptions(info, list(spec.items), spec.what, self))
        self.netdevs[spec.id] = client
        return client

    def add_text(self, text: str) -> NetClient:
        """QMP ``netdev_add`` / HMP ``netdev_add``: the ``-netdev`` syntax."""
        return self.add(parse_netdev(text, self.prog))

    def remove(self, netdev_id: str) -> None:
        client = self.netdevs.get(netdev_id)
        if client is None:
            raise NetworkError(f"Device '{netdev_id}' not found")
        if client.peer is not None:
            # QEMU unplugs the peer NIC's backend; pemu's NICs cannot run without one
            raise NetworkError(f"netdev '{netdev_id}' is in use by a NIC "
                               "(device_del of the NIC is not supported)")
        del self.netdevs[netdev_id]
        client.close()

    def take(self, netdev_id: str | None, driver: str) -> NetClient:
        """The backend a NIC's ``netdev=`` names, for that NIC alone."""
        if not netdev_id:
            raise OptionError(f"{self.prog}: -device {driver}: needs netdev=ID")
        client = self.netdevs.get(netdev_id)
        if client is None:
            raise OptionError(f"{self.prog}: -device {driver},netdev={netdev_id}: Property "
                              f"'{driver}.netdev' can't find value '{netdev_id}'")
        if client.peer is not None:
            raise OptionError(f"{self.prog}: -device {driver},netdev={netdev_id}: Property "
                              f"'{driver}.netdev' can't take value '{netdev_id}', it's in use")
        return client

    def attach(self, nic: NetClient, backend: NetClient) -> None:
        self.nics[nic.name] = nic
        connect(nic, backend)

    def connect(self, a: NetClient, b: NetClient) -> None:
        """Peer two backends (a hub port and the backend on it)."""
        connect(a, b)

    def hub(self, hub_id: int) -> Hub:
        if hub_id not in self.hubs:
            self.hubs[hub_id] = Hub(hub_id)
        return self.hubs[hub_id]

    def unpeered(self) -> list[str]:
        """Backends no NIC uses (QEMU warns "netdev X has no peer")."""
        return [n for n, c in self.netdevs.items() if c.peer is None]

    # -- monitor ----------------------------------------------------------------------
    def find(self, name: str) -> NetClient:
        client = self.nics.get(name) or self.netdevs.get(name)
        if client is None:
            raise NetworkError(f"Device '{name}' not found")
        return client

    def set_link(self, name: str, up: bool) -> None:
        self.find(name).set_link(up)

    def user_backend(self, netdev_id: str | None):
        """The ``user`` backend HMP's hostfwd commands act on (the only one if no id)."""
        users = {n: c for n, c in self.netdevs.items() if c.kind == "user"}
        if netdev_id is None:
            if len(users) != 1:
                raise NetworkError("give the netdev id: there is not exactly one "
                                   "-netdev user")
            return next(iter(users.values()))
        if netdev_id not in users:
            raise NetworkError(f"unknown netdev id '{netdev_id}' (or not -netdev user)")
        return users[netdev_id]

    def info(self) -> str:
        """HMP ``info network``, in QEMU's layout."""
        lines = []
        shown: set[int] = set()
        for name, nic in self.nics.items():
            lines.append(f"{name}: index=0,type=nic,{nic.describe()}"
                         + (",link=down" if nic.link_down else ""))
            if nic.peer is not None:
                peer = nic.peer
                shown.add(id(peer))
                lines.append(f" \\ {peer.name}: index=0,type={peer.kind},{peer.describe()}"
                             + (",link=down" if peer.link_down else ""))
        for name, client in self.netdevs.items():
            if id(client) not in shown:
                lines.append(f"{name}: index=0,type={client.kind},{client.describe()}")
        return "\n".join(lines)

    def close(self) -> None:
        for client in self.netdevs.values():
            client.close()
        self.netdevs.clear()
        for closer in self.closers:
            closer.close()
        self.closers.clear()
