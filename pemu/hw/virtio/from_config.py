"""-drive and -device options into virtio-mmio devices, for every board.

Both system emulators take the same QEMU spellings (``-drive if=virtio``, ``-drive
if=none,id=X -device virtio-blk-device,drive=X``, ``-device virtio-rng-device``,
``-device virtconsole,chardev=ID``) and hand the devices to the board's
``add_virtio(device, name)``; only the board's name for error messages differs.
"""

from __future__ import annotations

from pemu.cli.options import OptionError
from pemu.cli.system_config import SystemConfig

CONSOLE_DRIVERS = ("virtio-serial-device", "virtconsole", "virtio-console-device")


def make_virtio_devices(board: object, cfg: SystemConfig, prog: str, board_name: str) -> list:
    """Create the devices on ``board``; returns the block backends to close at exit."""
    from pemu.block.drive import open_drive
    from pemu.hw.virtio.blk import VirtioBlk
    from pemu.hw.virtio.console import VirtioConsole
    from pemu.hw.virtio.rng import VirtioRng

    drives: dict[str, dict[str, str]] = {}
    for opts in cfg.drives:
        if opts.get("if", "none") not in ("none", "virtio"):
            raise OptionError(f"{prog}: -drive if={opts['if']}: {board_name} has only virtio "
                              "devices (if=virtio, or if=none with -device virtio-blk-device)")
        did = opts.get("id") or f"drive{len(drives)}"
        if did in drives:
            raise OptionError(f"{prog}: -drive id={did}: duplicate drive id")
        drives[did] = opts
    specs = list(cfg.devices)
    specs += [{"driver": "virtio-blk-device", "drive": did}
              for did, opts in drives.items() if opts.get("if") == "virtio"]
    used: set[str] = set()
    closers = []
    for n, dev in enumerate(specs):
        driver = dev.get("driver", "")
        name = dev.get("id") or f"virtio{n}"
        if driver == "virtio-blk-device":
            did = dev.get("drive", "")
            if did not in drives:
                raise OptionError(f"{prog}: -device {driver}: drive '{did}' not found")
            if did in used:
                raise OptionError(f"{prog}: -device {driver}: drive '{did}' is already in use")
            used.add(did)
            opts = {k: v for k, v in drives[did].items() if k != "if"}
            if cfg.snapshot:
                opts.setdefault("snapshot", "on")  # -snapshot: a temporary overlay per drive
            backend = open_drive(opts)
            closers.append(backend)
            device = VirtioBlk(backend, serial=dev.get("serial", ""), id=name)
        elif driver == "virtio-rng-device":
            device = VirtioRng(id=name)
        elif driver in CONSOLE_DRIVERS:
            chardev_id = dev.get("chardev")
            if not chardev_id:
                raise OptionError(f"{prog}: -device {driver}: needs chardev=ID")
            device = VirtioConsole(board.chardevs.attach(chardev_id, name), id=name)
        else:
            raise OptionError(f"{prog}: -device {driver}: not available on {board_name} "
                              "(virtio-blk-device, virtio-rng-device, virtio-serial-device)")
        board.add_virtio(device, name)
    return closers


def close_backends(closers: list) -> None:
    """Close what make_virtio_devices opened; a failure to close must not hide the exit
    status the guest gave, so it is reported and passed over."""
    import sys

    for c in closers:
        try:
            c.close()
        except Exception as e:  # noqa: BLE001
            print(f"pemu: closing a drive failed: {e}", file=sys.stderr)
