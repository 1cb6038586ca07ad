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
