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

from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, ROOT, pemu_cmd, pemu_env
from tests.system.test_debian_net import QMP
from tests.system.test_debian_pci import Console

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1500  # seconds to the interactive shell on a loaded 2-core host
GUEST_RAM_MIB = 512


def service_args(work: Path) -> list[str]:
    """The command-line options of every service device; ``work`` is the boot's
    private directory (sockets, shared folders)."""
    args: list[str] = []
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
        yield ServicesGuest(proc, console, work, qmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(qmp_path):
            os.unlink(qmp_path)
