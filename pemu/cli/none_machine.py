"""``-machine none`` on any system emulator: the monitors, character devices and
``-object``s, and no guest (pemu/hw/none_machine.py).

This is what libvirt starts to probe an emulator:
``-S -no-user-config -nodefaults -nographic -machine none,accel=kvm:tcg
-qmp unix:PATH,server=on,wait=off -pidfile PIDFILE -daemonize``.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from pemu.chardev.base import ChardevError
from pemu.chardev.registry import ChardevRegistry
from pemu.cli.process_setup import startup_done
from pemu.crypto.objects import user_objects
from pemu.monitor.none_machine import NoneMachine
from pemu.monitor.server import create_monitors
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError


def _refuse_guest_options(cfg: SystemConfig, prog: str) -> None:
    """What needs a CPU or RAM is refused, not dropped (QEMU refuses -kernel too)."""
    for option, given in (("-kernel", cfg.kernel), ("-initrd", cfg.initrd),
                          ("-device", cfg.devices), ("-drive", cfg.drives),
                          ("-blockdev", cfg.blockdevs),
                          ("-netdev", cfg.netdevs or cfg.nics or cfg.nets),
                          ("-loadvm", cfg.loadvm), ("-incoming", cfg.incoming),
                          ("-gdb", cfg.gdb)):
        if given:
            raise OptionError(f"{prog}: {option}: the none machine has no CPU, RAM or "
                              "bus for it")


def run_none_machine(cfg: SystemConfig, prog: str, target: str, accel: str,
                     timeout: float | None = None) -> int:
    _refuse_guest_options(cfg, prog)
    chardevs = ChardevRegistry()
    machine = NoneMachine(cfg, target, accel)
    monitors = None
    old_handlers = {}
    try:
        user_objects().sync(cfg.objects)
        for opts in cfg.chardevs:
            chardevs.add(opts)
        monitors = create_monitors(cfg, machine, chardevs)
        startup_done()

        def on_signal(signum: int, frame: object) -> None:
            machine.request_exit()
            with contextlib.suppress(OSError):
                print(f"{prog}: terminating on signal {signum}", file=sys.stderr)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:
                pass  # not the main thread (tests calling this from a thread)
        return machine.run(timeout)
    except (ChardevError, ValueError) as e:
        msg = str(e)
        print(msg if msg.startswith(prog) else f"{prog}: {msg}", file=sys.stderr)
        return 1
    finally:
        if monitors is not None:
            monitors.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        chardevs.close_all()
