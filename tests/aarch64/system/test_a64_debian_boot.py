"""Debian 13's arm64 guest (../shared/guests/aarch64-debian: the 6.12 kernel and the
initramfs of Debian packages) boots on ``pemu-system-aarch64 -M virt -cpu max`` with
one and with two vCPUs, on the native backend, and powers off through PSCI SYSTEM_OFF
(pemu exits 0).

The two-vCPU boot runs the guest's own self-test (``pemu.test=poweroff``) to its end.
The one-vCPU boot is also on the network: virtio-net-pci (MSI-X through the GICv2m
frame) with ``-netdev user,hostfwd=...`` and a virtio-rng-pci for the guest's entropy
(dropbear waits for the kernel's crng).  Its /init takes a DHCP lease
(``pemu.net=dhcp``) and starts dropbear (``pemu.sshd=1``, root with an empty
password); the test logs in with the real OpenSSH client, runs the self-test's
commands there, and powers the guest off from its console shell.

This boot used to look merely slow: with ``-cpu max`` (FEAT_LSE) SLUB's cmpxchg128 is a
CASP, which pemu lacked, so the kernel oopsed in sched_init_numa and spun in panic's
mdelay; and every misaligned load inside a page (Linux's zlib unpacking the initramfs)
took the softmmu's Python slow path.  Then the network boot showed that Debian's
dynamically linked programs (kmod, dropbear) need the wider Advanced SIMD set glibc
and libtomcrypt use (ADDHN, REV32, scalar DUP...).  Slow: one module-scoped boot per
vCPU count, every check reads that boot.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

DEBIAN = guest_file("aarch64-debian")
BOOT_S = 1500  # the board's own limit (status 124): a loaded 2-core host is slow
NET_SMP = 1  # the boot that is also on the network
MAC = "52:54:00:12:34:64"
SELFTEST_BYTES = 4194304  # /init's self-test: `yes pemu-guest-selftest | head -c` this
pytestmark = pytest.mark.slow


@dataclass
class Boot:
    smp: int
    status: int
    console: str
    ssh: str = ""  # what the network boot's ssh session printed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pemu(smp: int, append: str, *extra: str) -> list[str]:
    code = ("import sys; from pemu.cli import system_aarch64 as m; "
            "from pemu.cli.system_config import parse_system_argv as p; "
            f"sys.exit(m.run(p(sys.argv[1:], m.PROG), timeout={BOOT_S}))")
    return [sys.executable, "-c", code, "-M", "virt", "-cpu", "max", "-m", "1G",
            "-smp", str(smp), "-nographic", "-no-reboot", "-accel", "tcg,backend=native",
            "-kernel", str(DEBIAN / "vmlinuz"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
            "-append", append, *extra]


def _ssh(port: int, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sshpass", "-p", "", "ssh", "-p", str(port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=120", "root@127.0.0.1", command],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


# the self-test of /init, run through ssh: the same lines, so the checks below read both
SSH_SELFTEST = (
    "uname -a; cat /sys/class/net/eth0/address; ip -4 -o addr show dev eth0; "
    "echo \"PEMU-TEST cpus: $(grep -c ^processor /proc/cpuinfo) \"; "
    f"echo \"PEMU-TEST selftest $(yes pemu-guest-selftest | head -c {SELFTEST_BYTES} "
    "| sha256sum)\"; "
    f"head -c {SELFTEST_BYTES} /dev/urandom | sha256sum >/dev/null && echo 'PEMU-TEST urandom ok'")


def _network_boot(smp: int) -> Boot:
    if not (shutil.which("ssh") and shutil.which("sshpass")):
        pytest.skip("needs openssh-client and sshpass")
    from pemu.net.slirp_ffi import SlirpUnavailable, library
    try:
        library()
    except SlirpUnavailable as e:
        pytest.skip(str(e))
    port = _free_port()
    proc = subprocess.Popen(
        _pemu(smp, "console=ttyAMA0 pemu.net=dhcp pemu.sshd=1",
              "-netdev", f"user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:{port}-:22",
              "-device", f"virtio-net-pci,netdev=n0,mac={MAC}", "-device", "virtio-rng-pci"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: proc.stdout.read1(65536), b"")), daemon=True)
    reader.start()

    def console() -> str:
        return b"".join(chunks).decode(errors="replace")
    deadline = time.monotonic() + BOOT_S
    ssh = ""
    try:
        while "PEMU-TEST sshd up" not in console() or "~# " not in console():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no sshd:\n{console()[-3000:]}")
            time.sleep(1)
        r = _ssh(port, SSH_SELFTEST)
        ssh = r.stdout + r.stderr
        proc.stdin.write(b"poweroff -f\n")  # the console's shell
        proc.stdin.flush()
        status = proc.wait(timeout=max(60.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    return Boot(smp, status, console(), ssh)


@pytest.fixture(scope="module", params=[1, 2], ids=["smp1-net", "smp2"])
def boot(request) -> Boot:
    """One boot: the self-test in /init, or (NET_SMP) on the network with ssh."""
    smp = request.param
    if not (DEBIAN / "vmlinuz").exists():
        pytest.skip("needs ../shared/guests/aarch64-debian")
    if not host_supported():
        pytest.skip("the native TCG backend needs an x86-64 Linux host")
    if smp == NET_SMP:
        return _network_boot(smp)
    r = subprocess.run(_pemu(smp, "console=ttyAMA0 pemu.test=poweroff"),
                       capture_output=True, timeout=BOOT_S + 120)
    return Boot(smp, r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode())


def test_reaches_the_end_of_the_self_test_and_powers_off(boot) -> None:
    lines = (boot.console + boot.ssh).splitlines()
    markers = ["PEMU-GUEST-BOOT-OK", "PEMU-TEST urandom ok"]
    if boot.smp == NET_SMP:  # the self-test's hash, computed here
        want = hashlib.sha256((b"pemu-guest-selftest\n" * (SELFTEST_BYTES // 20 + 1))
                              [:SELFTEST_BYTES]).hexdigest()
        markers.append(f"PEMU-TEST selftest {want}")
    else:
        markers += ["PEMU-TEST sha256 ok", "PEMU-GUEST-TEST-DONE"]
    for marker in markers:
        assert any(line.startswith(marker) for line in lines), \
            f"no {marker}:\n{boot.console[-3000:]}\n{boot.ssh}"
    assert boot.status == 0, boot.console[-2000:]  # PSCI SYSTEM_OFF


def test_it_is_debians_kernel_with_every_cpu_online(boot) -> None:
    out = boot.console + boot.ssh
    assert re.search(r"Linux version 6\.12\.\S+-arm64 \(debian-kernel@", out)
    assert "Machine model: linux,dummy-virt" in out
    assert "psci: PSCIv1.1 detected in firmware." in out
    assert f"smp: Brought up 1 node, {boot.smp} CPU" in out, out[-3000:]
    assert "CPU features: detected: LSE atomic instructions" in out
    assert re.search(rf"PEMU-TEST cpus: {boot.smp} ", out), out[-2000:]


def test_the_initramfs_was_unpacked_and_init_ran(boot) -> None:
    out = boot.console
    assert "Trying to unpack rootfs image as initramfs..." in out
    assert "Freeing initrd memory" in out
    assert "Run /init as init process" in out
    assert re.search(r"Linux \S+ 6\.12\.\S+-arm64 .* aarch64 GNU/Linux", out)  # uname -a


def test_nothing_went_wrong_on_the_way(boot) -> None:
    out = boot.console + boot.ssh
    # (not "BUG:": the soft-lockup watchdog may fire on a loaded host, guest time being
    # the host's)
    for bad in ("Internal error", "Kernel panic", "Unable to handle", "Oops",
                "PEMU-WARN", "FAIL", "Illegal instruction"):
        assert bad not in out, bad


def test_the_network_boot_took_its_dhcp_lease(boot) -> None:
    if boot.smp != NET_SMP:
        pytest.skip("the self-test boot has no network")
    assert "PEMU-TEST net eth0 10.0.2.15/24" in boot.console, boot.console[-3000:]
    assert re.search(r"inet 10\.0\.2\.15/24", boot.ssh), boot.ssh
    # virtio-net-pci's queues interrupt through MSI-X on the GICv2m frame
    assert re.search(r"virtio-pci 0000:00:0\d\.0: enabling device", boot.console)


def test_ssh_through_hostfwd_runs_a_command(boot) -> None:
    if boot.smp != NET_SMP:
        pytest.skip("the self-test boot has no network")
    assert re.match(r"Linux \S+ 6\.12\.\S+-arm64 .* aarch64 GNU/Linux", boot.ssh), boot.ssh
    assert MAC in boot.ssh  # the MAC from -device ...,mac=
    assert "Auth succeeded with blank password for 'root'" in boot.console
