"""pemu-binfmt: register pemu with the kernel's binfmt_misc for foreign ELF programs.

Once registered, the kernel itself starts ``pemu-riscv64`` whenever a riscv64 ELF is
executed, so a foreign root filesystem can be entered with a plain ``chroot``, as with
Debian's ``qemu-user-binfmt``.  The magic and mask are the ones QEMU registers (ELF
class 64, little endian, e_machine EM_RISCV, executables and shared objects), so pemu
and QEMU claim exactly the same files.

The flags (Documentation/admin-guide/binfmt-misc.rst):

- ``P`` preserve argv[0]: the kernel passes the original argv[0] after the program path.
  It flags that in AT_FLAGS only for an ELF interpreter; pemu's interpreters are Python
  scripts, so ``P`` registers ``pemu-ARCH-binfmt-P``, whose arguments are always laid
  out that way (Debian's QEMU does the same with its ``ARCH-binfmt-P`` wrapper).
- ``O`` open the program for the interpreter (``AT_EXECFD``) and ``C`` compute
  credentials from it (implies ``O``): the kernel refuses both with a script as the
  interpreter, so they need an ELF wrapper given with ``--interpreter``.
- ``F`` open the interpreter at registration, so that it is found from inside chroots and
  mount namespaces.  The Python that the script names on its ``#!`` line is still looked
  up at exec time, inside the chroot.

Two ways to register (docs/USER.md):

- ``--install``: the interpreter is the ``pemu-riscv64`` script; nothing else runs, and
  every process pays a Python start.
- ``--install --server``: the interpreter is a generated static launcher
  (binfmt_launcher.py) that hands each program to a resident ``pemu-binfmt --serve``
  (binfmt_server.py): processes start in milliseconds, chroots need no Python, and
  ``O``/``C`` work (the default flags are then ``POCF``, as for qemu-user-static).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .binfmt_launcher import build_launcher, socket_name
from .binfmt_server import serve

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
FLAGS = "POCF"


@dataclass(frozen=True)
class ForeignFormat:
    """One guest architecture as binfmt_misc sees it: ELF header bytes and mask."""

    name: str          # entry name, also the pemu program suffix
    magic: bytes
    mask: bytes


# ELF header: \x7fELF, class 2 (64-bit), data 1 (LE), version 1, OS ABI ignored,
# padding, e_type 2 or 3 (EXEC/DYN: the mask's 0xfe), e_machine 243 (EM_RISCV).
RISCV64 = ForeignFormat(
    "riscv64",
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
)
# the same with e_machine 183 (EM_AARCH64)
AARCH64 = ForeignFormat(
    "aarch64",
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
)
FORMATS = {f.name: f for f in (RISCV64, AARCH64)}


class BinfmtError(Exception):
    pass


def _escape(data: bytes) -> str:
    # \xHH for every byte: the register parser takes that form for any value, and it
    # never collides with the ':' field separator.
    return "".join(f"\\x{b:02x}" for b in data)


def register_line(entry: str, fmt: ForeignFormat, interpreter: str, flags: str) -> str:
    """The string written to binfmt_misc's ``register`` file (and to binfmt.d files)."""
    if ":" in entry or "/" in entry or not entry:
        raise BinfmtError(f"invalid entry name '{entry}'")
    if not os.path.isabs(interpreter) or ":" in interpreter:
        raise BinfmtError(f"the interpreter must be an absolute path without ':' "
                          f"('{interpreter}')")
    bad = set(flags) - set(FLAGS)
    if bad:
        raise BinfmtError(f"unknown flag(s) {''.join(sorted(bad))}: the flags are "
                          f"{', '.join(FLAGS)}")
    if "C" in flags and "O" not in flags:
        flags += "O"  # the kernel implies it; say so in the entry too
    return f":{entry}:M:0:{_escape(fmt.magic)}:{_escape(fmt.mask)}:{interpreter}:{flags}"


def default_interpreter(fmt: ForeignFormat, flags: str) -> str:
    if set(flags) & set("OC"):
        raise BinfmtError("the O and C flags need an ELF interpreter (the kernel refuses "
                          "them with a script, and pemu's are Python scripts); give an "
                          "ELF wrapper with --interpreter")
    program = f"pemu-{fmt.name}" + ("-binfmt-P" if "P" in flags else "")
    found = shutil.which(program)
    if found is None:
        raise BinfmtError(f"{program} is not on PATH; give --interpreter")
    return os.path.abspath(found)


