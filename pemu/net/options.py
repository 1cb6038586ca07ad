"""``-netdev TYPE,id=ID[,...]`` and ``-nic TYPE[,model=M][,mac=MAC][,...]``, checked
against the declared backends with QEMU's messages.

``-nic`` is QEMU's shorthand for a netdev plus a NIC on it: its options other than
``model``, ``mac`` and ``id`` are the netdev's; ``id`` names the netdev.  ``-nic none``
asks for no NIC.  The model is virtio-net-device by default (``virtio``, QEMU's
spelling, means it too), or virtio-net-pci on a board with a PCI bus (the virt boards;
another board refuses it as it refuses ``-device virtio-net-pci``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.net.backend import check_items, netdev_type
from pemu.qemuopts.keyval import OptionError, split_keyval

NIC_MODELS = {"virtio-net-device": "virtio-net-device", "virtio": "virtio-net-device",
              "virtio-net-pci": "virtio-net-pci"}
NIC_KEYS = ("model", "mac", "id")


@dataclass(frozen=True)
class NetdevSpec:
    """One backend to create: its type, its options (``id`` among them) in order."""

    type: str
    items: tuple[tuple[str, str], ...]
    what: str  # "-netdev user,id=n0": how errors name it

    @property
    def id(self) -> str:
        return dict(self.items).get("id", "")


@dataclass(frozen=True)
class NicSpec:
    """A ``-nic``: the netdev it makes and the NIC's model and MAC (None: default)."""

    netdev: NetdevSpec
    model: str
    mac: str | None


def split_items(text: str, implied_key: str = "type") -> list[tuple[str, str]]:
    """``user,id=n0,hostfwd=a,hostfwd=b`` -> [(type, user), (id, n0), ...]; repeated keys
    stay (the backend decides which may repeat)."""
    out = []
    for n, item in enumerate(split_keyval(text)):
        if item == "" and n > 0:
            continue
        if "=" in item:
            key, value = item.split("=", 1)
        elif n == 0:
            key, value = implied_key, item
        else:
            key, value = item, "on"  # QEMU: a bare flag is key=on
        out.append((key, value))
    return out


def typed_items(text: str, what: str, also: tuple[str, ...] = ()) -> tuple[str, list]:
    items = split_items(text)
    kind = dict(items).get("type", "")
    if not kind:
        raise OptionError(f"{what}: Parameter 'type' is missing")
    info = netdev_type(kind, what)
    rest = [(k, v) for k, v in items if k != "type"]
    check_items(info, rest, what, also)
    return kind, rest


def parse_netdev(text: str, prog: str) -> NetdevSpec:
    what = f"{prog}: -netdev {text}"
    kind, items = typed_items(text, what)
    if not dict(items).get("id"):
        raise OptionError(f"{what}: Parameter 'id' is missing")
    return NetdevSpec(kind, tuple(items), what)


def parse_nic(text: str, prog: str, index: int) -> NicSpec | None:
    """A ``-nic``; None for ``-nic none``.  ``index`` numbers the netdev ids -nic makes."""
    what = f"{prog}: -nic {text}"
    if split_items(text)[:1] == [("type", "none")]:
        return None
    kind, items = typed_items(text, what, NIC_KEYS)
    given = dict(items)
    model = given.get("model", "virtio-net-device")
    if model not in NIC_MODELS:
        raise OptionError(f"{what}: NIC model '{model}' is not supported (supported: "
                          f"{', '.join(sorted(NIC_MODELS))})")
    mac = given.get("mac")
    if mac is not None:
        parse_mac(mac, what)
    netdev_items = [(k, v) for k, v in items if k not in NIC_KEYS]
    netdev_items.insert(0, ("id", given.get("id") or f"nic{index}"))
    return NicSpec(NetdevSpec(kind, tuple(netdev_items), what), NIC_MODELS[model], mac)


def parse_mac(text: str, what: str) -> bytes:
    """``52:54:00:12:34:56`` -> 6 bytes; QEMU's message for anything else."""
    parts = text.split(":")
    try:
        if len(parts) != 6 or any(len(p) not in (1, 2) for p in parts):
            raise ValueError
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise OptionError(f"{what}: Property 'mac' doesn't take value '{text}'") from None
    if mac[0] & 1:
        raise OptionError(f"{what}: mac={text} is a multicast address")
    return mac
