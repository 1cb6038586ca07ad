"""A QOM-style object tree for qom-list, qom-get and qom-set.

pemu's devices are plain Python objects, not QOM objects; this tree is built on each
call from what the machine reports (CPUs, peripherals, -object and chardev ids), with
the paths QEMU uses, so tools that walk ``/machine`` find what they expect.  The tree
is read-only except for the properties a device model serves itself
(``qom_properties``/``qom_set``: virtio-balloon's guest statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError


@dataclass
class QOMObject:
    type: str
    props: dict[str, object] = field(default_factory=dict)
    children: dict[str, QOMObject] = field(default_factory=dict)
    # the live object behind a peripheral whose properties qom-set may change: it has
    # ``qom_properties() -> dict`` and ``qom_set(name, value)`` (virtio-balloon)
    device: object | None = None

    def add(self, name: str, child: QOMObject) -> QOMObject:
        self.children[name] = child
        return child


def _container() -> QOMObject:
    return QOMObject("container")


def build_tree(machine) -> QOMObject:
    root = _container()
    mtype = f"{machine.machine_type}-machine"
    m = root.add("machine", QOMObject(mtype, {"type": mtype}))
    peripheral = m.add("peripheral", _container())
    models = getattr(machine, "device_models", dict)()  # test doubles may lack it
    for dev_id, dev_type in machine.qom_children().items():
        node = peripheral.add(dev_id, QOMObject(dev_type, {"type": dev_type}))
        _add_live_properties(node, models.get(dev_id))
    unattached = m.add("unattached", _container())
    for cpu in machine.cpus():
        unattached.add(f"device[{cpu.index}]",
                       QOMObject(machine.cpu_type or "cpu",
                                 {"type": machine.cpu_type or "cpu",
                                  "cpu-index": cpu.index}))
    objects = root.add("objects", _container())
    for obj_id, opts in machine.objects.items():
        qtype = opts.get("qom-type", "object")
        objects.add(obj_id, QOMObject(qtype, {"type": qtype}))
    chardevs = root.add("chardevs", _container())
    registry = machine.chardevs
    if registry is not None:
        for cid in registry.chardevs:
            chardevs.add(cid, QOMObject("chardev", {"type": "chardev"}))
    return root


def _add_live_properties(node: QOMObject, device: object) -> None:
    """A device model's own properties (a -pci function's are its model's)."""
    model = getattr(device, "virtio", device)
    if hasattr(model, "qom_properties"):
        node.props.update(model.qom_properties())
        node.device = model


def resolve(root: QOMObject, path: str) -> QOMObject:
    if not path.startswith("/"):
        raise QMPError(f"Device '{path}' not found", DEVICE_NOT_FOUND)
    node = root
    for part in (p for p in path.split("/") if p):
        child = node.children.get(part)
        if child is None:
            raise QMPError(f"Device '{path}' not found", DEVICE_NOT_FOUND)
        node = child
    return node


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return "string"


def qom_list(root: QOMObject, path: str) -> list[dict[str, str]]:
    node = resolve(root, path)
    out = [{"name": name, "type": _json_type(v)} for name, v in node.props.items()]
    out += [{"name": name, "type": f"child<{c.type}>"} for name, c in node.children.items()]
    return out


def qom_get(root: QOMObject, path: str, prop: str) -> object:
    node = resolve(root, path)
    if prop in node.props:
        return node.props[prop]
    if prop in node.children:
        return f"{path.rstrip('/')}/{prop}"
    raise QMPError(f"Property '{node.type}.{prop}' not found")


def qom_set(root: QOMObject, path: str, prop: str, value: object) -> None:
    node = resolve(root, path)
    if prop not in node.props:
        raise QMPError(f"Property '{node.type}.{prop}' not found")
    if node.device is None or prop == "type":
        raise QMPError(f"Property '{node.type}.{prop}' is not writable")
    try:
        node.device.qom_set(prop, value)  # type: ignore[attr-defined]
    except KeyError:
        raise QMPError(f"Property '{node.type}.{prop}' is not writable") from None
    except ValueError as e:
        raise QMPError(str(e)) from None
