"""A Debian trixie riscv64 root entered through binfmt_misc, its programs under pemu.

pemu's binfmt server is registered (launcher with flags POCF: ``F`` makes it work in a
chroot without Python), ``mmdebstrap --variant=minbase`` builds the root, and ``chroot``
runs programs of the root under pemu: dpkg, sh pipelines, perl.  The root is cached
(debian_root.py), so only the first run downloads and builds it.

What takes many minutes under pemu runs only with ``PEMU_TEST_DEBIAN_FULL=1`` (times
in docs/LINUX_USER.md): the root's build itself under pemu (every dpkg, maintainer
script and debconf run a riscv64 process under pemu; otherwise qemu-riscv64-static
builds it); on a copy of it (cached too), ``apt-get update`` and ``apt-get install gcc
make libc6-dev python3-minimal`` from the archive under pemu; then a program compiled by
the guest's gcc, ``python3 -c``, and GNU hello from its Debian source tarball built with
``./configure && make && make check`` under pemu and again under qemu-riscv64-static
(same root, same path): same configuration, same binary, same test results.  Where
qemu-riscv64-static is installed, the single-process checks are compared with it on the
same root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from binfmt_helpers import registered, require_binfmt_misc, served
from debian_root import (
    GUEST_ENV,
    HELLO_DIR,
    HELLO_STEPS,
    TOOLCHAIN,
    archive_reachable,
    cached_root,
    cached_toolchain_root,
    children_cpu,
    hello_tarball,
    in_root,
)

pytestmark = pytest.mark.slow

FULL = os.environ.get("PEMU_TEST_DEBIAN_FULL") == "1"
BUILDER = "pemu" if FULL else "qemu"  # what runs the maintainer scripts of the build


@pytest.fixture(scope="module")
def pemu_binfmt(tmp_path_factory):
    require_binfmt_misc()
    for tool in ("mmdebstrap", "arch-test", "unshare", "chroot"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-deps.sh)")
    launcher = tmp_path_factory.mktemp("chroot-binfmt") / "launcher"
    with served(f"pemu-test-chroot-{os.getpid()}", launcher) as server:
        yield server


@pytest.fixture(scope="module")
def root(pemu_binfmt, tmp_path_factory):
    log = tmp_path_factory.mktemp("mmdebstrap") / "mmdebstrap.log"
    builder = contextlib.nullcontext()
    if BUILDER == "qemu":
        qemu = shutil.which("qemu-riscv64-static")
        if qemu is None:
            pytest.skip("qemu-riscv64-static (qemu-user-static) builds the root unless "
                        "PEMU_TEST_DEBIAN_FULL=1")
        builder = registered(f"pemu-test-chroot-qemu-{os.getpid()}", qemu, "F")
    cpu = children_cpu(pemu_binfmt.pid)
    try:
        with builder:
            path, took = cached_root(builder=BUILDER, log=log)
    except FileNotFoundError:
        pytest.skip("mmdebstrap is not installed")
    except subprocess.CalledProcessError as e:
        why = archive_reachable()
        if why is not None:
            pytest.skip(why)
        pytest.fail(f"mmdebstrap failed under {BUILDER}:\n{e.stdout[-3000:]}\n"
                    f"{e.stderr[-3000:]}")
    if took is not None:
        print(f"\nmmdebstrap --variant=minbase under {BUILDER}: {took:.0f} s wall, "
              f"{children_cpu(pemu_binfmt.pid) - cpu:.0f} CPU-s under pemu")
    return path


def chroot(root: Path, *command: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(in_root(root, *command), capture_output=True, timeout=timeout,
                          env={**GUEST_ENV, **kw.pop("env", {})}, **kw)


def under_qemu(root: Path, *command: str) -> subprocess.CompletedProcess | None:
    """The same single-process command under qemu-riscv64-static in the same root
    (None where it is not installed).  Only the first process runs under qemu: what
    it starts goes through binfmt_misc, to pemu."""
    qemu = shutil.which("qemu-riscv64-static")
    if qemu is None:
        return None
    inside = root / "tmp" / f"qemu-riscv64-static-{os.getpid()}"
    shutil.copy(qemu, inside)
    try:
        return chroot(root, "/tmp/" + inside.name, *command)
    finally:
        inside.unlink()


def installed_packages(root: Path) -> set[str]:
    """What dpkg's status file says is installed: the oracle for dpkg -l."""
    names, name = set(), None
    for line in (root / "var/lib/dpkg/status").read_text().splitlines():
        if line.startswith("Package: "):
            name = line.split()[1]
        elif line == "Status: install ok installed" and name:
            names.add(name)
    return names


