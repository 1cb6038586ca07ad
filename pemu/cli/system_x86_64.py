"""pemu-system-x86_64: the microvm board under KVM, with QEMU's command line.

  pemu-system-x86_64 -M microvm,acpi=off -accel kvm -cpu host -m 256M -smp 2 \\
      -kernel bzImage -initrd initrd.gz -append "console=ttyS0" -nographic -no-reboot \\
      -drive file=disk.img,if=none,id=d0,format=raw -device virtio-blk-device,drive=d0
"""

from __future__ import annotations

import sys

from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.vcpu import install_kick_handler
from pemu.chardev.mux import set_quit_handler
from pemu.chardev.registry import ChardevRegistry
from pemu.cli.none_machine import run_none_machine
from pemu.cli.process_setup import startup_done
from pemu.cli.start_state import (
    StartupError,
    receive_cpr_early,
    start_from_snapshot,
    start_incoming,
)
from pemu.cli.system_config import check_types, choose_accel, open_log_file, system_main
from pemu.crypto.objects import user_objects
from pemu.gdbstub.x86_kvm import start_x86_gdbstub
from pemu.hw import all_types  # noqa: F401 - machines, CPU models, devices
from pemu.hw.image_file import ImageFileError, read_image
from pemu.hw.virtio.from_config import VIRTIO_BUS, close_backends, make_virtio_devices
from pemu.hw.virtio.serial_types import VIRTIO_SERIAL_BUS
from pemu.hw.x86.boot_layout import BootError
from pemu.hw.x86.guest_errors import GuestErrorLog
from pemu.hw.x86.microvm import LOW_RAM_MAX, BoardError, Microvm
from pemu.monitor.server import create_monitors
from pemu.monitor.x86_board import MicrovmMonitor
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError
from pemu.sandbox.isolate import IsolationError, isolate
from pemu.target.x86.cpuid import CPUModelError, check_model

PROG = "pemu-system-x86_64"
ARCH = "x86_64"
LOG_ITEMS = {"guest_errors": "log when the guest accesses invalid ports or memory"}
ACCEL_PROPERTIES = {"accel"}
DEVICE_BUSES = [VIRTIO_BUS, VIRTIO_SERIAL_BUS]  # virtio-mmio slots, and the ports of a
# virtio-serial device on one


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        return read_image(path, limit)
    except ImageFileError as e:
        raise OptionError(f"{PROG}: could not load {what} '{path}': {e}") from None


def _check_config(cfg: SystemConfig) -> None:
    check_types(cfg, PROG, ARCH, "microvm", DEVICE_BUSES)
    if (cfg.ram_backend is not None and cfg.ram_backend["qom-type"] != "memory-backend-ram"
            and cfg.ram_size > LOW_RAM_MAX):
        # one backend maps one RAM block: microvm's RAM above 3 GiB is a second one
        raise OptionError(f"{PROG}: -machine memory-backend: a shared (memfd, file) "
                          f"backend is for up to {LOW_RAM_MAX >> 30} GiB of RAM on microvm")
    if cfg.no_shutdown:
        raise OptionError(f"{PROG}: -no-shutdown: stopping instead of exiting at guest "
                          "power-off is not implemented for microvm yet")
    accel = choose_accel(cfg, ("kvm",))
    if accel != "kvm":
        raise OptionError(f"{PROG}: -accel {accel}: x86-64 guests run only under KVM "
                          "(use -accel kvm)")
    unknown = sorted(set(cfg.accel) - ACCEL_PROPERTIES)
    if unknown:
        raise OptionError(f"{PROG}: -accel kvm,{unknown[0]}=...: unknown property")
    try:
        check_model(cfg.cpu)
    except CPUModelError as e:
        raise OptionError(f"{PROG}: {e}") from None
    if not cfg.kernel:
        raise OptionError(f"{PROG}: no kernel: microvm boots only with -kernel")
    bad = [i for i in cfg.log_items if i not in LOG_ITEMS]
    if bad:
        raise OptionError(f"{PROG}: -d {bad[0]}: unknown log item (known: "
                          f"{', '.join(sorted(LOG_ITEMS))})")


def _make_devices(board, cfg: SystemConfig) -> list:
    return make_virtio_devices(board, cfg, PROG, "microvm", DEVICE_BUSES)


def run(cfg: SystemConfig, timeout: float | None = None) -> int:
    if cfg.machine.get("type") == "none":
        check_types(cfg, PROG, ARCH, "microvm", [VIRTIO_BUS])
        return run_none_machine(cfg, PROG, ARCH, choose_accel(cfg, ("kvm",)), timeout)
    _check_config(cfg)
    kernel = _read(cfg.kernel, "kernel", cfg.ram_size)
    initrd = _read(cfg.initrd, "initrd", cfg.ram_size) if cfg.initrd else None
    log_stream = open_log_file(cfg, PROG)
    log = GuestErrorLog("guest_errors" in cfg.log_items, log_stream)
    chardevs = ChardevRegistry()
    board = None
    monitors = None
    gdb_server = None
    closers: list = []
    cpr = None
    try:
        cpr = receive_cpr_early(cfg)  # a live update: the old pemu's descriptors first
        # secrets, TLS credentials, authz first: drives, chardevs and monitors use them
        user_objects().sync(cfg.objects)
        for opts in cfg.chardevs:
            chardevs.add(opts)
        install_kick_handler()
        board = Microvm(cfg, log, chardevs)
        set_quit_handler(lambda: board.request_exit(0, "quit from the console"))
        closers = _make_devices(board, cfg)
        board.load(kernel, initrd, cfg.append)
        autostart = not cfg.start_stopped
        if cfg.incoming:
            cfg.start_stopped = True  # the vCPUs wait until the state has arrived
        machine = MicrovmMonitor(board, cfg)
        if cfg.incoming:  # listening before QMP answers: a client may migrate at once
            start_incoming(machine, cfg, autostart, PROG, cpr)
            cpr = None  # the incoming migration owns it now
        monitors = create_monitors(cfg, machine, chardevs)
        if cfg.gdb:
            _, gdb_server = start_x86_gdbstub(machine, cfg.gdb)
        if cfg.loadvm:
            start_from_snapshot(machine, cfg.loadvm)
        isolate(cfg)  # -chroot, -runas, -sandbox: everything is open, nothing runs yet
        startup_done()  # -daemonize: the parent returns now
        status = board.run(timeout)
        machine.board_exited()
        if board.error:
            print(f"{PROG}: guest cannot run: {board.error}", file=sys.stderr)
        return status
    except (BoardError, BootError, KVMError, IsolationError, ValueError, StartupError) as e:
        msg = str(e)
        print(msg if msg.startswith(PROG) else f"{PROG}: {msg}", file=sys.stderr)
        if cpr is not None:  # a live update: the old pemu says why, and runs on
            cpr.close(f"the new pemu did not start: {msg}")
        return 1
    finally:
        if cpr is not None:
            cpr.close()
        if board is not None:
            board.request_exit(0)
        if gdb_server is not None:
            gdb_server.close()
        if monitors is not None:
            monitors.close()
        close_backends(closers)
        chardevs.close_all()
        if board is not None:
            board.close()
        if log_stream is not None:
            log_stream.close()


def main(argv: list[str] | None = None) -> int:
    return system_main(argv, PROG, run, ARCH, DEVICE_BUSES, LOG_ITEMS)


if __name__ == "__main__":
    sys.exit(main())
