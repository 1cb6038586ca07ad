"""The Debian riscv64 guest with KVM in it: its initramfs plus an overlay that holds
Debian's kvm.ko (and what it depends on) and ``programs/kvm_nested.c``.

The shared initramfs carries no kvm.ko, so the modules come from the very package the
guest's Image came from (``linux-image-6.12.117+deb13-riscv64``), downloaded once from
the Debian archive and cached next to the user-mode tests' roots (debian_root.py:
``$PEMU_TEST_CACHE`` or ``~/.cache/pemu``).  The package has no modules.dep (depmod
writes it at install time), so the closure comes from each module's ``depends=``
modinfo field.  The overlay's ``/kvmtest/init`` (started by ``rdinit=``) mounts the
pseudo file systems, insmods the modules, shows the kernel's kvm lines, runs the
program and powers off.
"""

from __future__ import annotations

import lzma
import os
import subprocess
import tarfile
import urllib.request
from pathlib import Path

from tests.libvirt.initrd_overlay import with_overlay
from tests.linux_user.debian_root import MIRROR, _locked, cache_dir
from tests.system.conftest import PROGRAMS

KERNEL_RELEASE = "6.12.117+deb13-riscv64"
KERNEL_DEB = f"linux-image-{KERNEL_RELEASE}_6.12.117-1_riscv64.deb"
KERNEL_DEB_URL = f"{MIRROR}/pool/main/l/linux/{KERNEL_DEB}"
MODULES = f"usr/lib/modules/{KERNEL_RELEASE}/kernel/"
WANTED_MODULES = ("kvm",)
CC = "riscv64-linux-gnu-gcc"

INIT_SCRIPT = rb"""#!/bin/sh
# pemu's nested-KVM check (tests/system/test_nested_kvm.py), run as rdinit
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
echo "KVM-TEST start: $(uname -r)"
echo "KVM-TEST isa: $(grep -m1 '^isa' /proc/cpuinfo)"
while read -r ko; do
    insmod /kvmtest/$ko && echo "KVM-TEST insmod $ko ok" || echo "KVM-TEST insmod $ko FAILED"
done </kvmtest/modules
dmesg | grep -E 'kvm( \[[0-9]+\])?:' | sed 's/^/KVM-TEST dmesg: /'
[ -c /dev/kvm ] && echo "KVM-TEST /dev/kvm is a character device"
/kvmtest/kvm-nested
echo "KVM-TEST program exit status $?"
echo KVM-TEST-END
poweroff -f
"""


def deb_path() -> Path:
    """Where the kernel package is cached."""
    return cache_dir().parent / "debs" / KERNEL_DEB


def kernel_deb(timeout: float = 600) -> Path:
    """Debian's package of the guest's kernel, downloaded once (under a lock, renamed
    into place only when complete)."""
    final = deb_path()
    top = final.parent
    top.mkdir(parents=True, exist_ok=True)
    with _locked(top / f"{KERNEL_DEB}.lock"):
        if not final.exists():
            partial = top / f".{KERNEL_DEB}.tmp-{os.getpid()}"
            try:
                with urllib.request.urlopen(KERNEL_DEB_URL, timeout=timeout) as src, \
                        open(partial, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.rename(partial, final)
            finally:
                partial.unlink(missing_ok=True)
    return final


def _modinfo_depends(ko: bytes) -> list[str]:
    """The module names in a module's ``depends=`` modinfo string."""
    start = ko.find(b"\0depends=")
    if start < 0:
        return []
    value = ko[start + len(b"\0depends="):ko.index(b"\0", start + 1)]
    return [name for name in value.decode().split(",") if name]


def module_closure(deb: Path, wanted: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """``[(file name, uncompressed .ko)]`` for ``wanted`` and everything they depend on,
    dependencies first (the order insmod needs)."""
    compressed: dict[str, bytes] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                          stdout=subprocess.PIPE) as unpack:
        with tarfile.open(fileobj=unpack.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name.startswith(MODULES) and name.endswith(".ko.xz"):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    # modinfo names use '_' where file names may use '-'
                    compressed[Path(name).name[:-6].replace("-", "_")] = extracted.read()
    if unpack.returncode:
        raise subprocess.CalledProcessError(unpack.returncode, unpack.args)
    ordered: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(module: str) -> None:
        module = module.replace("-", "_")
        if module in seen:
            return
        seen.add(module)
        ko = lzma.decompress(compressed[module])
        for dependency in _modinfo_depends(ko):
            visit(dependency)
        ordered.append((f"{module}.ko", ko))

    for module in wanted:
        visit(module)
    return ordered


def build_program(out: Path) -> Path:
    """programs/kvm_nested.c as a static riscv64 binary."""
    binary = out / "kvm-nested"
    subprocess.run([CC, "-static", "-O2", "-Wall", "-o", str(binary),
                    str(PROGRAMS / "kvm_nested.c")], check=True, capture_output=True)
    return binary


def nested_kvm_initrd(initramfs: Path, work: Path) -> Path:
    """``initramfs`` plus the overlay (boot it with ``rdinit=/kvmtest/init``)."""
    modules = module_closure(kernel_deb(), WANTED_MODULES)
    files: dict[str, tuple[int, bytes]] = {"kvmtest": (0o40755, b"")}
    for name, ko in modules:
        files[f"kvmtest/{name}"] = (0o100644, ko)
    files["kvmtest/modules"] = (0o100644, "".join(f"{n}\n" for n, _ in modules).encode())
    files["kvmtest/kvm-nested"] = (0o100755, build_program(work).read_bytes())
    files["kvmtest/init"] = (0o100755, INIT_SCRIPT)
    return with_overlay(initramfs, files, work / "initrd-kvm.img")
