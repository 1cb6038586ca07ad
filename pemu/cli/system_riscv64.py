"""pemu-system-riscv64: the RISC-V ``virt`` and ``spike`` boards under TCG.

  pemu-system-riscv64 -M virt -m 256M -nographic -kernel Image \\
      -initrd initramfs.cpio.gz -append "console=ttyS0"
  pemu-system-riscv64 -M virt -bios none -kernel baremetal.elf -nographic
  pemu-system-riscv64 -M spike -bios none -kernel rv64ui-p-add   # HTIF; exit status

The process exits with the guest's status: 0 for a clean power-off, the code written
to the SiFive test finisher or HTIF otherwise; SIGINT and SIGTERM stop the guest
cleanly (disks flushed and closed, terminal restored).
"""

from __future__ import annotations

import contextlib
import signal
import sys

from pemu.accel.tcg.log import LOG_ITEMS as LOG_DESCRIPTIONS
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.tb_cache import hurry_exit_saves
from pemu.block.errors import BlockError
from pemu.chardev.base import ChardevError
from pemu.chardev.mux import set_quit_handler
from pemu.chardev.registry import ChardevRegistry
from pemu.cli.none_machine import run_none_machine
from pemu.cli.process_setup import startup_done
from pemu.cli.prompt_exit import exit_promptly
from pemu.cli.start_state import (
    StartupError,
    receive_cpr_early,
    start_from_snapshot,
    start_incoming,
)
from pemu.cli.system_config import check_types, open_log_file, system_main
from pemu.cli.tcg_options import check_tcg_options
from pemu.crypto.objects import user_objects
from pemu.gdbstub.riscv_system import start_system_gdbstub
from pemu.hw import all_types  # noqa: F401 - machines, CPU models, devices
from pemu.hw.ahci.types import IDE_BUS
from pemu.hw.nvme.types import NVME_BUS
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.riscv.board import BoardError
from pemu.hw.riscv.boot import BootError
from pemu.hw.riscv.spike import SpikeBoard
from pemu.hw.riscv.virt import VirtBoard
from pemu.hw.scsi.bus import SCSI_BUS
from pemu.hw.virtio.from_config import VIRTIO_BUS, close_backends, make_virtio_devices
from pemu.hw.virtio.serial_types import VIRTIO_SERIAL_BUS
from pemu.monitor.riscv_board import RiscvBoardMonitor
from pemu.monitor.server import create_monitors
from pemu.qemuopts.config import SystemConfig
from pemu.sandbox.isolate import IsolationError, isolate

PROG = "pemu-system-riscv64"
ARCH = "riscv64"
LOG_ITEMS = {"int", "in_asm", "op", "op_opt", "stats"}  # what -d takes in system mode
SIGNAL_EXIT_SAVE_S = 1.0  # what a SIGTERM/SIGINT exit may spend saving translations
_terminating_signals: list[int] = []  # SIGTERM/SIGINT received by run()'s handler
DEVICE_BUSES = [VIRTIO_BUS, PCI_BUS, NVME_BUS, IDE_BUS, SCSI_BUS]  # virt's virtio-mmio
# slots, its PCIe root bus, the NVMe controllers' namespaces, AHCI ports, SCSI buses
DEVICE_BUSES.append(VIRTIO_SERIAL_BUS)  # virtserialport/virtconsole on a virtio-serial


def _check_config(cfg: SystemConfig) -> str:
    check_types(cfg, PROG, ARCH, "virt", DEVICE_BUSES)
    machine = cfg.machine.get("type", "virt")
    check_tcg_options(cfg, PROG, "RISC-V", LOG_ITEMS, mttcg=True)
    return machine


def _make_devices(board, cfg: SystemConfig) -> list:
    return make_virtio_devices(board, cfg, PROG, "the virt board", DEVICE_BUSES)


