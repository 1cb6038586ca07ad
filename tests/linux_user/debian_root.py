"""A Debian riscv64 root filesystem for the user-mode tests, built once and cached.

``mmdebstrap --variant=minbase`` makes it from the Debian archive, and whatever is
registered in binfmt_misc for riscv64 runs its maintainer scripts (dpkg, sh, perl,
debconf): pemu, or qemu-riscv64-static where the root is only the ground the checks
run on (the *builder*).  The root is cached between runs in a folder named by the
recipe (suite, architecture, variant, packages, builder, ``RECIPE``), under
``$PEMU_TEST_CACHE/test-roots`` (default ``~/.cache/pemu/test-roots``).  It is built in
a temporary folder and renamed into place only when mmdebstrap succeeded, under a
lock, so a half-built root is never used and two test runs never build the same root
at once.

The key leaves out pemu's own sources on purpose: the root is data that the checks run
on (and re-exercise pemu each time); rebuilding it for every change of pemu would cost
many minutes.  ``PEMU_TEST_ROOT_REBUILD=1`` rebuilds it anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

SUITE = "trixie"
ARCH = "riscv64"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
RECIPE = 1  # bump when the way the root is made changes


def cache_dir() -> Path:
    base = os.environ.get("PEMU_TEST_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "pemu") / "test-roots"


def root_name(packages: tuple[str, ...] = (), builder: str = "pemu") -> str:
    recipe = json.dumps([RECIPE, SUITE, ARCH, VARIANT, MIRROR, sorted(packages), builder])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{SUITE}-{ARCH}-{VARIANT}-{builder}-{digest}"


def archive_reachable(timeout: float = 15.0) -> str | None:
    """None if the archive answers, else why not."""
    try:
        with urllib.request.urlopen(f"{MIRROR}/dists/{SUITE}/Release", timeout=timeout):
            return None
    except OSError as e:
        return f"the Debian archive is not reachable ({MIRROR}: {e})"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_root(packages: tuple[str, ...] = (), builder: str = "pemu",
                log: Path | None = None, timeout: float = 3600) -> tuple[Path, float | None]:
    """The root (built now if it is not cached), and how long building it took (None:
    it came from the cache).  ``builder`` names what the caller has registered in
    binfmt_misc for riscv64 while the root is built (it runs the maintainer scripts),
    and is part of the key.  Raises CalledProcessError with mmdebstrap's output."""
    top = cache_dir()
    top.mkdir(parents=True, exist_ok=True)
    name = root_name(packages, builder)
    final = top / name
    with _locked(top / f"{name}.lock"):
        if final.is_dir() and not os.environ.get("PEMU_TEST_ROOT_REBUILD"):
            return final, None
        for stale in top.glob(f".{name}.tmp-*"):  # a builder that died half-way
            shutil.rmtree(stale, ignore_errors=True)
        building = top / f".{name}.tmp-{os.getpid()}"
        command = ["mmdebstrap", "--mode=root", f"--arch={ARCH}", f"--variant={VARIANT}"]
        if packages:
            command.append("--include=" + ",".join(packages))
        command += [SUITE, str(building), MIRROR]
        start = time.monotonic()
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            if log is not None:
                log.write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                raise subprocess.CalledProcessError(result.returncode, command,
                                                    result.stdout, result.stderr)
            took = time.monotonic() - start
            if final.exists():
                shutil.rmtree(final)
            os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return final, took


def in_root(root: Path, *command: str) -> list[str]:
    """argv running ``command`` chrooted in ``root``, with /proc and /dev mounted in a
    mount namespace of its own (they vanish with it, whatever happens)."""
    script = ('mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" || exit 125; '
              'mount --bind /etc/resolv.conf "$0/etc/resolv.conf" 2>/dev/null; '
              'exec chroot "$0" "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            str(root), *command]
