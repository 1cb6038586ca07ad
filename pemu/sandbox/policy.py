"""``-sandbox``: which system calls each option denies, and how a denied call ends.

The shape is QEMU's: a default set and the obsolete set are always denied; options add
the privileged, spawn and resource-control sets.  A denied call from the first three
sets kills the process (SIGSYS; SECCOMP_RET_KILL_PROCESS, or TRAP on kernels before 4.14),
resource control fails with EPERM.  Spawning differs from QEMU on purpose: pemu is one
Python process whose monitor may try to start a helper, so fork/vfork/clone-a-process
fail with EPERM (the command fails, the guest runs on) and only execve kills -- and it
can only be reached by a child, which cannot be created.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass

from pemu.sandbox.libseccomp import (
    ACT_KILL_PROCESS,
    ACT_TRAP,
    CMP_MASKED_EQ,
    CMP_NE,
    ArgCmp,
    Filter,
    SeccompError,
    act_errno,
    kill_process_available,
)

DEFAULT_SET = ("reboot", "swapon", "swapoff", "syslog", "mount", "umount", "umount2",
               "kexec_load", "kexec_file_load", "afs_syscall", "break", "ftime", "getpmsg",
               "gtty", "lock", "mpx", "prof", "profil", "putpmsg", "security", "stty",
               "tuxcall", "ulimit", "vserver")
OBSOLETE_SET = ("readdir", "_sysctl", "bdflush", "create_module", "get_kernel_syms",
                "query_module", "sgetmask", "ssetmask", "sysfs", "uselib", "ustat")
PRIVILEGED_SET = ("setuid", "setgid", "setpgid", "setsid", "setreuid", "setregid",
                  "setresuid", "setresgid", "setfsuid", "setfsgid")
SPAWN_KILL_SET = ("execve", "execveat")
SPAWN_EPERM_SET = ("fork", "vfork")
RESOURCECTL_SET = ("setpriority", "sched_setparam", "sched_setaffinity")
CLONE_THREAD = 0x00010000
SCHED_IDLE = 5
PR_SET_NO_NEW_PRIVS = 38

_BOOL = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}
_CHOICES = {"obsolete": ("allow", "deny"), "elevateprivileges": ("allow", "deny", "children"),
            "spawn": ("allow", "deny"), "resourcecontrol": ("allow", "deny")}


class SandboxError(Exception):
    """A message for the user, in QEMU's words where QEMU has them."""


@dataclass(frozen=True)
class SandboxPolicy:
    obsolete: bool = True          # deny the obsolete set (QEMU's default)
    privileged: bool = False       # elevateprivileges=deny|children
    no_new_privs: bool = False     # elevateprivileges=children
    spawn: bool = False            # spawn=deny
    resourcecontrol: bool = False  # resourcecontrol=deny


def parse_sandbox(opts: dict[str, str]) -> SandboxPolicy | None:
    """``-sandbox`` keyval options (``enable`` is the implied key); None for off."""
    enable = opts.get("enable", "off")
    if enable not in _BOOL:
        raise SandboxError("Parameter 'enable' expects 'on' or 'off'")
    for key, value in opts.items():
        if key == "enable":
            continue
        if key not in _CHOICES:
            raise SandboxError(f"Invalid parameter '{key}'")
        if value not in _CHOICES[key]:
            raise SandboxError(f"invalid argument for {key}")
    if not _BOOL[enable]:
        return None
    elevate = opts.get("elevateprivileges", "allow")
    return SandboxPolicy(obsolete=opts.get("obsolete", "deny") == "deny",
                         privileged=elevate in ("deny", "children"),
                         no_new_privs=elevate == "children",
                         spawn=opts.get("spawn", "allow") == "deny",
                         resourcecontrol=opts.get("resourcecontrol", "allow") == "deny")


def rules(policy: SandboxPolicy, kill: int) -> list[tuple[int, str, tuple[ArgCmp, ...]]]:
    """(action, syscall, conditions) for every denial the policy makes."""
    out = [(kill, name, ()) for name in DEFAULT_SET]
    if policy.obsolete:
        out += [(kill, name, ()) for name in OBSOLETE_SET]
    if policy.privileged:
        out += [(kill, name, ()) for name in PRIVILEGED_SET]
    if policy.spawn:
        eperm = act_errno(errno.EPERM)
        out += [(kill, name, ()) for name in SPAWN_KILL_SET]
        out += [(eperm, name, ()) for name in SPAWN_EPERM_SET]
        # glibc's fork() is clone(SIGCHLD...): a clone without CLONE_THREAD makes a process
        out.append((eperm, "clone", (ArgCmp(0, CMP_MASKED_EQ, CLONE_THREAD, 0),)))
        # clone3 passes its flags in memory the filter cannot read: ENOSYS makes glibc
        # fall back to clone, whose flags it can
        out.append((act_errno(errno.ENOSYS), "clone3", ()))
    if policy.resourcecontrol:
        eperm = act_errno(errno.EPERM)
        out += [(eperm, name, ()) for name in RESOURCECTL_SET]
        out.append((eperm, "sched_setscheduler", (ArgCmp(1, CMP_NE, SCHED_IDLE),)))
    return out


class PreparedSandbox:
    """A filter built while libseccomp can still be loaded (before ``-chroot``), to be
    installed once privileges are dropped."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self.policy = policy
        self._libc = ctypes.CDLL(None, use_errno=True)
        try:
            kill = ACT_KILL_PROCESS if kill_process_available() else ACT_TRAP
            self._filter = Filter()
            for action, name, conditions in rules(policy, kill):
                self._filter.add(action, name, *conditions)
        except SeccompError as e:
            raise SandboxError(str(e.strerror or e)) from None

    def install(self) -> None:
        """Load the filter into the kernel for every thread of this process; irreversible."""
        if self.policy.no_new_privs and self._libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
            raise SandboxError("failed to set no_new_privs aborting")
        try:
            self._filter.load()
        except SeccompError as e:
            raise SandboxError(str(e.strerror or e)) from None
        finally:
            self._filter.close()


def apply_sandbox(policy: SandboxPolicy) -> None:
    PreparedSandbox(policy).install()
