"""The command line of the system emulators (pemu-system-riscv64, pemu-system-x86_64).

One option table and one ``SystemConfig`` serve every board, so that the same
``-drive``, ``-device``, ``-chardev`` or ``-serial`` means the same thing everywhere.
Boards read the config; they never look at argv.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.cli.options import OptionError, OptionSpec, parse_argv, parse_keyval, parse_size

_OPTIONS = [
    ("M", True, "machine type and properties, e.g. virt,dumpdtb=FILE"),
    ("machine", True, "same as -M"),
    ("m", True, "RAM size (suffix k/M/G; default unit MiB)"),
    ("smp", True, "number of CPUs"),
    ("cpu", True, "CPU model"),
    ("accel", True, "accelerator: tcg[,backend=...] or kvm"),
    ("enable-kvm", False, "same as -accel kvm"),
    ("kernel", True, "kernel image"),
    ("initrd", True, "initial ram disk"),
    ("append", True, "kernel command line"),
    ("bios", True, "firmware image, or none"),
    ("dtb", True, "device tree blob to use instead of the generated one"),
    ("drive", True, "a drive: file=,format=,if=,id=,..."),
    ("blockdev", True, "a block node: driver=,node-name=,..."),
    ("device", True, "a device: DRIVER[,prop=value...]"),
    ("chardev", True, "a character device backend: BACKEND,id=ID[,...]"),
    ("serial", True, "serial port: stdio, null, file:F, pty, tcp:..., unix:..., chardev:ID"),
    ("monitor", True, "human monitor backend"),
    ("mon", True, "monitor on a chardev: chardev=ID[,mode=control|readline]"),
    ("qmp", True, "QMP monitor backend"),
    ("netdev", True, "network backend"),
    ("nic", True, "network interface card"),
    ("object", True, "an object: secret,id=..., tls-creds-x509,id=..."),
    ("nographic", False, "no graphics; serial and monitor multiplexed on stdio"),
    ("display", True, "display backend (only none is supported)"),
    ("no-reboot", False, "exit instead of rebooting"),
    ("no-shutdown", False, "stop instead of exiting on guest shutdown"),
    ("snapshot", False, "write to temporary overlays, never to the images"),
    ("s", False, "shorthand for -gdb tcp::1234"),
    ("S", False, "do not start the CPUs; wait for the monitor or gdb"),
    ("gdb", True, "gdb stub: tcp::PORT or unix:PATH"),
    ("d", True, "log items, comma separated (help lists them)"),
    ("D", True, "log file"),
    ("name", True, "guest name"),
    ("sandbox", True, "seccomp sandbox: on|off[,...]"),
    ("incoming", True, "wait for an incoming migration"),
    ("icount", True, "instruction counting: shift=N"),
    ("rtc", True, "real-time clock options"),
    ("version", False, "print the version and exit"),
    ("h", False, "print help and exit"),
    ("help", False, "print help and exit"),
]

OPTION_TABLE: dict[str, OptionSpec] = {n: OptionSpec(n, v, h) for n, v, h in _OPTIONS}


@dataclass
class SystemConfig:
    """Everything the command line said, in QEMU's terms."""

    machine: dict[str, str] = field(default_factory=dict)  # 'type' key plus properties
    ram_size: int = 128 << 20
    smp: int = 1
    cpu: str | None = None
    accel: dict[str, str] = field(default_factory=lambda: {"accel": "tcg"})
    kernel: str | None = None
    initrd: str | None = None
    append: str = ""
    bios: str | None = None
    dtb: str | None = None
    drives: list[dict[str, str]] = field(default_factory=list)
    blockdevs: list[dict[str, str]] = field(default_factory=list)
    devices: list[dict[str, str]] = field(default_factory=list)
    chardevs: list[dict[str, str]] = field(default_factory=list)
    serial: list[str] = field(default_factory=list)
    monitor: list[str] = field(default_factory=list)
    mon: list[dict[str, str]] = field(default_factory=list)
    qmp: list[str] = field(default_factory=list)
    netdevs: list[dict[str, str]] = field(default_factory=list)
    objects: list[dict[str, str]] = field(default_factory=list)
    nographic: bool = False
    no_reboot: bool = False
    no_shutdown: bool = False
    snapshot: bool = False
    gdb: str | None = None
    start_stopped: bool = False
    log_items: list[str] = field(default_factory=list)
    log_file: str | None = None
    name: str | None = None
    sandbox: dict[str, str] | None = None
    incoming: str | None = None
    icount: dict[str, str] | None = None
    show_version: bool = False
    show_help: bool = False


