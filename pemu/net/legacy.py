"""The legacy ``-net`` option: ``-net nic[,model=M][,macaddr=MAC][,netdev=ID][,name=N]``
and ``-net TYPE[,options]`` (``user``, ``tap``, ``socket``, ...), as QEMU has them since
3.0: every ``-net`` backend and NIC is put on hub 0, so ``-net nic -net user`` wires the
NIC to slirp through the hub; ``-net nic,netdev=ID`` takes a ``-netdev`` directly;
``-net none`` adds nothing.  (The old ``vlan=`` is refused, as QEMU refuses it.)
"""

from __future__ import annotations

from pemu.net.options import NIC_MODELS, NetdevSpec, parse_mac, split_items, typed_items
from pemu.qemuopts.keyval import OptionError

NIC_KEYS = ("model", "macaddr", "netdev", "name", "id")


def expand_net(texts: list[str], prog: str) -> tuple[list[NetdevSpec], list[dict[str, str]]]:
    """The netdevs to create, in order (backends before the hub ports that carry
    them), and the NICs (``-device`` options) the ``-net`` options ask for."""
    netdevs: list[NetdevSpec] = []
    nics: list[dict[str, str]] = []
    ports = 0

    def hubport(backend: str | None) -> str:
        nonlocal ports
        port_id = f"hub0port{ports}"
        ports += 1
        items = [("id", port_id), ("hubid", "0")] + ([("netdev", backend)] if backend else [])
        netdevs.append(NetdevSpec("hubport", tuple(items), f"{prog}: -net"))
        return port_id

    for n, text in enumerate(texts):
        what = f"{prog}: -net {text}"
        items = split_items(text)
        kind = dict(items).get("type", "")
        given = dict(items)
        if "vlan" in given:
            raise OptionError(f"{what}: vlan= was removed in QEMU 3.0: every -net shares "
                              "hub 0 (use -netdev hubport,hubid=N for other hubs)")
        if kind == "none":
            continue
        if kind == "nic":
            unknown = [k for k, _ in items if k != "type" and k not in NIC_KEYS]
            if unknown:
                raise OptionError(f"{what}: Invalid parameter '{unknown[0]}'")
            model = given.get("model", "virtio")
            if model not in NIC_MODELS:
                raise OptionError(f"{what}: NIC model '{model}' is not supported "
                                  f"(supported: {', '.join(sorted(set(NIC_MODELS)))})")
            device = {"driver": NIC_MODELS[model],
                      "netdev": given.get("netdev") or hubport(None)}
            if "macaddr" in given:
                parse_mac(given["macaddr"], what)
                device["mac"] = given["macaddr"]
            name = given.get("id") or given.get("name")
            if name:
                device["id"] = name
            nics.append(device)
            continue
        kind, rest = typed_items(text, what, also=("name",))
        backend_id = given.get("id") or given.get("name") or f"{kind}.{n}"
        rest = [(k, v) for k, v in rest if k not in ("id", "name")]
        netdevs.append(NetdevSpec(kind, (("id", backend_id), *rest), what))
        hubport(backend_id)
    return netdevs, nics
