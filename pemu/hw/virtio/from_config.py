"""-drive and -device options into virtio-mmio devices, for every board.

Both system emulators take the same QEMU spellings (``-drive if=virtio``, ``-drive
if=none,id=X -device virtio-blk-device,drive=X``, ``-device virtio-rng-device``,
``-device virtconsole,chardev=ID``, ``-netdev user,id=N -device
virtio-net-device,netdev=N``, ``-nic user``) and hand the devices to the board's
``add_virtio(device, name)``; only the board's name for error messages differs.  A
board with a PCI bus (virt) also takes the PCI types (``virtio-blk-pci`` & co.,
``buses`` includes ``PCI``): those go to its ``add_pci(device, name, options)``.

Which devices exist, and which properties each takes, comes from the type registry
(pemu/qom): every device file declares its type with a factory
``factory(ctx: DeviceContext, opts, name) -> device``.  A property the type does not
declare is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pemu.block.blockdev_options import blockdev_drives
from pemu.block.drive import open_drive
from pemu.hw.pci.bus import PCI_BUS
from pemu.net.dump import attach_filters
from pemu.net.legacy import expand_net
from pemu.net.network import Network
from pemu.net.options import parse_netdev, parse_nic
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import DEVICE, RegistryError, checked_device, types

VIRTIO_BUS = "virtio-bus"


class DeviceContext:
    """What a device factory may ask of the command line: drives, chardevs, netdevs."""

    def __init__(self, board: object, cfg: SystemConfig, prog: str,
                 drives: dict[str, dict[str, str]], network: Network) -> None:
        self.board = board
        self.cfg = cfg
        self.prog = prog
        self.drives = drives
        self.network = network
        self.used: set[str] = set()
        # drive id -> the BlockBackend a device took (the monitor lists it in query-block)
        self.opened: dict[str, object] = {}
        # -drive id -> the BlockBackend of a drive no device has taken yet
        self.idle: dict[str, object] = {}
        # the devices made so far, by name: a device on a device's own bus (nvme-ns on
        # an nvme controller) finds its parent here
        self.devices: dict[str, object] = {}
        self.closers: list = [network]  # backends to close at exit
        # At run time the monitor's blockdev-add nodes are drives too (libvirt's
        # attach-device: blockdev-add, then device_add drive=NODE): node-name -> the
        # open BlockBackend, owned by the monitor (blockdev-del closes it), or None.
        self.find_block_node: Callable[[str], object | None] | None = None

    def take_drive(self, driver: str, drive_id: str | None):
        """Open the -drive called ``drive_id`` for ``driver`` (each drive once)."""
        if not drive_id:
            raise OptionError(f"{self.prog}: -device {driver}: needs drive=ID")
        node = self.find_block_node(drive_id) if self.find_block_node is not None else None
        if drive_id not in self.drives and node is None:
            raise OptionError(f"{self.prog}: -device {driver}: drive '{drive_id}' not found")
        if drive_id in self.used:
            raise OptionError(f"{self.prog}: -device {driver}: drive '{drive_id}' is "
                              "already in use")
        self.used.add(drive_id)
        if node is not None:
            self.opened[drive_id] = node
            return node
        backend = self.idle.pop(drive_id, None)
        if backend is None:
            backend = self._open(drive_id)
        self.opened[drive_id] = backend
        return backend

    def open_idle_drives(self, drive_ids: list[str]) -> None:
        """Open the ``-drive``s no device took, as QEMU opens every -drive at start: a
        missing image fails the start, the monitor lists them, and ``device_add
        drive=ID`` takes them later."""
        for drive_id in drive_ids:
            if drive_id not in self.used:
                self.idle[drive_id] = self._open(drive_id)

    def forget_drive(self, drive_id: str) -> None:
        """The device that held a ``-drive`` was unplugged: as in QEMU, the drive goes
        with it (closed; its id no longer names a drive)."""
        backend = self.opened.pop(drive_id, None)
        self.used.discard(drive_id)
        self.drives.pop(drive_id, None)
        if backend is not None:
            backend.close()

    def _open(self, drive_id: str):
        opts = {k: v for k, v in self.drives[drive_id].items() if k != "if"}
        if opts.get("media") == "cdrom":
            opts.setdefault("read-only", "on")  # a CD-ROM's medium is read-only
        if self.cfg.snapshot:
            opts.setdefault("snapshot", "on")  # -snapshot: a temporary overlay per drive
        backend = open_drive(opts)
        self.closers.append(backend)
        return backend

    def chardev(self, driver: str, chardev_id: str | None, name: str):
        if not chardev_id:
            raise OptionError(f"{self.prog}: -device {driver}: needs chardev=ID")
        return self.board.chardevs.attach(chardev_id, name)


def virtio_device_names(buses: list[str] | None = None) -> list[str]:
    return [t.name for t in types(DEVICE, buses=buses or [VIRTIO_BUS])]


def make_virtio_devices(board: object, cfg: SystemConfig, prog: str, board_name: str,
                        buses: list[str] | None = None) -> list:
    """Create the netdevs (``-netdev``, ``-nic``) and devices on ``board``; returns the
    backends (drives, the network) to close at exit."""
    drives: dict[str, dict[str, str]] = {}
    unattached: list[str] = []  # if=none: a device, now or by device_add, takes it
    for opts in cfg.drives:
        if opts.get("if", "none") not in ("none", "virtio"):
            raise OptionError(f"{prog}: -drive if={opts['if']}: {board_name} has only virtio "
                              "devices (if=virtio, or if=none with -device virtio-blk-device)")
        did = opts.get("id") or f"drive{len(drives)}"
        if did in drives:
            raise OptionError(f"{prog}: -drive id={did}: duplicate drive id")
        drives[did] = opts
        if opts.get("if", "none") == "none":
            unattached.append(did)
    for node, opts in blockdev_drives(cfg.blockdevs).items():
        if node in drives:
            raise OptionError(f"{prog}: -blockdev node-name={node}: the name of a -drive")
        drives[node] = opts  # -device ...,drive=NODE
    specs = list(cfg.devices)
    specs += [{"driver": "virtio-blk-device", "drive": did}
              for did, opts in drives.items() if opts.get("if") == "virtio"]
    network = Network(prog)
    network.chardevs = getattr(board, "chardevs", None)
    # The monitor finds the netdevs here (set_link, info network, hostfwd_add)
    board.network = network  # type: ignore[attr-defined]
    ctx = DeviceContext(board, cfg, prog, drives, network)
    board.device_context = ctx  # type: ignore[attr-defined] # for device_add at run time
    try:
        for text in cfg.netdevs:
            network.add(parse_netdev(text, prog))
        for n, text in enumerate(cfg.nics):
            nic = parse_nic(text, prog, n)
            if nic is not None:
                network.add(nic.netdev)
                specs.append({"driver": nic.model, "netdev": nic.netdev.id}
                             | ({"mac": nic.mac} if nic.mac else {}))
        net_specs, net_nics = expand_net(cfg.nets, prog)  # legacy -net: hub 0
        for spec in net_specs:
            network.add(spec)
        specs += net_nics
        attach_filters(network, cfg.objects, prog)
        closers = _plug(board, specs, ctx, prog, board_name, buses or [VIRTIO_BUS])
        ctx.open_idle_drives(unattached)
    except BaseException:
        close_backends(ctx.closers)
        raise
    for name in network.unpeered():
        print(f"{prog}: warning: netdev {name} has no peer", file=sys.stderr)
    return closers


def _plug(board: object, specs: list[dict[str, str]], ctx: DeviceContext, prog: str,
          board_name: str, buses: list[str]) -> list:
    for n, dev in enumerate(specs):
        driver = dev.get("driver", "")
        name = dev.get("id") or f"virtio{n}"
        try:
            info = checked_device(dev, buses)
        except RegistryError as e:
            raise OptionError(f"{prog}: -device {driver}: {e} (devices of {board_name}: "
                              f"{', '.join(virtio_device_names(buses))}; -device help "
                              "lists them)") from None
        device = ctx.devices[name] = info.factory(ctx, dev, name)
        if info.bus == PCI_BUS:
            board.add_pci(device, name, dev)  # type: ignore[attr-defined]
        elif info.bus == VIRTIO_BUS:
            board.add_virtio(device, name)
        # any other bus belongs to a device made earlier: the factory plugged it there
    return ctx.closers


def close_backends(closers: list) -> None:
    """Close what make_virtio_devices opened; a failure to close must not hide the exit
    status the guest gave, so it is reported and passed over."""
    for c in closers:
        try:
            c.close()
        except Exception as e:  # noqa: BLE001
            print(f"pemu: closing a backend failed: {e}", file=sys.stderr)
