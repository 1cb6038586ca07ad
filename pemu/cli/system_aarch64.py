"""pemu-system-aarch64: QEMU's Arm ``virt`` board under TCG.

  pemu-system-aarch64 -M virt -cpu cortex-a57 -m 1G -nographic -kernel Image \\
      -initrd initramfs.cpio.gz -append "console=ttyAMA0 earlycon"
  pemu-system-aarch64 -M virt -cpu cortex-a57 -nographic -kernel baremetal.elf

The process exits with status 0 when the guest powers off (PSCI SYSTEM_OFF); SIGINT
and SIGTERM stop the guest cleanly.  Parsing, ``-help`` and the type checks are the
shared ones of pemu/cli/system_config.py.
"""

from __future__ import annotations

import signal
import sys

from pemu.accel.tcg.log import LOG_ITEMS as LOG_DESCRIPTIONS
from pemu.accel.tcg.log import TCGLog
from pemu.block.errors import BlockError
from pemu.chardev.base import ChardevError
from pemu.chardev.mux import set_quit_handler
from pemu.chardev.registry import ChardevRegistry
from pemu.cli.none_machine import run_none_machine
from pemu.cli.start_state import StartupError, start_from_snapshot, start_incoming
from pemu.cli.system_config import check_types, open_log_file, system_main
from pemu.cli.tcg_options import check_tcg_options
from pemu.gdbstub.aarch64_system import start_aarch64_gdbstub
from pemu.hw import all_types  # noqa: F401 - machines, CPU models, devices
from pemu.hw.ahci.types import IDE_BUS
from pemu.hw.arm.boot import BootError
from pemu.hw.arm.virt import ArmVirtBoard
from pemu.hw.nvme.types import NVME_BUS
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.scsi.bus import SCSI_BUS
from pemu.hw.tcg_board import BoardError
from pemu.hw.virtio.from_config import VIRTIO_BUS, close_backends, make_virtio_devices
from pemu.hw.virtio.serial_types import VIRTIO_SERIAL_BUS
from pemu.monitor.arm_board import ArmBoardMonitor
from pemu.monitor.server import create_monitors
from pemu.qemuopts.config import SystemConfig

PROG = "pemu-system-aarch64"
ARCH = "aarch64"
LOG_ITEMS = {"int", "in_asm", "op", "op_opt", "out_asm"}
DEVICE_BUSES = [VIRTIO_BUS, PCI_BUS, NVME_BUS, IDE_BUS, SCSI_BUS, VIRTIO_SERIAL_BUS]  # the
# virtio-mmio slots, the PCIe root bus, and the buses of devices plugged into those


def _check_config(cfg: SystemConfig) -> str:
    check_types(cfg, PROG, ARCH, "virt", DEVICE_BUSES)
    check_tcg_options(cfg, PROG, "AArch64", LOG_ITEMS)
    return cfg.machine.get("type", "virt")


def run(cfg: SystemConfig, timeout: float | None = None) -> int:
    machine = _check_config(cfg)
    if machine == "none":
        return run_none_machine(cfg, PROG, ARCH, "tcg", timeout)
    chardevs = ChardevRegistry()
    board = None
    monitored = None
    monitors = None
    closers: list = []
    old_handlers = {}
    try:
        for opts in cfg.chardevs:
            chardevs.add(opts)
        board = ArmVirtBoard(cfg, chardevs, TCGLog(cfg.log_items, open_log_file(cfg, PROG)))
        closers = make_virtio_devices(board, cfg, PROG, "the virt board", DEVICE_BUSES)
        dump = cfg.machine.get("dumpdtb")
        if dump:
            board.dump_dtb(dump)
            return 0
        set_quit_handler(lambda: board.request_exit(0, "quit from the console"))
        board.reset()
        # -qmp/-monitor/-mon, and -gdb/-s (with -S the CPUs wait for cont or gdb)
        autostart = not cfg.start_stopped
        if cfg.incoming:
            cfg.start_stopped = True  # the CPUs wait until the state has arrived
        monitored = ArmBoardMonitor(board, cfg)
        if cfg.incoming or cfg.incoming_cpr:  # listening before QMP answers
            start_incoming(monitored, cfg, autostart, PROG)
        monitors = create_monitors(cfg, monitored, chardevs)
        if cfg.gdb:
            start_aarch64_gdbstub(monitored, cfg.gdb)
        if cfg.loadvm:
            start_from_snapshot(monitored, cfg.loadvm)

        def on_signal(signum: int, frame: object) -> None:
            board.request_exit(0, f"signal {signum}")

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:
                pass  # not the main thread (tests calling run() from a thread)
        return board.run(timeout)
    except (BoardError, BootError, BlockError, ChardevError, ValueError, StartupError) as e:
        msg = str(e)
        print(msg if msg.startswith(PROG) else f"{PROG}: {msg}", file=sys.stderr)
        return 1
    finally:
        if monitored is not None:
            monitored.board_exited()
        if monitors is not None:
            monitors.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        close_backends(closers)
        chardevs.close_all()
        if board is not None:
            board.close()


def main(argv: list[str] | None = None) -> int:
    return system_main(argv, PROG, run, ARCH, DEVICE_BUSES,
                       {item: LOG_DESCRIPTIONS[item] for item in LOG_ITEMS})


if __name__ == "__main__":
    sys.exit(main())
