"""What a system emulator's command line said, in QEMU's terms: ``SystemConfig``.

Boards, device factories and the monitor read it; ``pemu.cli.system_config`` fills it
from argv.  It lives here, below everything, so that no layer needs the CLI to know
what it was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    blockdevs: list[dict[str, str]] = field(default_factory=list)  # -blockdev nodes
    devices: list[dict[str, str]] = field(default_factory=list)
    chardevs: list[dict[str, str]] = field(default_factory=list)
    serial: list[str] = field(default_factory=list)
    monitor: list[str] = field(default_factory=list)
    mon: list[dict[str, str]] = field(default_factory=list)
    qmp: list[str] = field(default_factory=list)
    objects: list[dict[str, str]] = field(default_factory=list)
    netdevs: list[str] = field(default_factory=list)  # -netdev text (pemu/net/options.py)
    nics: list[str] = field(default_factory=list)  # -nic text
    nets: list[str] = field(default_factory=list)  # legacy -net text (pemu/net/legacy.py)
    nographic: bool = False
    no_reboot: bool = False
    dump_guest_core: bool = True  # -machine dump-guest-core=off: RAM not in core dumps
    no_shutdown: bool = False  # guest power-off stops the machine; pemu stays
    snapshot: bool = False
    gdb: str | None = None
    start_stopped: bool = False
    log_items: list[str] = field(default_factory=list)
    log_file: str | None = None
    name: str | None = None
    sandbox: dict[str, str] | None = None
    runas: str | None = None   # -runas / -run-with user=
    chroot: str | None = None  # -chroot / -run-with chroot=
    show_version: bool = False
    loadvm: str | None = None  # -loadvm NAME: restore a snapshot at start
    incoming: str | None = None  # -incoming URI: wait for a migration stream
    show_help: bool = False
    fsdevs: list[dict[str, str]] = field(default_factory=list)  # -fsdev (and -virtfs) options
    # the process around the machine (pemu/cli/process_setup.py)
    nodefaults: bool = False  # no default serial/monitor: only what the line names
    daemonize: bool = False
    pidfile: str | None = None
    debug_threads: bool = False  # -name ...,debug-threads=on
    msg_timestamp: bool = False  # -msg timestamp=on
    msg_guest_name: bool = False  # -msg guest-name=on
    uuid: str | None = None
    ram_size_given: bool = False  # -m (a memory backend's size must then agree)
    accel_given: bool = False  # -accel or -enable-kvm (wins over -machine accel=)
    # the -object memory-backend= names (the guest's RAM: object-del refuses it)
    ram_backend: dict[str, str] | None = None
    incoming_cpr: str | None = None  # -incoming '{"channel-type":"cpr",...}': its URI

    def first_serial(self, default: str = "stdio") -> str:
        """The first serial port's backend: the first -serial; with -nodefaults none
        (QEMU makes the port with nothing behind it); else the board's ``default``."""
        if self.serial:
            return self.serial[0]
        return "null" if self.nodefaults else default
