"""pemu-riscv64: run a riscv64 Linux program on this host (qemu-riscv64's interface).

usage: pemu-riscv64 [-L sysroot] [-E VAR=val] [-U VAR] [-0 argv0] [-cpu rv64,...] [-r release]
                    [-d item,...] [-D logfile] [-strace] [-g port] [-accel tcg[,backend=B]]
                    program [args...]
Every option can also come from the environment, as in QEMU (``ENV_OPTIONS``): PEMU_NAME,
or QEMU's QEMU_NAME so that existing setups (binfmt_misc, sbuild, containers) work
unchanged; the command line wins over both, PEMU_ over QEMU_.  ``-cpu`` takes
rv64|max[,ext=on|off...] and ``-cpu help``.

Started by binfmt_misc with the ``P`` flag, the kernel passes the original argv[0] after
the program path.  It says so in AT_FLAGS only to an ELF interpreter, and this one is a
Python script, so ``pemu-riscv64-binfmt-P`` (``binfmt_main``) is the entry point that
pemu-binfmt registers for ``P``; AT_FLAGS is still honoured (``host_auxv.py``) for an ELF
wrapper such as Debian's ``riscv64-binfmt-P``, which does the same.
"""

from __future__ import annotations

import os
import sys

from pemu.accel.tcg.log import TCGLog
from pemu.qemuopts.keyval import OptionError, parse_keyval

from .arches import ARCHES
from .elf import ElfError
from .host_auxv import binfmt_program_fd, host_auxv, started_by_binfmt_with_argv0
from .process import Options
from .runtime import start_process
from .signals import inherited_host_state

PROG = "pemu-riscv64"  # the riscv64 entry point; messages name the running one
# Options that take a value, and for each option its environment variable (without the
# PEMU_/QEMU_ prefix), as QEMU's linux-user names them.
_WITH_VALUE = {"-L", "-E", "-U", "-0", "-cpu", "-d", "-D", "-g", "-accel", "-r",
               "-pemu-sigign", "-pemu-sigmask", "-s", "-B", "-R", "-seed", "-p"}
ENV_OPTIONS = {
    "-L": "LD_PREFIX", "-s": "STACK_SIZE", "-cpu": "CPU", "-E": "SET_ENV",
    "-U": "UNSET_ENV", "-0": "ARGV0", "-r": "UNAME", "-B": "GUEST_BASE",
    "-R": "RESERVED_VA", "-d": "LOG", "-D": "LOG_FILENAME", "-g": "GDB",
    "-strace": "STRACE", "-singlestep": "SINGLESTEP", "-seed": "RAND_SEED",
    "-p": "PAGESIZE",
}


class UsageError(Exception):
    pass


def _prog(arch: str) -> str:
    return f"pemu-{arch}"


def _usage(arch: str = "riscv64") -> str:
    return (f"usage: {_prog(arch)} [-L path] [-E var=value] [-U var] [-0 argv0] [-cpu model] "
            "[-r release] [-d item[,...]] [-D logfile] [-strace] [-g port] "
            "[-accel tcg[,backend=B]] program [args...]\n")


def _check_cpu(spec: str, arch: str) -> None:
    """``-cpu MODEL[,ext=on|off,...]``, checked before the guest loads."""
    try:
        ARCHES[arch].make_target(spec)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _environment_options(environ: dict[str, str]) -> list[tuple[str, str | None]]:
    """(option, value) pairs from PEMU_*/QEMU_* variables, PEMU_ taking precedence."""
    pairs: list[tuple[str, str | None]] = []
    for flag, name in ENV_OPTIONS.items():
        value = environ.get("PEMU_" + name, environ.get("QEMU_" + name))
        if value is None:
            continue
        pairs.append((flag, value if flag in _WITH_VALUE else None))
    return pairs


