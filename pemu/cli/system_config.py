"""The command line of the system emulators (pemu-system-riscv64, pemu-system-x86_64).

One option table and one ``SystemConfig`` serve every board, so that the same
``-drive``, ``-device``, ``-chardev`` or ``-serial`` means the same thing everywhere.
Boards read the config; they never look at argv.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from pemu.block.drivers import block_driver, supported_formats_line
from pemu.block.errors import BlockError
from pemu.chardev.backend import backend_type, check_backend_options
from pemu.cli import management_options
from pemu.cli.process_setup import setup_process
from pemu.fdpass import parse_add_fd
from pemu.fs9p.fsdev import expand_virtfs, parse_fsdev
from pemu.memory.backends import apply_memory_backends
from pemu.migration.channel_spec import CPR as CPR_CHANNEL
from pemu.migration.channel_spec import ChannelSpecError, incoming_option
from pemu.net import all_backends  # noqa: F401 - -netdev types
from pemu.net.backend import netdev_help, netdev_type
from pemu.net.legacy import expand_net
from pemu.net.options import parse_netdev, parse_nic
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.json_options import (
    is_json_value,
    keyval_text,
    parse_json_option,
    parse_option_value,
)
from pemu.qemuopts.keyval import OptionError, OptionSpec, parse_argv, parse_keyval, parse_size
from pemu.qemuopts.parameters import BOOLEAN, STRING, declare
from pemu.qom.registry import (
    CHARDEV,
    CPU,
    DEVICE,
    MACHINE,
    RegistryError,
    check_options,
    checked_device,
    help_listing,
    lookup,
    property_listing,
    types,
)
from pemu.sandbox.policy import SandboxError, parse_sandbox
from pemu.sandbox.privileges import PrivilegeError, resolve_user
from pemu.version import PEMU_VERSION, QEMU_COMPAT_VERSION

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
    ("netdev", True, "network backend: user,id=ID[,hostfwd=...] (help lists them)"),
    ("nic", True, "a NIC and its backend: user[,model=virtio-net-device][,mac=...]"),
    ("object", True, "an object: secret,id=..., tls-creds-x509,id=..."),
    ("net", True, "legacy: nic[,model=...] or a backend (user, tap, ...) on hub 0"),
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
    ("sandbox", True, "seccomp sandbox: on|off[,obsolete=,elevateprivileges=,spawn=,"
                      "resourcecontrol=] (docs/SECURITY.md)"),
    ("runas", True, "drop root for this user (or UID:GID) once devices are open"),
    ("chroot", True, "chroot to this directory once devices are open"),
    ("run-with", True, "user=USER,chroot=DIR: as -runas and -chroot"),
    ("incoming", True, "wait for an incoming migration"),
    ("loadvm", True, "start from the snapshot NAME (savevm) of the qcow2 disks"),
    ("icount", True, "instruction counting: shift=N"),
    ("rtc", True, "real-time clock: base=utc, clock=host|rt (the guest sees host UTC)"),
    ("add-fd", True, "fd=N,set=S[,opaque=TEXT]: an inherited fd joins fd set S "
                     "(open it as /dev/fdset/S)"),
    ("no-user-config", False, "load no user configuration (pemu has none to load)"),
    ("nodefaults", False, "create no default devices (serial port, monitor)"),
    ("daemonize", False, "detach once started; the parent exits when QMP listens"),
    ("pidfile", True, "write the process id to this file (locked, removed at exit)"),
    ("uuid", True, "the machine's UUID (query-uuid)"),
    ("overcommit", True, "mem-lock=off,cpu-pm=off (on is not implemented)"),
    ("msg", True, "timestamp=on|off,guest-name=on|off: prefixes of error lines"),
    ("boot", True, "strict=on|off,menu=off (pemu boots -kernel/-bios itself)"),
    ("audiodev", True, "none,id=ID: the only audio backend (pemu has no sound device)"),
    ("fsdev", True, "a 9p share backend: local,id=ID,path=DIR,security_model=MODEL"
                    "[,readonly=on]"),
    ("virtfs", True, "a 9p share: local,path=DIR,mount_tag=TAG,security_model=MODEL"
                     "[,readonly=on][,id=ID] (-fsdev + -device virtio-9p-pci)"),
    ("version", False, "print the version and exit"),
    ("h", False, "print help and exit"),
    ("help", False, "print help and exit"),
]

OPTION_TABLE: dict[str, OptionSpec] = {n: OptionSpec(n, v, h) for n, v, h in _OPTIONS}


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
            cfg.ram_size_given = True
            if cfg.ram_size <= 0:
                raise OptionError(f"{prog}: -m {v}: memory size must be positive")
        elif name == "smp":
            cfg.smp = management_options.parse_smp(v)
        elif name == "cpu":
            cfg.cpu = v
        elif name == "accel":
            cfg.accel = parse_keyval(v, implied_key="accel", option=name)
            cfg.accel_given = True
        elif name == "enable-kvm":
            cfg.accel = {"accel": "kvm"}
            cfg.accel_given = True
        elif name == "name":
            cfg.name, cfg.debug_threads = management_options.parse_name(v)
        elif name in ("kernel", "initrd", "bios", "dtb", "gdb"):
            setattr(cfg, name, v)
        elif name == "append":
            cfg.append = v
        elif name == "drive":
            cfg.drives.append(parse_keyval(v, option=name))
        elif name == "blockdev":
            # "backing": null, as libvirt writes it: the node has no backing node
            cfg.blockdevs.append(parse_option_value(v, option=name, nullable=("backing",)))
        elif name == "device":
            cfg.devices.append(parse_option_value(v, implied_key="driver", option=name))
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
            if is_json_value(v):  # the JSON form as the text form it means
                v = keyval_text(parse_json_option(v, name), first="type")
            if v != "help" and not v.endswith(",help"):
                parse_netdev(v, prog)  # a bad type or option: QEMU's error, now
            cfg.netdevs.append(v)
        elif name == "nic":
            if v != "help" and not v.endswith(",help"):
                parse_nic(v, prog, len(cfg.nics))
            cfg.nics.append(v)
        elif name == "net":
            cfg.nets.append(v)
            expand_net(cfg.nets, prog)  # a bad type or option: QEMU's error, now
        elif name == "object":
            cfg.objects.append(parse_option_value(v, implied_key="qom-type", option=name))
        elif name == "add-fd":
            # adopted at once, as QEMU does, before anything can open /dev/fdset/S
            parse_add_fd(parse_keyval(v, option=name))
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
            try:
                parse_sandbox(cfg.sandbox)  # refuse bad values now, apply after setup
            except SandboxError as e:
                raise OptionError(f"{prog}: -sandbox {v}: {e}") from None
        elif name == "runas":
            cfg.runas = _check_user(prog, v)
        elif name == "chroot":
            cfg.chroot = v
        elif name == "run-with":
            _parse_run_with(prog, v, cfg)
        elif name == "icount":
            _not_implemented(prog, name, v)
        elif name == "incoming":
            _add_incoming(prog, v, cfg)
        elif name == "loadvm":
            cfg.loadvm = v
        elif name == "rtc":
            _check_rtc(prog, parse_keyval(v, option=name))
        elif name in ("fsdev", "virtfs"):
            _add_fsdev(prog, name, v, cfg)
        elif name == "version":
            cfg.show_version = True
        elif name in ("h", "help"):
            cfg.show_help = True
        else:
            _parse_process_option(cfg, name, v)
    _machine_accel(cfg)
    return cfg


def _parse_process_option(cfg: SystemConfig, name: str, v: str) -> None:
    """The options of the process around the machine (pemu/cli/management_options.py
    and process_setup.py)."""
    if name == "no-user-config":
        pass  # pemu reads no configuration files: there is nothing not to load
    elif name == "nodefaults":
        cfg.nodefaults = True
    elif name == "daemonize":
        cfg.daemonize = True
    elif name == "pidfile":
        cfg.pidfile = v
    elif name == "uuid":
        cfg.uuid = management_options.parse_uuid(v)
    elif name == "overcommit":
        management_options.check_overcommit(v)
    elif name == "msg":
        cfg.msg_timestamp, cfg.msg_guest_name = management_options.parse_msg(v)
    elif name == "boot":
        management_options.check_boot(v)
    elif name == "audiodev":
        management_options.parse_audiodev(v)
    else:
        raise AssertionError(f"option -{name} is in the table but has no parser")


def _machine_accel(cfg: SystemConfig) -> None:
    """``-machine accel=kvm:tcg`` (the legacy spelling libvirt's probe uses) is
    ``-accel``; an explicit ``-accel`` wins, as in QEMU."""
    accel = cfg.machine.pop("accel", None)
    if accel is not None and not cfg.accel_given:
        cfg.accel = {"accel": accel}


def choose_accel(cfg: SystemConfig, available: tuple[str, ...]) -> str:
    """The first accelerator of an ``a:b`` list that this emulator has (QEMU tries them
    in order); writes it back into ``cfg.accel``."""
    wanted = cfg.accel.get("accel", available[0])
    for name in wanted.split(":"):
        if name in available:
            cfg.accel["accel"] = name
            return name
    return wanted


# Options pemu parses but cannot honour yet: refused with this reason, never ignored.
NOT_IMPLEMENTED_OPTIONS = {
    "icount": "instruction counting is not implemented in pemu yet",
}


def _add_fsdev(prog: str, option: str, value: str, cfg: SystemConfig) -> None:
    """-fsdev, or -virtfs (an -fsdev plus its virtio-9p-pci): checked now, as QEMU does."""
    try:
        opts = parse_keyval(value, implied_key="fsdriver", option=option)
        device = None
        if option == "virtfs":
            opts, device = expand_virtfs(opts)
        parse_fsdev(opts)
        if any(f.get("id") == opts["id"] for f in cfg.fsdevs):
            raise OptionError(f"duplicate or invalid fsdev id: {opts['id']}" if device
                              else f"Duplicate ID '{opts['id']}' for fsdev")
    except OptionError as e:
        raise OptionError(f"{prog}: -{option} {value}: {e}") from None
    cfg.fsdevs.append(opts)
    if device is not None:
        cfg.devices.append(device)


def _check_user(prog: str, user: str) -> str:
    """Refuse an unknown -runas user now, as QEMU does, not after the guest is set up."""
    try:
        resolve_user(user)
    except PrivilegeError as e:
        raise OptionError(f"{prog}: {e}") from None
    return user


def _parse_run_with(prog: str, value: str, cfg: SystemConfig) -> None:
    for key, v in parse_keyval(value, option="run-with").items():
        if key == "user":
            cfg.runas = _check_user(prog, v)
        elif key == "chroot":
            cfg.chroot = v
        else:
            raise OptionError(f"{prog}: -run-with {value}: Invalid parameter '{key}'")


def _not_implemented(prog: str, name: str, value: str) -> None:
    option = f"-{name} {value}" if value else f"-{name}"
    raise OptionError(f"{prog}: {option}: {NOT_IMPLEMENTED_OPTIONS[name]}")


# -rtc values that describe what the boards do: the guest clock is the host's UTC clock
RTC_SUPPORTED = {"base": ("utc",), "clock": ("host", "rt")}
# the keys of -rtc and -sandbox, for query-command-line-options (libvirt passes
# -sandbox only to an emulator that lists it)
declare("rtc", {key: STRING for key in RTC_SUPPORTED})
declare("sandbox", {"enable": BOOLEAN, "obsolete": STRING, "elevateprivileges": STRING,
                    "spawn": STRING, "resourcecontrol": STRING})


def _check_rtc(prog: str, opts: dict[str, str]) -> None:
    for key, value in opts.items():
        allowed = RTC_SUPPORTED.get(key)
        if allowed is None:
            raise OptionError(f"{prog}: -rtc {key}={value}: not supported "
                              f"(supported: base=utc, clock=host|rt)")
        if value not in allowed:
            raise OptionError(f"{prog}: -rtc {key}={value}: not supported "
                              f"(supported: {key}={'|'.join(allowed)})")


def open_log_file(cfg: SystemConfig, prog: str) -> TextIO | None:
    """-D FILE for the -d log, appended to as QEMU does; None: log to stderr."""
    if not cfg.log_file:
        return None
    try:
        return open(cfg.log_file, "a")  # noqa: SIM115 - lives as long as the VM
    except OSError as e:
        raise OptionError(f"{prog}: -D {cfg.log_file}: {e.strerror}") from None


def version_text(prog: str) -> str:
    """QEMU's -version layout (tools parse its first line), naming pemu."""
    major, minor, micro = QEMU_COMPAT_VERSION
    return (f"QEMU emulator version {major}.{minor}.{micro} (pemu {PEMU_VERSION}, {prog})\n"
            "pemu: a machine emulator written in Python with QEMU's command line")


def help_text(prog: str) -> str:
    lines = [f"usage: {prog} [options]", ""]
    for n, v, h in _OPTIONS:
        lines.append(f"  -{n}{' ARG' if v else ''}".ljust(22) + h)
    return "\n".join(lines)


def _drive_text(opts: dict[str, str]) -> str:
    """A -drive's keys as the user wrote them (commas in values doubled)."""
    return ",".join(f"{k}={v.replace(',', ',,')}" for k, v in opts.items())


def check_drives(cfg: SystemConfig, prog: str) -> None:
    """A -drive's ``format=`` and ``driver=`` must name a registered block driver
    (QEMU: "-drive file=x,format=xyz: Unknown driver 'xyz'")."""
    for opts in cfg.drives:
        for key in ("format", "driver"):
            if key in opts:
                try:
                    block_driver(opts[key])
                except BlockError as e:
                    raise OptionError(f"{prog}: -drive {_drive_text(opts)}: {e}") from None


def check_types(cfg: SystemConfig, prog: str, arch: str, default_machine: str,
                device_buses: list[str]) -> None:
    """-M, -cpu, -device, -chardev and -drive against the type registry, before anything
    is loaded: the type must exist for this target, and each property must be declared
    (with a value pemu implements, where the type lists them)."""
    check_drives(cfg, prog)
    try:
        apply_memory_backends(cfg, cfg.ram_size_given)
        cfg.dump_guest_core = management_options.take_generic_machine_options(cfg.machine)
    except OptionError as e:
        raise OptionError(f"{prog}: {e}") from None
    machine = cfg.machine.get("type", default_machine)
    try:
        info = lookup(MACHINE, machine, arch)
    except RegistryError:
        names = ", ".join(t.name for t in types(MACHINE, arch))
        raise OptionError(f"{prog}: -M {machine}: unsupported machine type (supported: "
                          f"{names}; -M help lists them)") from None
    try:
        check_options(info, cfg.machine)
    except RegistryError as e:
        raise OptionError(f"{prog}: -M {machine}: {e}") from None
    if cfg.cpu is not None:
        model = cfg.cpu.split(",")[0]  # the properties after it are the board's to check
        try:
            lookup(CPU, model, arch)
        except RegistryError:
            names = ", ".join(t.name for t in types(CPU, arch))
            raise OptionError(f"{prog}: -cpu {model}: unknown CPU model (supported: "
                              f"{names}; -cpu help lists them)") from None
    for dev in cfg.devices:
        try:
            checked_device(dev, device_buses)
        except RegistryError as e:
            names = ", ".join(t.name for t in types(DEVICE, buses=device_buses))
            raise OptionError(f"{prog}: -device {dev.get('driver', '')}: {e} (devices: "
                              f"{names}; -device help lists them)") from None
    for chardev in cfg.chardevs:
        what = f"{prog}: -chardev {chardev.get('backend', '')}"
        check_backend_options(backend_type(chardev.get("backend", ""), what), chardev, what)


def help_request(cfg: SystemConfig, arch: str, device_buses: list[str],
                 log_items: dict[str, str]) -> str | None:
    """The listing a ``help`` value asks for (-M/-cpu/-device/-chardev/-d help,
    -device X,help, -chardev X,help, -drive format=help), from the type registry; None
    when the command line asks for none."""
    if cfg.machine.get("type") == "help":
        return help_listing(MACHINE, arch)
    if any(opts.get("format") == "help" for opts in cfg.drives):
        return supported_formats_line()
    if cfg.cpu == "help":
        return help_listing(CPU, arch)
    for dev in cfg.devices:
        if dev.get("driver") == "help":
            return help_listing(DEVICE, buses=device_buses)
        if "help" in dev:
            try:
                info = lookup(DEVICE, dev.get("driver", ""))
            except RegistryError as e:
                raise OptionError(f"-device {dev.get('driver')}: {e}") from None
            return property_listing(info)
    for text in cfg.netdevs + cfg.nics:
        if text == "help":
            return netdev_help()
        if text.endswith(",help"):
            kind = text.split(",", 1)[0]
            return property_listing(netdev_type(kind, f"-netdev {text}"))
    for chardev in cfg.chardevs:
        if chardev.get("backend") == "help":
            return help_listing(CHARDEV)
        if "help" in chardev:
            try:
                info = lookup(CHARDEV, chardev.get("backend", ""))
            except RegistryError:
                raise OptionError(f"-chardev {chardev.get('backend')}: not a valid char "
                                  "driver name (-chardev help lists them)") from None
            return property_listing(info)
    if "help" in cfg.log_items:
        return "Log items (comma separated):\n" + "\n".join(
            f"{item:<13}{text}" for item, text in sorted(log_items.items()))
    return None


def system_main(argv: list[str] | None, prog: str, run: Callable[[SystemConfig], int],
                arch: str, device_buses: list[str], log_items: dict[str, str]) -> int:
    """The shared ``main`` of the system emulators: parse, answer -help/-version and
    the ``help`` listings, run.

    Command-line problems print one line naming the option and give status 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_system_argv(argv, prog)
        if cfg.show_help:
            print(help_text(prog))
            return 0
        if cfg.show_version:
            print(version_text(prog))
            return 0
        listing = help_request(cfg, arch, device_buses, log_items)
        if listing is not None:
            print(listing)
            return 0
        setup_process(cfg)  # -daemonize forks here: nothing has started a thread yet
        return run(cfg)
    except OptionError as e:
        msg = str(e)
        print(msg if msg.startswith(prog) else f"{prog}: {msg}", file=sys.stderr)
        return 1


def _add_incoming(prog: str, text: str, cfg: SystemConfig) -> None:
    """-incoming URI | defer | '{"channel-type": "main"|"cpr", "addr": {...}}' (QEMU
    10: a cpr-transfer destination names both channels, one -incoming each)."""
    try:
        kind, uri = incoming_option(text)
    except ChannelSpecError as e:
        raise OptionError(f"{prog}: -incoming {text}: {e}") from None
    if kind == CPR_CHANNEL:
        cfg.incoming_cpr = uri
    else:
        cfg.incoming = uri

