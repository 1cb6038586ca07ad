"""pemu-riscv64: run a riscv64 Linux program on this host (qemu-riscv64's interface).

usage: pemu-riscv64 [-L sysroot] [-E VAR=val] [-U VAR] [-0 argv0] [-cpu rv64,...]
                    [-d item,...] [-D logfile] [-strace] [-g port] [-accel tcg[,backend=B]]
                    program [args...]
Environment: QEMU_LD_PREFIX (like -L), QEMU_STRACE (like -strace), QEMU_LOG (like -d),
QEMU_LOG_FILENAME (like -D), QEMU_CPU (like -cpu: rv64|max[,ext=on|off...], -cpu help).
"""

from __future__ import annotations

import os
import sys

from pemu.accel.tcg.log import TCGLog
from pemu.qemuopts.keyval import OptionError, parse_keyval
from pemu.target.riscv.isa import MODELS, CpuOptionError, parse_cpu

from .elf import ElfError
from .process import Options
from .runtime import start_process

PROG = "pemu-riscv64"
_WITH_VALUE = {"-L", "-E", "-U", "-0", "-cpu", "-d", "-D", "-g", "-accel",
               "-pemu-sigign", "-pemu-sigmask", "-s", "-B", "-R", "-seed"}


class UsageError(Exception):
    pass


def _usage() -> str:
    return (f"usage: {PROG} [-L path] [-E var=value] [-U var] [-0 argv0] [-cpu model] "
            "[-d item[,...]] [-D logfile] [-strace] [-g port] [-accel tcg[,backend=B]] "
            "program [args...]\n")


def _check_cpu(spec: str) -> None:
    """``-cpu MODEL[,ext=on|off,...]``, checked before the guest loads."""
    try:
        parse_cpu(spec)
    except CpuOptionError as e:
        raise UsageError(str(e)) from None


def _cpu_help() -> str:
    return "Available CPUs:\n" + "".join(
        f"  {name:<8} {parse_cpu(name).isa_string}\n" for name in MODELS)


def parse_args(argv: list[str]) -> tuple[Options, dict, str, list[str]]:
    opts = Options(prefix=os.environ.get("QEMU_LD_PREFIX") or None,
                   strace=bool(os.environ.get("QEMU_STRACE")))
    if os.environ.get("QEMU_LOG"):
        opts.log_items = os.environ["QEMU_LOG"].split(",")
    opts.log_file = os.environ.get("QEMU_LOG_FILENAME") or None
    if os.environ.get("QEMU_CPU"):
        _check_cpu(os.environ["QEMU_CPU"])
        opts.cpu = os.environ["QEMU_CPU"]
    extra = {"env_set": [], "env_unset": [], "argv0": None, "sigign": [], "sigmask": 0}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        flag = argv[i].lstrip("-")
        flag = "-" + flag
        if argv[i] == "--":
            i += 1
            break
        if flag in _WITH_VALUE:
            if i + 1 >= len(argv):
                raise UsageError(f"option '{argv[i]}' needs an argument")
            value = argv[i + 1]
            i += 2
        else:
            value = None
            i += 1
        if flag == "-L":
            opts.prefix = value
        elif flag == "-E":
            extra["env_set"].extend(v for v in value.split(",") if v)
        elif flag == "-U":
            extra["env_unset"].extend(v for v in value.split(",") if v)
        elif flag == "-0":
            extra["argv0"] = value
        elif flag == "-cpu":
            if value == "help":
                extra["cpu_help"] = True
                return opts, extra, "", []
            _check_cpu(value)
            opts.cpu = value
        elif flag == "-d":
            opts.log_items = [v for v in value.split(",") if v]
        elif flag == "-D":
            opts.log_file = value
        elif flag == "-strace":
            opts.strace = True
        elif flag == "-g":
            extra["gdb"] = value
        elif flag == "-accel":
            try:
                accel = parse_keyval(value, implied_key="accel", option="accel")
            except OptionError as e:
                raise UsageError(str(e)) from None
            if accel.get("accel") != "tcg" or set(accel) - {"accel", "backend"}:
                raise UsageError(f"invalid accelerator {value} (user mode has tcg[,backend=...])")
            opts.tcg_backend = accel.get("backend")
        elif flag == "-pemu-sigign":
            extra["sigign"] = [int(v) for v in value.split(",") if v]
        elif flag == "-pemu-sigmask":
            extra["sigmask"] = int(value, 16)
        elif flag in ("-h", "-help"):
            raise UsageError("")
        elif flag == "-version":
            extra["version"] = True
            return opts, extra, "", []
        elif flag in ("-s", "-B", "-R", "-seed", "-singlestep", "-one-insn-per-tb"):
            pass  # accepted for compatibility; pemu sizes these itself
        else:
            raise UsageError(f"unknown option '{argv[i - (2 if value is not None else 1)]}'")
    if i >= len(argv):
        raise UsageError("")
    return opts, extra, argv[i], argv[i + 1 :]


def _guest_environment(extra: dict) -> list[bytes]:
    env = dict(os.environb)
    for item in extra["env_set"]:
        key, _, value = item.partition("=")
        env[os.fsencode(key)] = os.fsencode(value)
    for key in extra["env_unset"]:
        env.pop(os.fsencode(key), None)
    return [k + b"=" + v for k, v in env.items()]


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    try:
        opts, extra, prog, args = parse_args(argv)
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"{PROG}: {e}\n")
        sys.stderr.write(_usage())
        return 1
    if extra.get("cpu_help"):
        sys.stdout.write(_cpu_help())
        return 0
    if extra.get("version"):
        sys.stdout.write("pemu-riscv64 version 0.1.0 (riscv64 Linux user mode)\n")
        return 0
    if "help" in opts.log_items:
        sys.stdout.write(TCGLog.help_text() + "\n")
        return 0
    return _run(opts, extra, prog, args)


def _run(opts: Options, extra: dict, prog: str, args: list[str]) -> int:
    try:
        return start_process(opts, prog, [extra["argv0"] or prog, *args],
                             _guest_environment(extra), extra["sigign"], extra["sigmask"],
                             gdb=extra.get("gdb"))
    except ElfError as e:
        sys.stderr.write(f"{PROG}: {prog}: {e}\n")
        return 1
    except ValueError as e:  # a bad -d item or -accel backend, found before the guest runs
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"{PROG}: {prog}: {e.strerror or e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