def ensure_mounted(root: Path = BINFMT_DIR) -> None:
    """Mount binfmt_misc if it is not (systemd normally does; containers often do not)."""
    if (root / "register").exists():
        return
    if os.geteuid() != 0:
        raise BinfmtError(f"{root} is not mounted and mounting it needs root")
    rc = os.system(f"mount -t binfmt_misc binfmt_misc {root} >/dev/null 2>&1")
    if rc != 0 or not (root / "register").exists():
        raise BinfmtError(f"could not mount binfmt_misc on {root}")


def write_launcher(path: str, socket: bytes) -> str:
    """Write the launcher for ``socket`` to ``path`` (atomically: a registered launcher
    may be running); returns its absolute path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(build_launcher(socket))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def install(line: str, entry: str, root: Path = BINFMT_DIR) -> None:
    ensure_mounted(root)
    if (root / entry).exists():
        remove(entry, root)  # re-registering replaces, as qemu-binfmt-conf.sh does
    try:
        (root / "register").write_text(line)
    except OSError as e:
        raise BinfmtError(f"binfmt_misc refused '{entry}': {e.strerror}") from None


def remove(entry: str, root: Path = BINFMT_DIR) -> bool:
    path = root / entry
    if not path.exists():
        return False
    try:
        path.write_text("-1")
    except OSError as e:
        raise BinfmtError(f"could not remove '{entry}': {e.strerror}") from None
    return True


def status(entry: str, root: Path = BINFMT_DIR) -> dict[str, str] | None:
    """The kernel's view of an entry (enabled, interpreter, flags, ...), or None."""
    path = root / entry
    if not path.exists():
        return None
    info: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in ("enabled", "disabled"):
            info["state"] = key
        else:
            info[key] = value
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pemu-binfmt",
        description="Register pemu in binfmt_misc for foreign-architecture ELF programs.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="register (replace) the entry")
    action.add_argument("--remove", action="store_true", help="unregister the entry")
    action.add_argument("--status", action="store_true", help="show the kernel's entry")
    action.add_argument("--print", action="store_true",
                        help="print the register line (the content of a binfmt.d file)")
    parser.add_argument("--arch", default="riscv64", choices=sorted(FORMATS))
    parser.add_argument("--name", help="entry name (default: pemu-ARCH)")
    parser.add_argument("--interpreter", help="absolute path (default: pemu-ARCH on PATH)")
    action.add_argument("--serve", action="store_true",
                        help="run the resident server that --server launchers talk to")
    parser.add_argument("--server", action="store_true",
                        help="register a generated launcher that hands programs to "
                             "pemu-binfmt --serve (fast starts, chroots without Python)")
    parser.add_argument("--launcher", metavar="PATH",
                        help="where --server writes its launcher (default: "
                             "/usr/local/libexec/pemu/NAME)")
    parser.add_argument("--flags",
                        help="binfmt_misc flags from P, O, C, F (default: P; POCF with "
                             "--server)")
    parser.add_argument("--binfmt-d", metavar="DIR",
                        help="also write DIR/NAME.conf for systemd-binfmt (persistent)")
    parser.add_argument("--binfmt-misc", metavar="DIR", default=str(BINFMT_DIR),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fmt = FORMATS[args.arch]
    entry = args.name or f"pemu-{fmt.name}"
    root = Path(args.binfmt_misc)
    socket = socket_name(fmt.name, args.name)
    try:
        if args.serve:
            return serve(socket, fmt.name)
        if args.install or args.print:
            flags = (args.flags if args.flags is not None
                     else "POCF" if args.server else "P").upper()
            if args.server:
                interpreter = write_launcher(
                    args.launcher or f"/usr/local/libexec/pemu/{entry}", socket)
            else:
                interpreter = args.interpreter or default_interpreter(fmt, flags)
            line = register_line(entry, fmt, interpreter, flags)
            if args.print:
                print(line)
                return 0
            install(line, entry, root)
            if args.binfmt_d:
                Path(args.binfmt_d, f"{entry}.conf").write_text(line + "\n")
            print(f"pemu-binfmt: {entry} registered: {interpreter} (flags {args.flags})")
        elif args.remove:
            if not remove(entry, root):
                print(f"pemu-binfmt: {entry} was not registered")
            if args.binfmt_d:
                Path(args.binfmt_d, f"{entry}.conf").unlink(missing_ok=True)
        else:
            info = status(entry, root)
            if info is None:
                print(f"{entry}: not registered")
                return 1
            print(f"{entry}: {info.get('state', '?')}")
            for key in ("interpreter", "flags:", "offset", "magic", "mask"):
                if key in info:
                    print(f"  {key.rstrip(':')}: {info[key]}")
    except BinfmtError as e:
        sys.stderr.write(f"pemu-binfmt: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