def _command_line_options(argv: list[str]) -> tuple[list[tuple[str, str | None]], int]:
    """(option, value) pairs up to the program name, and the program's index in argv."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] == "--":
            return pairs, i + 1
        flag = "-" + argv[i].lstrip("-")
        if flag in _WITH_VALUE:
            if i + 1 >= len(argv):
                raise UsageError(f"option '{argv[i]}' needs an argument")
            pairs.append((flag, argv[i + 1]))
            i += 2
        else:
            pairs.append((flag, None))
            i += 1
        if flag in ("-h", "-help", "-version"):
            break
    return pairs, i


def _apply(opts: Options, extra: dict, flag: str, value: str | None) -> None:
    if flag == "-L":
        opts.prefix = value or None
    elif flag == "-E":
        extra["env_set"].extend(v for v in value.split(",") if v)
    elif flag == "-U":
        extra["env_unset"].extend(v for v in value.split(",") if v)
    elif flag == "-0":
        extra["argv0"] = value
    elif flag == "-cpu":
        if value == "help":
            extra["cpu_help"] = True
            return
        _check_cpu(value, opts.arch)
        opts.cpu = value
    elif flag == "-r":
        opts.uname_release = value
    elif flag == "-d":
        opts.log_items = [v for v in value.split(",") if v]
    elif flag == "-D":
        opts.log_file = value or None
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
    elif flag in ("-s", "-B", "-R", "-seed", "-p", "-singlestep", "-one-insn-per-tb"):
        pass  # accepted for compatibility; pemu sizes these itself
    else:
        raise UsageError(f"unknown option '{flag}'")


def parse_args(argv: list[str], environ: dict[str, str] | None = None,
               auxv: dict[int, int] | None = None, preserved_argv0: bool = False,
               arch: str = "riscv64") -> tuple[Options, dict, str, list[str]]:
    """Options from the environment, then the command line, then what binfmt_misc said."""
    opts = Options(arch=arch)
    # the signal state pemu was started with is the guest's, unless an execve (reexec)
    # or the binfmt server says what the caller's was
    sigmask, sigign = inherited_host_state()
    extra = {"env_set": [], "env_unset": [], "argv0": None, "sigign": sigign,
             "sigmask": sigmask, "program_fd": None}
    pairs, i = _command_line_options(argv)
    for flag, value in [*_environment_options(os.environ if environ is None else environ),
                        *pairs]:
        _apply(opts, extra, flag, value)
    if extra.get("version") or extra.get("cpu_help"):
        return opts, extra, "", []
    if i >= len(argv):
        raise UsageError("")
    prog, args = argv[i], argv[i + 1 :]
    auxv = host_auxv() if auxv is None else auxv
    if (preserved_argv0 or started_by_binfmt_with_argv0(auxv)) and args:
        # flag P: [program path, original argv[0], arguments...]
        preserved, args = args[0], args[1:]
        if extra["argv0"] is None:
            extra["argv0"] = preserved
    extra["program_fd"] = binfmt_program_fd(auxv)
    return opts, extra, prog, args


def _guest_environment(extra: dict) -> list[bytes]:
    env = dict(os.environb)
    for item in extra["env_set"]:
        key, _, value = item.partition("=")
        env[os.fsencode(key)] = os.fsencode(value)
    for key in extra["env_unset"]:
        env.pop(os.fsencode(key), None)
    return [k + b"=" + v for k, v in env.items()]


def main(argv: list[str] | None = None, preserved_argv0: bool = False,
         auxv: dict[int, int] | None = None, exec_natively: bool = False,
         arch: str = "riscv64") -> int:
    """``auxv``: what binfmt_misc said (AT_FLAGS, AT_EXECFD) when it is not this
    process's own auxiliary vector (the binfmt server passes the launcher's).
    ``exec_natively``: a guest execve of a foreign program goes to the kernel, whose
    binfmt_misc entry brings it back to pemu (the server's children do this: inside a
    chroot there is no Python to start a new pemu with)."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        opts, extra, prog, args = parse_args(argv, auxv=auxv,
                                             preserved_argv0=preserved_argv0, arch=arch)
        opts.exec_natively = exec_natively
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"{_prog(arch)}: {e}\n")
        sys.stderr.write(_usage(arch))
        return 1
    if extra.get("cpu_help"):
        sys.stdout.write(ARCHES[arch].cpu_help())
        return 0
    if extra.get("version"):
        sys.stdout.write(f"{_prog(arch)} version 0.1.0 ({arch} Linux user mode)\n")
        return 0
    if "help" in opts.log_items:
        sys.stdout.write(TCGLog.help_text() + "\n")
        return 0
    return _run(opts, extra, prog, args)


def _run(opts: Options, extra: dict, prog: str, args: list[str]) -> int:
    try:
        return start_process(opts, prog, [extra["argv0"] or prog, *args],
                             _guest_environment(extra), extra["sigign"], extra["sigmask"],
                             gdb=extra.get("gdb"), program_fd=extra["program_fd"])
    except ElfError as e:
        sys.stderr.write(f"{_prog(opts.arch)}: {prog}: {e}\n")
        return 1
    except ValueError as e:  # a bad -d item or -accel backend, found before the guest runs
        sys.stderr.write(f"{_prog(opts.arch)}: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"{_prog(opts.arch)}: {prog}: {e.strerror or e}\n")
        return 1


def binfmt_main() -> int:
    """pemu-riscv64-binfmt-P: the interpreter binfmt_misc runs with the ``P`` flag, whose
    arguments are always [program path, original argv[0], arguments...]."""
    return main(preserved_argv0=True)


def main_aarch64(argv: list[str] | None = None) -> int:
    """pemu-aarch64: an arm64 Linux program, with pemu-riscv64's options."""
    return main(argv, arch="aarch64")


def binfmt_main_aarch64() -> int:
    """pemu-aarch64-binfmt-P: binfmt_main for arm64 programs."""
    return main(preserved_argv0=True, arch="aarch64")


if __name__ == "__main__":
    sys.exit(main())