def parse_system_argv(argv: list[str], prog: str) -> SystemConfig:
    """Turn argv into a SystemConfig; raises OptionError with a user-facing message."""
    cfg = SystemConfig()
    for name, value in parse_argv(argv, OPTION_TABLE, prog):
        v = value or ""
        if name in ("M", "machine"):
            cfg.machine = parse_keyval(v, implied_key="type", option=name)
        elif name == "m":
            opts = parse_keyval(v, implied_key="size", option=name)
            cfg.ram_size = parse_size(opts["size"], default_suffix="M", what="memory size")
            if cfg.ram_size <= 0:
                raise OptionError(f"{prog}: -m {v}: memory size must be positive")
        elif name == "smp":
            opts = parse_keyval(v, implied_key="cpus", option=name)
            try:
                cfg.smp = int(opts.get("cpus", "1"))
            except ValueError:
                raise OptionError(f"{prog}: -smp {v}: CPU count must be a number") from None
            if not 1 <= cfg.smp <= 512:
                raise OptionError(f"{prog}: -smp {v}: CPU count must be between 1 and 512")
        elif name == "cpu":
            cfg.cpu = v
        elif name == "accel":
            cfg.accel = parse_keyval(v, implied_key="accel", option=name)
        elif name == "enable-kvm":
            cfg.accel = {"accel": "kvm"}
        elif name in ("kernel", "initrd", "bios", "dtb", "gdb", "name", "incoming"):
            setattr(cfg, name, v)
        elif name == "append":
            cfg.append = v
        elif name == "drive":
            cfg.drives.append(parse_keyval(v, option=name))
        elif name == "blockdev":
            cfg.blockdevs.append(parse_keyval(v, option=name))
        elif name == "device":
            cfg.devices.append(parse_keyval(v, implied_key="driver", option=name))
        elif name == "chardev":
            cfg.chardevs.append(parse_keyval(v, implied_key="backend", option=name))
        elif name == "serial":
            cfg.serial.append(v)
        elif name == "monitor":
            cfg.monitor.append(v)
        elif name == "mon":
            cfg.mon.append(parse_keyval(v, implied_key="chardev", option=name))
        elif name == "qmp":
            cfg.qmp.append(v)
        elif name == "netdev":
            cfg.netdevs.append(parse_keyval(v, implied_key="type", option=name))
        elif name == "nic":
            cfg.netdevs.append(parse_keyval(v, implied_key="type", option=name) | {"nic": "on"})
        elif name == "object":
            cfg.objects.append(parse_keyval(v, implied_key="qom-type", option=name))
        elif name == "nographic":
            cfg.nographic = True
        elif name == "display":
            if parse_keyval(v, implied_key="type").get("type") != "none":
                raise OptionError(f"{prog}: -display {v}: only -display none is supported")
        elif name == "no-reboot":
            cfg.no_reboot = True
        elif name == "no-shutdown":
            cfg.no_shutdown = True
        elif name == "snapshot":
            cfg.snapshot = True
        elif name == "s":
            cfg.gdb = "tcp::1234"
        elif name == "S":
            cfg.start_stopped = True
        elif name == "d":
            cfg.log_items.extend(x for x in v.split(",") if x)
        elif name == "D":
            cfg.log_file = v
        elif name == "sandbox":
            cfg.sandbox = parse_keyval(v, implied_key="enable", option=name)
        elif name == "icount":
            cfg.icount = parse_keyval(v, implied_key="shift", option=name)
        elif name == "rtc":
            pass  # accepted for compatibility; the RTC always follows the host clock
        elif name == "version":
            cfg.show_version = True
        elif name in ("h", "help"):
            cfg.show_help = True
    return cfg


def help_text(prog: str) -> str:
    lines = [f"usage: {prog} [options]", ""]
    for n, v, h in _OPTIONS:
        lines.append(f"  -{n}{' ARG' if v else ''}".ljust(22) + h)
    return "\n".join(lines)


def system_main(argv: list[str] | None, prog: str, run: Callable[[SystemConfig], int]) -> int:
    """The shared ``main`` of the system emulators: parse, answer -help/-version, run.

    Command-line problems print one line naming the option and give status 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_system_argv(argv, prog)
        if cfg.show_help:
            print(help_text(prog))
            return 0
        if cfg.show_version:
            print(f"{prog} (pemu) 0.1.0")
            return 0
        return run(cfg)
    except OptionError as e:
        msg = str(e)
        print(msg if msg.startswith(prog) else f"{prog}: {msg}", file=sys.stderr)
        return 1
