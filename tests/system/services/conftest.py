"""One Debian boot shared by every host-guest service test in this package.

Issue 21's services (virtio-serial with the real guest agent, balloon, vsock, 9p) are
each checked against ``../shared/guests/riscv64-debian``.  A Debian boot costs minutes,
so the whole package shares one guest (a package-scoped fixture) that carries every
service device at once; each service adds its devices in ``service_args`` and its
checks in its own ``test_*.py`` module.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pemu.guest_agent import GuestAgent
from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, ROOT, pemu_cmd, pemu_env
from tests.system.test_debian_net import QMP
from tests.system.test_debian_pci import Console

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1500  # seconds to the interactive shell on a loaded 2-core host
GUEST_RAM_MIB = 512
AGENT_SOCKET = "qga.sock"  # in the boot's work dir: the guest agent's chardev
SHUTDOWN_TIMEOUT = 300  # seconds from guest-shutdown to pemu's own exit
VSOCK_GUEST_CID = 3  # the userspace vsock's guest (test_vsock.py)
VSOCK_SOCKET = "vsock.sock"  # its host UNIX socket, in the boot's work directory


def service_args(work: Path) -> list[str]:
    """The command-line options of every service device; ``work`` is the boot's
    private directory (sockets, shared folders)."""
    args: list[str] = []
    # -- virtio-serial with the real guest agent (test_guest_agent.py) ------------------
    # The guest's /init starts qemu-ga on the port named org.qemu.guest_agent.0; the
    # host side is a Unix socket (AGENT_SOCKET) that the tests and the teardown's
    # guest-shutdown connect to.  virtio-serial-pci, as libvirt plugs it.
    args += ["-chardev", f"socket,id=qga0,path={work / AGENT_SOCKET},server=on,wait=off",
             "-device", "virtio-serial-pci,id=vser0",
             "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,"
             "bus=vser0.0"]
    # -- virtio-balloon and the userspace vsock (test_balloon.py, test_vsock.py) -------
    # deflate-on-oom stays off here: with it Linux keeps ballooned pages in MemTotal,
    # and the test shows the balloon in MemTotal (the unit tests cover the option)
    args += ["-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on",
             "-device", f"virtio-vsock-pci,id=vsock0,guest-cid={VSOCK_GUEST_CID},"
             f"uds-path={work / VSOCK_SOCKET}"]
    # -- virtio-9p (test_9p.py): the directory work/9p-share as mount tag "hostshare",
    # on virtio-9p-pci (what -virtfs gives, and what libvirt uses); its neighbour
    # work/9p-outside holds what the guest must never reach
    (work / "9p-share").mkdir()
    (work / "9p-outside").mkdir()
    args += ["-virtfs", f"local,path={work / '9p-share'},mount_tag=hostshare,"
                        "security_model=mapped-xattr"]
    return args


@dataclass
class ServicesGuest:
    proc: subprocess.Popen
    console: Console  # the guest's interactive shell on the serial console
    work: Path
    qmp_path: str

    def qmp(self) -> QMP:
        return QMP(self.qmp_path)


def power_off_through_the_agent(guest: ServicesGuest) -> None:
    """guest-shutdown must power the guest off: pemu then exits by itself, status 0.

    qemu-ga runs ``/sbin/shutdown -P +0``, which a Debian system gets from systemd or
    sysvinit; this initramfs has busybox only, so the guest is given the one-line
    /sbin/shutdown those packages amount to here (power off now).
    """
    guest.console.run("[ -x /sbin/shutdown ] || { printf '#!/bin/sh\\nexec poweroff -f\\n' "
                      "> /sbin/shutdown; chmod 755 /sbin/shutdown; }", "SHUTDOWN-READY", 120)
    with GuestAgent(str(guest.work / AGENT_SOCKET), timeout=120) as agent:
        agent.shutdown("powerdown")
    try:
        status = guest.proc.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pemu still runs {SHUTDOWN_TIMEOUT} s after guest-shutdown:\n"
                             f"{guest.console.text[-2000:]}") from None
    assert status == 0, f"pemu exited with {status} after guest-shutdown"


@pytest.fixture(scope="package")
def services_guest(tmp_path_factory):
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    work = tmp_path_factory.mktemp("debian-services")
    qmp_path = str(work / "qmp.sock")
    proc = subprocess.Popen(
        pemu_cmd("-M", "virt", "-m", f"{GUEST_RAM_MIB}M", "-nographic", "-no-reboot",
                 "-kernel", str(DEBIAN / "Image"),
                 "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
                 "-append", "console=ttyS0",
                 "-qmp", f"unix:{qmp_path},server=on,wait=off", *service_args(work)),
        env=pemu_env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    console = Console(proc)
    try:
        console.wait_for(r"pemu: interactive shell", BOOT_TIMEOUT)
        time.sleep(1)
        guest = ServicesGuest(proc, console, work, qmp_path)
        yield guest
        if (work / AGENT_SOCKET).exists():
            power_off_through_the_agent(guest)  # a failure here is a teardown error
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(qmp_path):
            os.unlink(qmp_path)