def _make_log(cfg: SystemConfig) -> TCGLog:
    """The -d log, written to -D's file or stderr."""
    return TCGLog([i for i in cfg.log_items if i != "stats"], open_log_file(cfg, PROG))


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
    cpr = None
    try:
        cpr = receive_cpr_early(cfg)  # a live update: the old pemu's descriptors first
        # secrets, TLS credentials, authz first: drives, chardevs and monitors use them
        user_objects().sync(cfg.objects)
        for opts in cfg.chardevs:
            chardevs.add(opts)
        if machine == "virt":
            board = VirtBoard(cfg, chardevs, _make_log(cfg))
            dump = cfg.machine.get("dumpdtb")
            if dump:
                closers = _make_devices(board, cfg)
                board.dump_dtb(dump)
                return 0
        else:
            board = SpikeBoard(cfg, chardevs, _make_log(cfg))
        set_quit_handler(lambda: board.request_exit(0, "quit from the console"))
        if machine == "virt":
            closers = _make_devices(board, cfg)
        board.reset()
        if "stats" in cfg.log_items and not board.translator.native:
            # native code is not instrumented: its report counts exits and helper calls
            for hart in board.harts:
                hart.count_insns = True
        # -qmp/-monitor/-mon, and -gdb/-s (with -S the harts wait for cont or gdb)
        autostart = not cfg.start_stopped
        if cfg.incoming:
            cfg.start_stopped = True  # the harts wait until the state has arrived
        monitored = RiscvBoardMonitor(board, cfg)
        if cfg.incoming or cfg.incoming_cpr:  # listening before QMP answers
            start_incoming(monitored, cfg, autostart, PROG, cpr)
            cpr = None  # the incoming migration owns it now
        monitors = create_monitors(cfg, monitored, chardevs)
        if cfg.gdb:
            start_system_gdbstub(monitored, cfg.gdb)
        if cfg.loadvm:
            start_from_snapshot(monitored, cfg.loadvm)
        isolate(cfg)  # -chroot, -runas, -sandbox: everything is open, nothing runs yet
        startup_done()  # -daemonize: the parent returns now

        def on_signal(signum: int, frame: object) -> None:
            # stop first: when stderr is a pipe whose reader died (the usual reason for
            # a SIGTERM), the message cannot be written and must not keep pemu running
            board.request_exit(0, f"signal {signum}")
            # QEMU ends at once; saving this run's translations must not hold the exit
            hurry_exit_saves(SIGNAL_EXIT_SAVE_S)
            _terminating_signals.append(signum)
            with contextlib.suppress(OSError):
                print(f"\r\n{PROG}: terminating on signal {signum}", file=sys.stderr)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:
                pass  # not the main thread (tests calling run() from a thread)
        status = board.run(timeout)
        if "stats" in cfg.log_items:
            _print_stats(board)
        return status
    except (BoardError, BootError, BlockError, ChardevError, IsolationError, ValueError,
            StartupError) as e:
        msg = str(e)
        print(msg if msg.startswith(PROG) else f"{PROG}: {msg}", file=sys.stderr)
        if cpr is not None:  # a live update: the old pemu says why, and runs on
            cpr.close(f"the new pemu did not start: {msg}")
        return 1
    finally:
        if cpr is not None:  # not started: the old pemu hears it and runs on
            cpr.close()
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


def _print_stats(board) -> None:
    translator = board.translator
    t = translator.stats
    if translator.native:
        n = translator.backend.stats
        counted = (f"exits to python: {n['exits_miss']} misses, {n['exits_exc']} "
                   f"exceptions, {n['exits_req']} requests; {n['helper_calls']} helper calls; "
                   f"{n['chained']} chains, {n['code_resets']} code buffer resets")
    else:
        counted = f"guest insns {sum(h.insns for h in board.harts)}"
    print(f"{PROG}: stats: backend {translator.backend_name}, run {board.run_seconds:.2f} s, "
          f"translated {t['translated']} blocks in {t['translate_s']:.2f} s "
          f"({t.get('cached', 0)} from the translation cache), {counted}, "
          f"inline TLB misses {sum(h.mmu.slow_accesses for h in board.harts)}, "
          f"native page walks {sum(h.mmu.native_walks for h in board.harts)}, "
          f"native fetch walks {sum(h.mmu.native_fetch_walks for h in board.harts)}, "
          f"native page flushes {sum(h.mmu.native_page_flushes for h in board.harts)}, "
          f"page walks {sum(h.regime.walks for h in board.harts)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    status = system_main(argv, PROG, run, ARCH, DEVICE_BUSES,
                         {item: LOG_DESCRIPTIONS[item] for item in LOG_ITEMS})
    if _terminating_signals:  # the machine is closed: skip the interpreter's teardown
        exit_promptly(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