def test_minbase_root_is_complete(root):
    names = installed_packages(root)
    assert {"base-files", "dpkg", "apt", "bash", "coreutils", "perl-base"} <= names
    assert (root / "etc/os-release").read_text().count("trixie") >= 1


def test_dpkg_lists_the_installed_packages(root):
    result = chroot(root, "dpkg", "-l")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[1].split(":")[0] for line in result.stdout.decode().splitlines()
              if line.startswith("ii ")}
    assert listed == installed_packages(root)
    query = ("dpkg-query", "-W", "-f", "${Package} ${Architecture}\\n", "dpkg", "apt")
    ours = chroot(root, *query)
    assert ours.stdout == b"apt riscv64\ndpkg riscv64\n", ours.stderr
    theirs = under_qemu(root, "/usr/bin/dpkg-query", *query[1:])
    if theirs is not None:
        assert ours.stdout == theirs.stdout


def test_shell_pipelines(root):
    script = ("set -e; seq 1 1000 | sort -rn | head -3 | tr '\\n' ' '; echo; "
              "ls /usr/bin | wc -l; "
              "x=$(echo riscv | sed s/v/V/); echo \"$x $(uname -m)\"; "
              "echo a b c | (read p q r; echo $r$q$p) | cat; "
              "(exit 3) || echo status $?")
    result = chroot(root, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "1000 999 998 "
    assert int(lines[1]) == len(os.listdir(root / "usr/bin"))
    assert lines[2:] == ["riscV riscv64", "cba", "status 3"]


# autoconf's "checking for grep that handles long lines and -e" (_AC_PROG_GREP), as GNU
# hello's configure runs it: each grep on PATH is taken at once if --version says GNU;
# else it is fed a line that doubles each round (10 * 2^11 bytes at the end) and must
# print it back unchanged (diff).  Session 11 saw /usr/bin/grep rejected once under
# pemu: that run shared the host's binfmt_misc with test servers that came and went, and
# a launcher whose server was gone printed an error instead of grep's version (replayed;
# 0 failures in 150 tries without that).  Both halves are checked here, the line built
# by the shell itself (configure's cat/mv/cp would triple the processes, ~1 s each).
AUTOCONF_GREP_CHECK = r"""
cd "$(mktemp -d)"
as_fn_executable_p () { test -f "$1" && test -x "$1"; }
for g in /usr/bin/grep /bin/grep; do
  as_fn_executable_p "$g" || { echo "$g is not executable"; continue; }
  case `"$g" --version 2>&1` in *GNU*) echo "$g GNU";; *) echo "$g not GNU";; esac
done
ac_count=0 line=0123456789
while :
do
  line=$line$line
  printf '%sGREP\n' "$line" >conftest.nl
  /usr/bin/grep -e 'GREP$' -e '-(cannot match)-' < conftest.nl >conftest.out 2>/dev/null || break
  diff conftest.out conftest.nl >/dev/null 2>&1 || break
  ac_count=$((ac_count + 1))
  test $ac_count -gt 10 && break
done
echo "rounds $ac_count, ${#line} + 5 bytes"
rm -r "$PWD"
"""


def test_autoconf_grep_check(root):
    result = chroot(root, "sh", "-c", AUTOCONF_GREP_CHECK)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"/usr/bin/grep GNU\n/bin/grep GNU\nrounds 11, 20480 + 5 bytes\n"


def test_perl(root):
    program = ('use strict; my %h = map { $_ => $_ ** 2 } 1..5; '
               'print join(",", map { $h{$_} } sort keys %h), "\\n"; '
               'printf "%.6f\\n", atan2(1, 1) * 4; '
               'my $s = "Debian riscv64"; $s =~ s/(\\w+)/\\u\\L$1/g; print "$s\\n"; '
               'print scalar(reverse "pemu"), " ", length(join "", 1..100), "\\n";')
    ours = chroot(root, "perl", "-e", program)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == b"1,4,9,16,25\n3.141593\nDebian Riscv64\numep 192\n"
    theirs = under_qemu(root, "/usr/bin/perl", "-e", program)
    if theirs is not None:
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)


WARM_RUNS = 6
PAYLOAD_BYTES = 4 << 20


