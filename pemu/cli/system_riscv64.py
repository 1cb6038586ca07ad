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

import signal
import sys

from pemu.cli.options import OptionError
from pemu.cli.system_config import SystemConfig, help_text, parse_system_argv

PROG = "pemu-system-riscv64"
MACHINES = ("virt", "spike")
LOG_ITEMS = {"int", "exec", "in_asm", "op", "op_opt", "guest_errors", "unimp", "stats"}


def _check_config(cfg: SystemConfig) -> str:
    machine = cfg.machine.get("type", "virt")
    if machine not in MACHINES:
        raise OptionError(f"{PROG}: -M {machine}: unsupported machine type "
                          f"(supported: {', '.join(MACHINES)})")
    accel = cfg.accel.get("accel", "tcg")
    if accel != "tcg":
        raise OptionError(f"{PROG}: -accel {accel}: RISC-V guests run only under TCG")
    backend = cfg.accel.get("backend", "python")
    if backend != "python":
        raise OptionError(f"{PROG}: -accel tcg,backend={backend}: only the python backend "
                          "runs system mode")
    if cfg.cpu not in (None, "rv64", "max"):
        raise OptionError(f"{PROG}: -cpu {cfg.cpu}: unknown CPU model (rv64, max)")
    bad = [i for i in cfg.log_items if i not in LOG_ITEMS]
    if bad:
        raise OptionError(f"{PROG}: -d {bad[0]}: unknown log item (known: "
                          f"{', '.join(sorted(LOG_ITEMS))})")
    return machine


def _make_devices(board, cfg: SystemConfig) -> list:
    """-drive and -device into virtio-mmio devices; returns the backends to close."""
    from pemu.block.drive import open_drive
    from pemu.hw.virtio.blk import VirtioBlk
    from pemu.hw.virtio.console import VirtioConsole
    from pemu.hw.virtio.rng import VirtioRng

    drives: dict[str, dict[str, str]] = {}
    for opts in cfg.drives:
        if opts.get("if", "none") not in ("none", "virtio"):
            raise OptionError(f"{PROG}: -drive if={opts['if']}: the virt board has only "
                              "virtio devices (if=virtio, or if=none with -device)")
        did = opts.get("id") or f"drive{len(drives)}"
        if did in drives:
            raise OptionError(f"{PROG}: -drive id={did}: duplicate drive id")
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
                raise OptionError(f"{PROG}: -device {driver}: drive '{did}' not found")
            if did in used:
                raise OptionError(f"{PROG}: -device {driver}: drive '{did}' is already in use")
            used.add(did)
            opts = {k: v for k, v in drives[did].items() if k != "if"}
            if cfg.snapshot:
                opts.setdefault("snapshot", "on")
            backend = open_drive(opts)
            closers.append(backend)
            device = VirtioBlk(backend, serial=dev.get("serial", ""), id=name)
        elif driver == "virtio-rng-device":
            device = VirtioRng(id=name)
        elif driver in ("virtio-serial-device", "virtconsole", "virtio-console-device"):
            chardev_id = dev.get("chardev")
            if not chardev_id:
                raise OptionError(f"{PROG}: -device {driver}: needs chardev=ID")
            device = VirtioConsole(board.chardevs.attach(chardev_id, name), id=name)
        else:
            raise OptionError(f"{PROG}: -device {driver}: not available (virtio-blk-device, "
                              "virtio-rng-device, virtio-serial-device)")
        board.add_virtio(device, name)
    return closers


def _make_log(cfg: SystemConfig):
    from pemu.accel.tcg.log import TCGLog

    items = [i for i in cfg.log_items if i in ("op", "op_opt")]
    return TCGLog(items) if items else None


def run(cfg: SystemConfig, timeout: float | None = None) -> int:
    from pemu.block.errors import BlockError
    from pemu.chardev.base import ChardevError
    from pemu.chardev.mux import set_quit_handler
    from pemu.chardev.registry import ChardevRegistry
    from pemu.hw.riscv.board import BoardError
    from pemu.hw.riscv.boot import BootError

    machine = _check_config(cfg)
    chardevs = ChardevRegistry()
    board = None
    closers: list = []
    old_handlers = {}
    try:
        for opts in cfg.chardevs:
            chardevs.add(opts)
        if machine == "virt":
            from pemu.hw.riscv.virt import VirtBoard

            board = VirtBoard(cfg, chardevs, _make_log(cfg))
            dump = cfg.machine.get("dumpdtb")
            if dump:
                closers = _make_devices(board, cfg)
                board.dump_dtb(dump)
                return 0
        else:
            from pemu.hw.riscv.spike import SpikeBoard

            board = SpikeBoard(cfg, chardevs, _make_log(cfg))
        set_quit_handler(lambda: board.request_exit(0, "quit from the console"))
        if machine == "virt":
            closers = _make_devices(board, cfg)
        board.reset()
        if "stats" in cfg.log_items:
            for hart in board.harts:
                hart.count_insns = True

        def on_signal(signum: int, frame: object) -> None:
            print(f"\r\n{PROG}: terminating on signal {signum}", file=sys.stderr)
            board.request_exit(0, f"signal {signum}")

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:
                pass  # not the main thread (tests calling run() from a thread)
        status = board.run(timeout)
        if "stats" in cfg.log_items:
            _print_stats(board)
        return status
    except (BoardError, BootError, BlockError, ChardevError, ValueError) as e:
        msg = str(e)
        print(msg if msg.startswith(PROG) else f"{PROG}: {msg}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        for c in closers:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real status
                pass
        chardevs.close_all()
        if board is not None:
            board.close()


def _print_stats(board) -> None:
    t = board.translator.stats
    insns = sum(h.insns for h in board.harts)
    print(f"{PROG}: stats: run {board.run_seconds:.2f} s, translated {t['translated']} "
          f"blocks in {t['translate_s']:.2f} s, guest insns {insns}, "
          f"page walks {sum(h.mmu.walks for h in board.harts)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_system_argv(argv, PROG)
        if cfg.show_help:
            print(help_text(PROG))
            return 0
        if cfg.show_version:
            print(f"{PROG} (pemu) 0.1.0")
            return 0
        return run(cfg)
    except OptionError as e:
        msg = str(e)
        print(msg if msg.startswith(PROG) else f"{PROG}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
