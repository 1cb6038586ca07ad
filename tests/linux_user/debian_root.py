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
from collections.abc import Callable, Iterator
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


def _cached(name: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cached folder ``name``, made by ``build(folder)`` (which creates it) if it is
    not there; and whether it was made now."""
    top = cache_dir()
    top.mkdir(parents=True, exist_ok=True)
    final = top / name
    with _locked(top / f"{name}.lock"):
        if final.is_dir() and not os.environ.get("PEMU_TEST_ROOT_REBUILD"):
            return final, False
        for stale in top.glob(f".{name}.tmp-*"):  # a builder that died half-way
            shutil.rmtree(stale, ignore_errors=True)
        building = top / f".{name}.tmp-{os.getpid()}"
        try:
            build(building)
            if final.exists():
                shutil.rmtree(final)
            os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return final, True


def _run(command: list[str], log: Path | None, timeout: float, **kw) -> None:
    """Run a build step; its output goes to ``log`` (appended).  Raises
    CalledProcessError with the output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kw)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, command, result.stdout,
                                            result.stderr)


def cached_root(packages: tuple[str, ...] = (), builder: str = "pemu",
                log: Path | None = None, timeout: float = 3600) -> tuple[Path, float | None]:
    """The root (built now if it is not cached), and how long building it took (None:
    it came from the cache).  ``builder`` names what the caller has registered in
    binfmt_misc for riscv64 while the root is built (it runs the maintainer scripts),
    and is part of the key.  Raises CalledProcessError with mmdebstrap's output."""
    command = ["mmdebstrap", "--mode=root", f"--arch={ARCH}", f"--variant={VARIANT}"]
    if packages:
        command.append("--include=" + ",".join(packages))
    start = time.monotonic()
    path, made = _cached(root_name(packages, builder),
                         lambda into: _run([*command, SUITE, str(into), MIRROR], log, timeout))
    return path, time.monotonic() - start if made else None


# What the build tests add to a minbase root with apt-get: a C toolchain, make, a
# Python (python3-minimal: the interpreter and its core modules), and autotools-dev's
# config.guess and config.sub, which know riscv64 (Debian's builds put them in every
# autoconf package, as dh_update_autotools_config; hello's, from 2014, do not).
TOOLCHAIN = ("gcc", "make", "libc6-dev", "python3-minimal", "autotools-dev")
TOOLCHAIN_STEPS = {
    "apt-get update": ("apt-get", "update"),
    "apt-get install": ("apt-get", "install", "-y", "--no-install-recommends", *TOOLCHAIN),
}
GUEST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root",
             "DEBIAN_FRONTEND": "noninteractive"}


def cached_toolchain_root(base: Path, log: Path | None = None, timeout: float = 7200,
                          cpu: Callable[[], float] = lambda: 0.0
                          ) -> tuple[Path, dict[str, tuple[float, float]] | None]:
    """A copy of the root ``base`` with TOOLCHAIN installed by apt-get from the archive
    (run by whatever is registered for riscv64 now: the builder of ``base``, part of its
    name), cached like it; and each step's (wall, ``cpu()``) seconds, None when it came
    from the cache."""
    recipe = json.dumps([RECIPE, base.name, TOOLCHAIN_STEPS])
    name = f"{base.name}-tools-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    times: dict[str, tuple[float, float]] = {}

    def build(into: Path) -> None:
        subprocess.run(["cp", "-a", str(base), str(into)], check=True)
        for step, command in TOOLCHAIN_STEPS.items():
            wall, used = time.monotonic(), cpu()
            _run(in_root(into, *command), log, timeout, env=GUEST_ENV)
            times[step] = (time.monotonic() - wall, cpu() - used)
        _run(in_root(into, "apt-get", "clean"), log, timeout, env=GUEST_ENV)

    path, made = _cached(name, build)
    return path, times if made else None


# A real GNU package from its Debian source: the upstream tarball of Debian's hello
# (trixie: 2.10-5), from the archive's pool, checked against the Sources index's sum.
HELLO_TARBALL = "pool/main/h/hello/hello_2.10.orig.tar.gz"
HELLO_SHA256 = "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"
HELLO_DIR = "hello-2.10"
# the build, each step a shell command run in the unpacked source
HELLO_STEPS = {
    "configure": "cp /usr/share/misc/config.guess /usr/share/misc/config.sub build-aux/ && "
                 "./configure",
    "make": "make",
    "make check": "make check",
}


def hello_tarball() -> Path:
    """The tarball, downloaded once into the cache."""
    path = cache_dir() / "sources" / Path(HELLO_TARBALL).name
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == HELLO_SHA256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f"{MIRROR}/{HELLO_TARBALL}", timeout=120) as answer:
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != HELLO_SHA256:
        raise OSError(f"{HELLO_TARBALL}: not the tarball of the Sources index")
    partial = path.with_suffix(f".part-{os.getpid()}")
    partial.write_bytes(data)
    os.rename(partial, path)
    return path


def children_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the children that process ``pid`` reaped: of a
    binfmt server, every program it ran, with what they forked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def in_root(root: Path, *command: str) -> list[str]:
    """argv running ``command`` chrooted in ``root``, with /proc and /dev mounted in a
    mount namespace of its own (they vanish with it, whatever happens)."""
    script = ('mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" || exit 125; '
              'mount --bind /etc/resolv.conf "$0/etc/resolv.conf" 2>/dev/null; '
              'exec chroot "$0" "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            str(root), *command]
