"""The monitor's balloon: QMP ``balloon`` / ``query-balloon`` and the BALLOON_CHANGE
event, HMP ``balloon N`` (MiB) / ``info balloon``, on the machine's virtio-balloon
(pemu/hw/virtio/balloon.py; at most one, as QEMU allows)."""

from __future__ import annotations

from pemu.hw.virtio.balloon import VirtioBalloon
from pemu.monitor.errors import DEVICE_NOT_ACTIVE, QMPError

MIB = 1 << 20


def balloons(machine) -> list[VirtioBalloon]:
    """The balloon devices among the machine's device models (a -pci device is the
    function wrapping the model: its ``virtio``)."""
    found = []
    for device in machine.device_models().values():
        model = getattr(device, "virtio", device)
        if isinstance(model, VirtioBalloon):
            found.append(model)
    return found


def find_balloon(machine) -> VirtioBalloon:
    found = balloons(machine)
    if not found:
        raise QMPError("No balloon device has been activated", DEVICE_NOT_ACTIVE)
    return found[0]


def connect_balloon_events(machine) -> None:
    """The guest's balloon changes become BALLOON_CHANGE events on the machine's bus."""
    for balloon in balloons(machine):
        balloon.on_change = lambda actual: machine.events.emit("BALLOON_CHANGE",
                                                               {"actual": actual})


def query_balloon(machine) -> dict[str, int]:
    return {"actual": find_balloon(machine).actual_bytes}


def set_balloon(machine, value: int) -> None:
    balloon = find_balloon(machine)
    if value <= 0:
        raise QMPError("Parameter 'target' expects a size")
    balloon.set_target(value)


def hmp_balloon(machine, arg: str) -> str:
    """HMP ``balloon N``: the target in MiB."""
    try:
        mib = int(arg, 0)
    except ValueError:
        raise QMPError(f"invalid number '{arg}'") from None
    set_balloon(machine, mib * MIB)
    return ""


def hmp_info_balloon(machine) -> str:
    return f"balloon: actual={query_balloon(machine)['actual'] // MIB}\n"


def register(schema) -> None:
    s, command = schema, schema.command
    s.struct("BalloonInfo", {"actual": "int"})
    s.event("BALLOON_CHANGE", {"actual": "int"})

    @command("balloon", {"value": "int"})
    def balloon(ctx, value: int) -> None:
        set_balloon(ctx.machine, value)

    @command("query-balloon", returns="BalloonInfo")
    def query(ctx) -> dict:
        return query_balloon(ctx.machine)