def test_dpkg_deb_with_a_warm_translation_cache(root, tmp_path):
    """The root's dpkg-deb extracting an xz package, once cold and WARM_RUNS times with
    the translation cache warm, each time the tar stream of the host's dpkg-deb.  It
    forks a reader and a decompressor (with a worker thread); the fork children once
    ran code the parent patched after the fork (test_fork_code_buffer.py), and about a
    quarter of the warm runs failed ("lzma error: internal error (bug)")."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("the host's dpkg-deb builds the package")
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN/control").write_text(
        "Package: pemu-test\nVersion: 1\nArchitecture: all\nMaintainer: pemu <pemu@test>\n"
        "Description: the root's programs as a payload\n")
    (package / "usr/bin").mkdir(parents=True)
    size = 0
    for program in sorted((root / "usr/bin").iterdir()):  # a few MB of them
        if program.is_file() and not program.is_symlink() and size < PAYLOAD_BYTES:
            shutil.copy(program, package / "usr/bin")
            size += program.stat().st_size
    deb = tmp_path / "x.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(package),
                    str(deb)], check=True, capture_output=True)
    want = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                          capture_output=True).stdout
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               PEMU_TB_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "pemu.linux_user.main", "-L", str(root),
               str(root / "usr/bin/dpkg-deb"), "--fsys-tarfile", str(deb)]
    wrong = []
    for run in range(1 + WARM_RUNS):
        got = subprocess.run(command, capture_output=True, timeout=600, env=env)
        if (got.returncode, got.stdout) != (0, want):
            wrong.append(f"run {run}: status {got.returncode}, {len(got.stdout)} bytes, "
                         f"{got.stderr.decode(errors='replace')[-300:]}")
    assert not wrong, "\n".join(wrong)


HELLO_C = r"""
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(int argc, char **argv)
{
    int v[] = {5, 3, 9, 1, 7};
    qsort(v, 5, sizeof v[0], cmp);
    printf("hello from gcc on %s:", argc > 1 ? argv[1] : "?");
    for (int i = 0; i < 5; i++) printf(" %d", v[i]);
    printf("\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def tools_root(root, pemu_binfmt, tmp_path_factory):
    """A copy of the root with TOOLCHAIN installed by apt-get from the archive under
    pemu (its maintainer scripts, gcc's triggers and all), cached like the root."""
    if not FULL:
        pytest.skip("apt-get install gcc make python3 and the builds under pemu take many "
                    "minutes: set PEMU_TEST_DEBIAN_FULL=1")
    log = tmp_path_factory.mktemp("apt-get") / "apt-get.log"
    try:
        path, times = cached_toolchain_root(root, log=log,
                                            cpu=lambda: children_cpu(pemu_binfmt.pid))
    except subprocess.CalledProcessError as e:
        why = archive_reachable()
        if why is not None:
            pytest.skip(why)
        pytest.fail(f"{e.cmd[-4:]} failed under pemu:\n{e.stdout[-3000:]}\n{e.stderr[-3000:]}")
    for step, (wall, cpu) in (times or {}).items():
        print(f"\n{step} under pemu: {wall:.0f} s wall, {cpu:.0f} CPU-s")
    return path


def test_apt_get_installed_the_toolchain(tools_root):
    assert set(TOOLCHAIN) | {"cpp", "binutils", "libpython3.13-minimal"} <= installed_packages(
        tools_root)
    ours = chroot(tools_root, "gcc", "--version")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.startswith(b"gcc (Debian 14"), ours.stdout
    theirs = under_qemu(tools_root, "/usr/bin/gcc", "--version")
    if theirs is not None:
        assert ours.stdout == theirs.stdout


@pytest.fixture
def scratch(tools_root):
    """A folder of its own in the tools root's /tmp (the root is shared by runs)."""
    path = tools_root / "tmp" / f"pemu-test-{os.getpid()}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_program_compiled_by_the_guests_gcc(tools_root, scratch):
    inside = "/tmp/" + scratch.name
    (scratch / "hello.c").write_text(HELLO_C)
    (scratch / "Makefile").write_text("hello: hello.c\n\tgcc -O2 -o $@ $<\n")
    result = chroot(tools_root, "make", "-C", inside, timeout=1800)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    result = chroot(tools_root, inside + "/hello", "pemu")
    assert result.stdout == b"hello from gcc on pemu: 1 3 5 7 9\n", result.stderr
    theirs = under_qemu(tools_root, inside + "/hello", "pemu")
    if theirs is not None:
        assert theirs.stdout == result.stdout


PYTHON = ("import sys, os, struct; from collections import Counter; "
          "print(sys.version_info[:2] >= (3, 13), os.uname().machine, sys.byteorder); "
          "print(sum(i * i for i in range(10**5)), 2**200 % 10**9 + 7, round(1e6 / 7, 6)); "
          "print(sorted(Counter('mississippi').items())); "
          "print(struct.pack('<dq', 2.5, -2).hex(), f'{3.14159:.3f}', hash('a') == hash('a')); "
          "print({k: len(k) for k in 'a bb ccc'.split()}, bytes(range(5)).decode(), 'é'.upper())")


def test_python3(tools_root):
    ours = chroot(tools_root, "python3", "-c", PYTHON)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.decode().splitlines() == [
        "True riscv64 little",
        f"{sum(i * i for i in range(10**5))} {2**200 % 10**9 + 7} {round(1e6 / 7, 6)}",
        "[('i', 4), ('m', 1), ('p', 2), ('s', 4)]",
        "0000000000000440feffffffffffffff 3.142 True",
        "{'a': 1, 'bb': 2, 'ccc': 3} \x00\x01\x02\x03\x04 É"]
    theirs = under_qemu(tools_root, "/usr/bin/python3", "-c", PYTHON)
    if theirs is not None:
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)


def gnu_build(root: Path, cpu) -> tuple[dict[str, bytes], dict[str, tuple[float, float]]]:
    """GNU hello unpacked in the root's /build and built with HELLO_STEPS, by whatever
    runs riscv64 programs now; what came out (config.h, the program, its output, the
    test summary), and each step's (wall, ``cpu()``) seconds."""
    build = root / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    subprocess.run(["tar", "-xzf", str(hello_tarball()), "-C", str(build)], check=True)
    source = f"/build/{HELLO_DIR}"
    times, outputs = {}, {}
    for step, command in HELLO_STEPS.items():
        wall, used = time.monotonic(), cpu()
        result = chroot(root, "sh", "-c", f"cd {source} && {command}", timeout=7200)
        times[step] = (time.monotonic() - wall, cpu() - used)
        assert result.returncode == 0, (f"{step}: {result.stdout.decode()[-2000:]}\n"
                                        f"{result.stderr.decode()[-2000:]}")
        outputs[step] = result.stdout
    ran = chroot(root, "sh", "-c", f"{source}/hello; {source}/hello -t; {source}/hello -g hi")
    summary = [line for line in outputs["make check"].splitlines() if line.startswith(b"# ")]
    return {"config.h": (build / HELLO_DIR / "config.h").read_bytes(),
            "hello": (build / HELLO_DIR / "hello").read_bytes(),
            "runs": ran.stdout, "summary": b"\n".join(summary)}, times


def _own_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def test_gnu_hello_configure_make_check(tools_root, pemu_binfmt):
    """./configure && make && make check of GNU hello (the tarball of Debian's hello
    source package) in the guest: thousands of processes (sh, sed, gcc's cc1, as, ld),
    with fork, exec, pipes and fd redirections of every kind."""
    try:
        hello_tarball()
    except OSError as e:
        pytest.skip(f"the hello tarball cannot be fetched: {e}")
    try:
        ours, times = gnu_build(tools_root, lambda: children_cpu(pemu_binfmt.pid))
        for step, (wall, cpu) in times.items():
            print(f"\nhello {step} under pemu: {wall:.0f} s wall, {cpu:.0f} CPU-s")
        assert ours["runs"] == b"Hello, world!\nhello, world\nhi\n"
        assert b"# FAIL:  0" in ours["summary"] and b"# PASS:" in ours["summary"], ours
        qemu = shutil.which("qemu-riscv64-static")
        if qemu is None:
            return
        with registered(f"pemu-test-chroot-qemu-{os.getpid()}", qemu, "F"):
            theirs, times = gnu_build(tools_root, _own_cpu)
        for step, (wall, cpu) in times.items():
            print(f"hello {step} under qemu-riscv64: {wall:.0f} s wall, {cpu:.0f} CPU-s")
        for what in ("config.h", "runs", "summary", "hello"):
            assert ours[what] == theirs[what], what
    finally:
        shutil.rmtree(tools_root / "build", ignore_errors=True)
