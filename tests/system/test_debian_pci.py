"""Debian's riscv64 guest on virt's PCIe host: virtio-blk-pci, virtio-net-pci and an
nvme controller with two namespaces (a qcow2 and a raw image), on the PLIC (INTx:
without an MSI controller the guest has no msi-parent and falls back).

One boot for the module (several minutes on a loaded 2-core host); every check reads
that boot.  The guest's interactive shell on the serial console runs the commands: it
lists /sys/bus/pci/devices, writes a known pattern to the disk with dd and reads it
back (on vda, nvme0n1 and nvme0n2); the host compares the images with ``qemu-img
compare`` against the file it expects, reads QMP ``query-pci`` and HMP ``info pci``
while the guest runs, and sees the DHCP lease of ``-netdev user``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, ROOT, pemu_cmd, pemu_env
from tests.system.test_debian_net import QMP

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1500
DISK_SIZE = 16 << 20
PATTERN_OFFSET = 1 << 20
PATTERN_SIZE = 1 << 20
pytestmark = pytest.mark.slow


def pattern() -> bytes:
    """What ``yes pemu-pci-pattern | head -c 1048576`` prints."""
    line = b"pemu-pci-pattern\n"
    return (line * (PATTERN_SIZE // len(line) + 1))[:PATTERN_SIZE]


class Console:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out = bytearray()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while chunk := self.proc.stdout.read1(4096):  # type: ignore[union-attr]
            self.out += chunk

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.compile(pattern, re.M).search(self.text, start)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} on the console:\n{self.text[-3000:]}")

    def run(self, command: str, end: str, timeout: float = 300) -> str:
        """Type ``command; echo END`` into the guest shell; the output up to END."""
        start = len(self.out)
        self.proc.stdin.write(f"{command}; echo {end}\n".encode())  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        m = self.wait_for(rf"^{end}\r?$", timeout, start)
        return self.text[start:m.start()]


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img (qemu-utils)")
    work = tmp_path_factory.mktemp("debian-pci")
    disk, expected = work / "disk.raw", work / "expected.raw"
    nvme1, nvme2 = work / "nvme1.qcow2", work / "nvme2.raw"
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    with open(nvme2, "wb") as f:
        f.truncate(DISK_SIZE)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(nvme1), str(DISK_SIZE)],
                   check=True)
    with open(expected, "wb") as f:
        f.truncate(DISK_SIZE)
        f.seek(PATTERN_OFFSET)
        f.write(pattern())
    qmp_path = str(work / "qmp.sock")
    proc = subprocess.Popen(
        pemu_cmd("-M", "virt", "-m", "512M", "-nographic", "-no-reboot",
                 "-kernel", str(DEBIAN / "Image"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
                 "-append", "console=ttyS0 pemu.net=dhcp",
                 "-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "virtio-blk-pci,drive=d0,addr=0x3,id=disk0",
                 "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,id=nic0",
                 "-drive", f"file={nvme1},format=qcow2,if=none,id=nv1",
                 "-drive", f"file={nvme2},format=raw,if=none,id=nv2",
                 "-device", "nvme,serial=pemu-nvme-1,drive=nv1,id=nvme0,addr=0x5",
                 "-device", "nvme-ns,drive=nv2,bus=nvme0,nsid=2",
                 "-qmp", f"unix:{qmp_path},server=on,wait=off"),
        env=pemu_env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    console = Console(proc)
    try:
        console.wait_for(r"pemu: interactive shell", BOOT_TIMEOUT)
        time.sleep(1)
        results = {"boot": console.text}
        results["pci"] = console.run(
            'for d in /sys/bus/pci/devices/*; do echo "PCIDEV ${d##*/} $(cat $d/vendor) '
            '$(cat $d/device) $(cat $d/class) $(basename "$(readlink $d/driver)")"; done',
            "PCI-LIST-END")
        results["size"] = console.run("echo DISK-SECTORS $(cat /sys/block/vda/size)",
                                      "SIZE-END")
        results["dd"] = console.run(
            f"yes pemu-pci-pattern | head -c {PATTERN_SIZE} >/tmp/p && "
            f"dd if=/tmp/p of=/dev/vda bs=4096 seek={PATTERN_OFFSET // 4096} conv=fsync "
            "2>/dev/null && sync && echo 3 >/proc/sys/vm/drop_caches && "
            f"echo READBACK $(dd if=/dev/vda bs=4096 skip={PATTERN_OFFSET // 4096} "
            f"count={PATTERN_SIZE // 4096} 2>/dev/null | sha256sum)", "DD-END")
        for name in ("nvme0n1", "nvme0n2"):
            results[f"size-{name}"] = console.run(
                f"echo DISK-SECTORS $(cat /sys/block/{name}/size)", f"SIZE-{name}-END")
            results[f"dd-{name}"] = console.run(
                f"dd if=/tmp/p of=/dev/{name} bs=4096 seek={PATTERN_OFFSET // 4096} "
                "conv=fsync 2>/dev/null && sync && echo 3 >/proc/sys/vm/drop_caches && "
                f"echo READBACK $(dd if=/dev/{name} bs=4096 skip={PATTERN_OFFSET // 4096} "
                f"count={PATTERN_SIZE // 4096} 2>/dev/null | sha256sum)", f"DD-{name}-END")
        results["irqs"] = console.run("grep -E 'virtio|nvme' /proc/interrupts", "IRQ-END")
        qmp = QMP(qmp_path)
        results["query-pci"] = qmp.execute("query-pci")
        results["info pci"] = qmp.hmp("info pci")
        results["query-block"] = qmp.execute("query-block")
        qmp.close()
        proc.stdin.write(b"poweroff -f\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        results["status"] = proc.wait(timeout=300)
        cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(disk),
                              str(expected)], capture_output=True, text=True)
        results["compare"] = (cmp.returncode, cmp.stdout + cmp.stderr)
        for image, fmt in ((nvme1, "qcow2"), (nvme2, "raw")):
            cmp = subprocess.run(["qemu-img", "compare", "-f", fmt, "-F", "raw", str(image),
                                  str(expected)], capture_output=True, text=True)
            results[f"compare-{image.name}"] = (cmp.returncode, cmp.stdout + cmp.stderr)
        yield results
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(qmp_path):
            os.unlink(qmp_path)


def test_guest_enumerates_the_devices_with_their_drivers(guest):
    devs = {m[0]: m[1:] for m in re.findall(
        r"PCIDEV 0000:00:(\S+) 0x(\w+) 0x(\w+) 0x(\w+) (\S*)", guest["pci"])}
    assert devs["00.0"][:2] == ("1b36", "0008"), guest["pci"]  # the host bridge
    assert devs["03.0"] == ("1af4", "1042", "010000", "virtio-pci"), guest["pci"]
    net = [d for d in devs.values() if d[1] == "1041"]
    assert net and net[0][3] == "virtio-pci", guest["pci"]
    assert devs["05.0"] == ("1b36", "0010", "010802", "nvme"), guest["pci"]
    assert "pci-host-generic 30000000.pci: PCI host bridge to bus 0000:00" in guest["boot"]


def test_disk_is_seen_and_the_pattern_reads_back(guest):
    assert f"DISK-SECTORS {DISK_SIZE // 512}" in guest["size"], guest["size"]
    digest = hashlib.sha256(pattern()).hexdigest()
    assert f"READBACK {digest}" in guest["dd"], guest["dd"]


def test_image_holds_exactly_the_pattern(guest):
    assert guest["status"] == 0, guest["boot"][-2000:]
    assert guest["compare"][0] == 0, guest["compare"][1]


@pytest.mark.parametrize("name", ["nvme0n1", "nvme0n2"])
def test_nvme_namespaces_are_seen_and_the_pattern_reads_back(guest, name):
    assert f"DISK-SECTORS {DISK_SIZE // 512}" in guest[f"size-{name}"], guest[f"size-{name}"]
    digest = hashlib.sha256(pattern()).hexdigest()
    assert f"READBACK {digest}" in guest[f"dd-{name}"], guest[f"dd-{name}"]


def test_no_nvme_command_failed_in_the_guest(guest):
    # Linux logs every failed NVMe command: "nvme0: Admin Cmd(0x6), I/O Error (sct ...)"
    failed = re.findall(r"nvme\d+\S*: .*(?:Cmd|I/O Error|timeout).*", guest["boot"])
    assert not failed, failed


@pytest.mark.parametrize("image", ["nvme1.qcow2", "nvme2.raw"])
def test_nvme_images_hold_exactly_the_pattern(guest, image):
    assert guest["status"] == 0, guest["boot"][-2000:]
    assert guest[f"compare-{image}"][0] == 0, guest[f"compare-{image}"][1]


def test_net_got_its_dhcp_lease(guest):
    assert re.search(r"PEMU-TEST net eth0 10\.0\.2\.15/24", guest["boot"]), \
        guest["boot"][-3000:]


def test_interrupts_came_by_intx_on_the_plic(guest):
    # each virtio-pci function requested its INTx line: PLIC 32..35
    # (the shell echoes the command line too: only /proc/interrupts rows count)
    rows = re.findall(r"^\s*\d+:\s+(\d+)\s+(.*(?:virtio|nvme).*)$", guest["irqs"], re.M)
    # (nvme in slot 5 and the NIC in slot 1 both swizzle to INTB#: one shared row)
    assert len(rows) >= 2 and any("nvme0q1" in rest for _, rest in rows), guest["irqs"]
    for count, rest in rows:
        assert int(count) > 0 and re.search(r"\b3[2-5]\b", rest), (count, rest)


def test_query_pci_and_info_pci_show_the_guests_bars(guest):
    (bus,) = guest["query-pci"]
    by_id = {d["qdev_id"]: d for d in bus["devices"]}
    disk = by_id["disk0"]
    assert (disk["slot"], disk["id"]["vendor"], disk["id"]["device"]) == (3, 0x1AF4, 0x1042)
    bars = {r["bar"]: r for r in disk["regions"]}
    assert bars[4]["mem_type_64"] and bars[4]["size"] == 0x4000
    assert 0x4_0000_0000 <= bars[4]["address"] < 0x8_0000_0000  # placed by the guest
    assert 0x4000_0000 <= bars[1]["address"] < 0x8000_0000
    assert by_id["nic0"]["id"]["device"] == 0x1041
    assert 'id "disk0"' in guest["info pci"] and "1af4:1042" in guest["info pci"]
    assert any(b["device"] == "d0" for b in guest["query-block"])

