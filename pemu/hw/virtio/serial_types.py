"""``-device virtio-serial-device`` and the ports on its bus, with QEMU's names.

``virtio-serial-device[,max_ports=N]`` (``virtio-serial-pci`` in pci_types.py) is the
multiport device; its bus is called ``ID.0`` after the device's id, as in QEMU.
``virtserialport,chardev=C[,name=N][,nr=K][,bus=ID.0]`` and
``virtconsole,chardev=C[,...]`` (a port the guest makes an hvc console) plug into
the bus named, or the virtio-serial device declared last.  A ``virtconsole`` with no
virtio-serial device at all gets the single-port console of console.py on a
virtio-mmio slot of its own (what that command line gave before virtio-serial).
"""

from __future__ import annotations

from pemu.hw.virtio.console import VirtioConsole
from pemu.hw.virtio.serial import DEFAULT_MAX_PORTS, VirtioSerial
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, int_property, register

VIRTIO_SERIAL_BUS = "virtio-serial-bus"


def _create_serial(ctx: object, opts: dict[str, str], name: str) -> VirtioSerial:
    max_ports = int_property("virtio-serial-device", opts, "max_ports", DEFAULT_MAX_PORTS)
    try:
        return VirtioSerial(max_ports, id=name)
    except ValueError as e:
        raise RegistryError(f"virtio-serial-device: {e}") from None


def _serial_devices(ctx: object) -> dict[str, VirtioSerial]:
    """The multiport devices made so far, by id (a -pci one is its function's device)."""
    found = {}
    for name, dev in getattr(ctx, "devices", {}).items():
        inner = getattr(dev, "virtio", dev)  # VirtioPCI wraps the device model
        if isinstance(inner, VirtioSerial) and inner.offers_multiport:
            found[name] = inner
    return found


def _bus_device(ctx: object, driver: str, opts: dict[str, str]) -> VirtioSerial | None:
    devices = _serial_devices(ctx)
    bus = opts.get("bus")
    if bus is not None:
        device = devices.get(bus.removesuffix(".0"))
        if device is None:
            raise RegistryError(f"{driver}: Bus '{bus}' not found")
        return device
    return list(devices.values())[-1] if devices else None


def _port_factory(console: bool):
    driver = "virtconsole" if console else "virtserialport"

    def create(ctx: object, opts: dict[str, str], name: str) -> object:
        device = _bus_device(ctx, driver, opts)
        chardev = ctx.chardev(driver, opts.get("chardev"), name)  # type: ignore[attr-defined]
        if device is None:
            if not console:
                raise RegistryError(f"{driver}: No '{VIRTIO_SERIAL_BUS}' bus found for "
                                    "device (add -device virtio-serial-device or -pci)")
            single = VirtioConsole(chardev, id=name)
            ctx.board.add_virtio(single, name)  # type: ignore[attr-defined]
            return single
        nr = int_property(driver, opts, "nr", -1)
        try:
            return device.add_port(chardev, None if nr < 0 else nr, opts.get("name"),
                                   console, id=name)
        except ValueError as e:
            raise RegistryError(f"{driver}: {e}") from None
    return create


_PORT_PROPERTIES = (
    Property("chardev", "str", description="ID of the -chardev it talks to"),
    Property("name", "str", description="the name the guest sees "
             "(/sys/class/virtio-ports/*/name, /dev/virtio-ports/NAME)"),
    Property("nr", "uint32", description="port number (default: the lowest free; 0 is "
             "kept for a console)"),
    Property("bus", "str", description="the virtio-serial device's bus, ID.0 (default: "
             "the last one)"),
)

VIRTIO_SERIAL_DEVICE = register(TypeInfo(
    "virtio-serial-device", DEVICE, "Virtio serial: multiport console (virtserialport, "
    "virtconsole)", bus="virtio-bus", factory=_create_serial,
    properties=(Property("max_ports", "uint32", str(DEFAULT_MAX_PORTS),
                         "ports the device has room for (1..31)"),)))

VIRTSERIALPORT = register(TypeInfo(
    "virtserialport", DEVICE, "Virtio serial port (a /dev/vport* in the guest)",
    bus=VIRTIO_SERIAL_BUS, factory=_port_factory(False), properties=_PORT_PROPERTIES))

VIRTCONSOLE = register(TypeInfo(
    "virtconsole", DEVICE, "Virtio console port (an hvc in the guest)",
    bus=VIRTIO_SERIAL_BUS, aliases=("virtio-console-device",), factory=_port_factory(True),
    properties=_PORT_PROPERTIES))
