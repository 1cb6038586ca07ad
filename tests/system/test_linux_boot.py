"""Linux on the virt board: the shared guest boots to its self-test and powers off.

Every test runs on both TCG backends.  On the native backend the self-test boots
(``pemu.test=poweroff`` hashes 8 MiB inside the guest) take about a minute; on the
python backend about 16 minutes each, so there they run only with PEMU_LONG_TESTS=1,
and the python backend's Linux boot in the default suite is the interactive shell on
an ext4 root in a qcow2 overlay (about 2 minutes).
"""

from __future__ import annotations

import gzip
import os
import pty
import shutil
import subprocess

import pytest

from tests.system.conftest import GUESTS, OPENSBI, ROOT, pemu_cmd, pemu_env, run_pemu
from tests.system.test_virt_board import _read_until

BOOT_TIMEOUT = 3600
DONE = b"PEMU-GUEST-TEST-DONE"


def _need_guest() -> None:
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")


pytestmark = pytest.mark.usefixtures("tcg_backend")


def _need_long(backend: str) -> None:
    if backend == "python" and os.environ.get("PEMU_LONG_TESTS") != "1":
        pytest.skip("a Linux boot of 10 to 16 minutes on the python backend: "
                    "set PEMU_LONG_TESTS=1")


@pytest.mark.slow
def test_linux_initramfs_boot_to_poweroff(tcg_backend):
    """The whole self-test: 2.4 billion guest instructions."""
    _need_guest()
    _need_long(tcg_backend)
    r = run_pemu("-M", "virt", "-m", "256M", "-nographic", "-no-reboot",
                 "-kernel", str(GUESTS / "Image"), "-initrd", str(GUESTS / "initramfs.cpio.gz"),
                 "-append", "console=ttyS0 pemu.test=poweroff", timeout=BOOT_TIMEOUT)
    out = r.stdout.decode(errors="replace")
    assert "PEMU-GUEST-BOOT-OK" in out, out[-2000:]
    assert "PEMU-TEST sha256 ok" in out, out[-2000:]
    assert DONE.decode() in out
    assert r.returncode == 0, out[-1000:] + r.stderr.decode()


@pytest.mark.slow
def test_linux_ext4_root_on_virtio_blk(tmp_path, tcg_backend):
    _need_guest()
    _need_long(tcg_backend)
    image = _rootfs_copy(tmp_path)
    r = run_pemu("-M", "virt", "-m", "256M", "-nographic", "-no-reboot",
                 "-kernel", str(GUESTS / "Image"),
                 "-append", "console=ttyS0 root=/dev/vda rw init=/init pemu.test=poweroff",
                 "-drive", f"file={image},format=raw,if=none,id=hd0",
                 "-device", "virtio-blk-device,drive=hd0", timeout=BOOT_TIMEOUT)
    out = r.stdout.decode(errors="replace")
    assert "disk-marker: pemu-disk-marker-v1" in out, out[-2000:]
    assert DONE.decode() in out
    assert r.returncode == 0
    if shutil.which("dumpe2fs"):  # the rw mount updated the superblock in the image
        sb = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True,
                            text=True).stdout
        assert "Mount count:              0" not in sb


def _rootfs_copy(tmp_path):
    image = tmp_path / "rootfs.ext4"
    with gzip.open(GUESTS / "rootfs.ext4.gz") as src, open(image, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return image


def boot_shell_on_pty(drive: str) -> tuple[subprocess.Popen, int]:
    """Linux with its root on the virtio disk ``drive`` (a -drive value), console on a
    pty; returns the process and the pty's master once the shell prompt is there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(pemu_cmd("-M", "virt", "-m", "256M", "-nographic",
                                     "-kernel", str(GUESTS / "Image"),
                                     "-append", "console=ttyS0 root=/dev/vda rw init=/init",
                                     "-drive", drive),
                            stdin=slave, stdout=slave, stderr=slave, env=pemu_env(),
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    buf = bytearray()
    if not _read_until(master, b"pemu-guest:", BOOT_TIMEOUT, buf):
        proc.kill()
        proc.wait()
        os.close(master)
        pytest.fail(f"no shell prompt: {bytes(buf[-2000:])!r}")
    return proc, master


@pytest.mark.slow
def test_linux_interactive_shell_writes_to_a_qcow2_overlay(tmp_path):
    """A shell on ttyS0 through a pty, root on ext4 in a qcow2 overlay whose backing file is
    the raw image: run a command, read the disk's marker, write a file, power off.  Then
    real qemu-img finds the overlay clean, the backing file untouched, and the file in the
    guest's filesystem."""
    _need_guest()
    for tool in ("debugfs", "qemu-img"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    base = _rootfs_copy(tmp_path)
    base_bytes = base.read_bytes()
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
                    str(overlay)], check=True)
    proc, master = boot_shell_on_pty(f"file={overlay},format=qcow2,if=virtio")
    buf = bytearray()
    try:
        os.write(master, b"echo $((6 * 7))\r")
        assert _read_until(master, b"42", 300, buf), bytes(buf)
        del buf[:]
        os.write(master, b"cat /PEMU-DISK-MARKER\r")  # read through the backing file
        assert _read_until(master, b"this file lives on the virtio-blk ext4 image", 300, buf), \
            bytes(buf)
        os.write(master, b"echo written-by-the-guest > /pemu-host-check; sync; exit\r")
        assert proc.wait(timeout=600) == 0  # the shell's exit powers the guest off
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    check = subprocess.run(["qemu-img", "check", str(overlay)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert base.read_bytes() == base_bytes  # copy-on-write: the backing file never changes
    flat = tmp_path / "flat.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(flat)], check=True)
    text = subprocess.run(["debugfs", "-R", "cat /pemu-host-check", str(flat)],
                          capture_output=True, text=True).stdout
    assert "written-by-the-guest" in text
