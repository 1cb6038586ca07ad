"""Benchmarks that register binfmt_misc entries, run in a binfmt_misc of their own.

binfmt_misc is one list for the whole machine, unless the kernel (6.7 and later) gives
a user namespace its own instance.  A benchmark run with ``--private-binfmt``
re-executes itself in new user, mount and pid namespaces (root there, mapped to the
caller), with /proc and binfmt_misc mounted afresh, and registers its entries there:
other users of the machine's binfmt_misc (Debian's qemu-user-binfmt, a test run, a
second benchmark) neither see them nor have their programs taken, and no sudo is
needed where unprivileged user namespaces are allowed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

FLAG = "--private-binfmt"
_INSIDE = "PEMU_BENCH_IN_PRIVATE_BINFMT"
_BINFMT_DIR = "/proc/sys/fs/binfmt_misc"


def enter_if_asked(argv: list[str]) -> list[str]:
    """``argv`` (a script's arguments) without ``--private-binfmt``.  With it, outside
    the namespaces: runs the script again inside them and exits with its status."""
    if FLAG not in argv:
        return argv
    rest = [a for a in argv if a != FLAG]
    if os.environ.get(_INSIDE) == "1":
        _mount_binfmt_misc()
        return rest
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit(f"{FLAG} needs unshare (util-linux)")
    command = [unshare, "--user", "--map-root-user", "--mount", "--pid", "--fork",
               "--mount-proc", sys.executable, sys.argv[0], *argv]
    sys.exit(subprocess.run(command, env=dict(os.environ, **{_INSIDE: "1"})).returncode)


def _mount_binfmt_misc() -> None:
    r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", _BINFMT_DIR],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{FLAG}: no binfmt_misc of this user namespace's own "
                         f"(Linux 6.7 or later): {r.stderr.strip()}")
