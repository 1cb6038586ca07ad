"""execve: run the new program under a fresh pemu (or directly, if it is a host program).

The new pemu gets the same -L/-strace/-d/-D/-cpu options and the guest's environment
unchanged.  Signal state that survives exec (ignored signals, the blocked mask) is
passed with hidden options, because the Python runtime resets SIGPIPE at startup.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

import pemu

_PEMU_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pemu.__file__)))
# the new pemu runs the same guest architecture: main(..., arch=NAME)
_BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
         "from pemu.linux_user.main import main; sys.exit(main(sys.argv[1:], arch={arch!r}))")


def pemu_command(options: object, exe: str, argv0: bytes, args: list[bytes],
                 ignored: list[int] = (), sigmask: int = 0) -> list[bytes]:
    """The host argv that starts pemu on ``exe`` with guest argv ``[argv0, *args]``."""
    boot = _BOOT.format(arch=getattr(options, "arch", "riscv64"))
    cmd: list[bytes] = [os.fsencode(sys.executable), b"-c", boot.encode(),
                        os.fsencode(_PEMU_ROOT)]
    if options.prefix:
        cmd += [b"-L", os.fsencode(options.prefix)]
    if options.strace:
        cmd.append(b"-strace")
    if options.log_items:
        cmd += [b"-d", ",".join(options.log_items).encode()]
    if options.log_file:
        cmd += [b"-D", os.fsencode(options.log_file)]
    if options.cpu:  # the new program runs on the same extensions
        cmd += [b"-cpu", options.cpu.encode()]
    if options.uname_release:
        cmd += [b"-r", os.fsencode(options.uname_release)]
    if options.tcg_backend:
        cmd += [b"-accel", b"tcg,backend=" + options.tcg_backend.encode()]
    # always said, even when empty: without them the new pemu takes its own host
    # state, which is not the guest's
    cmd += [b"-pemu-sigign", ",".join(str(s) for s in ignored).encode()]
    cmd += [b"-pemu-sigmask", f"{sigmask:x}".encode()]
    cmd += [b"-0", argv0, os.fsencode(exe), *args]
    return cmd


def _is_guest_elf(head: bytes, machine: int) -> bool:
    """An ELF file for the guest's machine (e_machine)."""
    return head[:4] == b"\x7fELF" and len(head) >= 20 and \
        int.from_bytes(head[18:20], "little") == machine


def _read_head(path: bytes) -> bytes:
    with open(path, "rb") as f:
        return f.read(256)


def _resolve(path: bytes, prefix: str | None) -> bytes:
    if prefix and path.startswith(b"/"):
        candidate = os.fsencode(prefix).rstrip(b"/") + path
        if os.path.lexists(candidate):
            return candidate
    return path


def _descriptor_program(host_path: bytes) -> bytes:
    """fexecve: /proc/self/fd/N names a descriptor that is usually close-on-exec, so
    the pemu that runs the program next could not open it (the kernel opens the file
    before closing descriptors; a re-exec cannot).  The file's own path when it still
    has one, else the same name with the descriptor kept open across this exec."""
    parts = host_path.split(b"/")
    if len(parts) != 5 or parts[:2] != [b"", b"proc"] or parts[3] != b"fd" \
            or parts[2] not in (b"self", str(os.getpid()).encode()) or not parts[4].isdigit():
        return host_path
    try:
        target = os.readlink(host_path)
        if target.startswith(b"/") and os.path.isfile(target):
            return target
        os.set_inheritable(int(parts[4]), True)
    except OSError:
        pass
    return host_path


class ExecPlan:
    """What an execve of the guest becomes on the host: a program, its argv, its
    environment (the caller execs it itself, or spawns it for a vfork child)."""

    __slots__ = ("program", "argv", "env")

    def __init__(self, program: bytes, argv: list[bytes], env: dict[bytes, bytes]) -> None:
        self.program = program
        self.argv = argv
        self.env = env


def plan_exec(process: object, raw_path: bytes, host_path: bytes, args: list[bytes],
              env: list[bytes], ignored: list[int], sigmask: int) -> ExecPlan | int:
    """The host program for the guest's execve, or the negative errno the guest gets
    for one that cannot run (checked before anything is replaced)."""
    host_path = _descriptor_program(host_path)
    try:
        if os.path.isdir(host_path):
            return -errno.EACCES
        if not os.access(host_path, os.X_OK):
            return -errno.EACCES if os.path.exists(host_path) else -errno.ENOENT
        head = _read_head(host_path)
    except OSError as e:
        return -(e.errno or errno.ENOENT)
    argv0 = args[0] if args else raw_path
    machine = process.arch.elf_machine
    if process.options.exec_natively:
        cmd = None  # binfmt_misc's entry brings a foreign program back to pemu
    elif _is_guest_elf(head, machine):
        cmd = pemu_command(process.options, os.fsdecode(host_path), argv0, args[1:],
                           ignored, sigmask)
    elif head[:2] == b"#!":
        line = head[2:].split(b"\n", 1)[0].strip()
        if not line:
            return -errno.ENOEXEC
        parts = line.split(None, 1)
        interp = parts[0]
        new_args = [interp, *parts[1:], raw_path, *args[1:]]
        interp_host = _resolve(interp, process.options.prefix)
        try:
            interp_head = _read_head(interp_host)
        except OSError as e:
            return -(e.errno or errno.ENOENT)
        if not _is_guest_elf(interp_head, machine):
            cmd = None
        else:
            cmd = pemu_command(process.options, os.fsdecode(interp_host), interp,
                               new_args[1:], ignored, sigmask)
    elif head[:4] == b"\x7fELF":
        cmd = None  # a host program: run it natively, like binfmt_misc would
    else:
        return -errno.ENOEXEC
    env_map = {}
    for item in env:
        key, sep, value = item.partition(b"=")
        if sep:
            env_map[key] = value
    if cmd is None:
        return ExecPlan(host_path, args or [raw_path], env_map)
    return ExecPlan(cmd[0], cmd, env_map)


def host_sigmask(guest_mask: int) -> set[int]:
    """The guest's blocked signals as a host mask: the kernel keeps the mask across
    execve, and a program that binfmt_misc brings back to pemu learns it from its own
    (the launcher reports it).  glibc's own signals 32 and 33 cannot be named."""
    return {sig for sig in range(1, 65) if guest_mask >> (sig - 1) & 1 and sig not in (32, 33)}


def exec_guest(process: object, raw_path: bytes, host_path: bytes, args: list[bytes],
               env: list[bytes], ignored: list[int], sigmask: int) -> int:
    """Replace this process; returns a negative errno if that is impossible."""
    plan = plan_exec(process, raw_path, host_path, args, env, ignored, sigmask)
    if isinstance(plan, int):
        return plan
    if process.strace is not None:
        process.strace.flush()
    process.engine.save_translations()  # execve skips atexit
    sys.stderr.flush()
    # pemu keeps the guest's mask itself (the host's is empty): the new program gets it
    held = signal.pthread_sigmask(signal.SIG_SETMASK, host_sigmask(sigmask))
    try:
        os.execve(plan.program, plan.argv, plan.env)
    except OSError as e:
        return -(e.errno or errno.ENOEXEC)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return -errno.ENOEXEC  # not reached
