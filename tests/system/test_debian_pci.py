"""Debian's riscv64 guest on virt's PCIe host with every PCI storage controller and NIC
at once: virtio-blk-pci, virtio-net-pci, nvme (two namespaces: qcow2 and raw),
ich9-ahci with an ide-hd and an ide-cd, virtio-scsi-pci with a scsi-hd (qcow2); plus two
virtio-mmio devices (the lean guest's root disk, read-only, and an RNG) wired to the
interrupt controller.  Two boots, one per interrupt set-up of the board:

* ``plic``: ``-M virt``, no MSI controller; the PCI functions interrupt by INTx through
  the PLIC (Linux finds no msi-parent and falls back);
* ``aplic-imsic``: ``-M virt,aia=aplic-imsic``; the PCI functions use MSI-X (MSI for
  AHCI) delivered to the IMSICs, the wired devices go through the APLIC in MSI mode, and
  IPIs through the IMSICs (these are test_debian_aia's checks, folded into this boot).

Each boot (two harts; several minutes on a loaded 2-core host) stops at the guest's
interactive shell, which lists /sys/bus/pci/devices and the block and SCSI devices,
writes a known pattern with dd to each disk and reads it back, and prints
/proc/interrupts; the host reads QMP ``query-pci``/``query-block`` and HMP ``info pci``.

The PLIC boot also has an empty ``pcie-root-port`` and plays PCIe native hot-plug end
to end.  This kernel has no pciehp (``# CONFIG_HOTPLUG_PCI is not set``), so the
guest's shell does what pciehp would, through the port's config file in sysfs:
QMP ``blockdev-add`` + ``device_add`` of a virtio-blk-pci; the guest reads Presence
Detect Changed and Attention Button Pressed in Slot Status, acknowledges them, turns
the slot's power on (the card is invisible until then, as under QEMU), rescans, and
writes the pattern to the new disk; QMP ``device_del`` presses the Attention Button;
the guest sees it, blinks the Power Indicator (device_del is refused meanwhile),
removes the device and turns power and indicator off; only then DEVICE_DELETED comes
and query-pci no longer lists the disk.  The host compares its image too.
Then the shell hands over to /init's self-test (``pemu.test=poweroff`` on a bind-mounted
/proc/cmdline), which powers off; the host compares every image with ``qemu-img
compare`` against the file it expects.  The CD is seen as an ATAPI device with a SCSI
INQUIRY; its data cannot be read in this guest: the initramfs has no sr_mod/cdrom
modules (the unit tests in tests/hw/test_ahci.py read it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, ROOT, pemu_cmd, pemu_env
from tests.system.pciehp_shell import (
    PCIEHP_FUNCTIONS,
    PIC_BLINK,
    PIC_OFF,
    PIC_ON,
    POWER_ON,
    SLTCTL,
    SLTCTL_PCC,
    SLTCTL_PIC,
    SLTSTA,
    SLTSTA_ABP,
    SLTSTA_PDC,
    SLTSTA_PDS,
)
from tests.system.test_debian_net import QMP

DEBIAN = guest_file("riscv64-debian")
LEAN = guest_file("riscv64")
BOOT_TIMEOUT = 1800
DISK_SIZE = 16 << 20
CD_BLOCKS = 512
PATTERN_OFFSET = 1 << 20
PATTERN_SIZE = 1 << 20
pytestmark = pytest.mark.slow
# (machine, harts): the PLIC boot keeps one hart: with two, hart 0 stops taking timer
# interrupts once idle (an RCU stall; the same as aia=aplic's, see docs/SYSTEM.md)
MACHINES = {"plic": ("virt", 1), "aplic-imsic": ("virt,aia=aplic-imsic", 2)}
# the disks the guest writes: role -> (image, format); the guest finds each by sysfs path
DISKS = {"virtio-blk": ("disk.raw", "raw"), "nvme0n1": ("nvme1.qcow2", "qcow2"),
         "nvme0n2": ("nvme2.raw", "raw"), "ahci": ("ahci.raw", "raw"),
         "virtio-scsi": ("scsi.qcow2", "qcow2")}
# the empty hot-plug slot of the PLIC boot: its port and what goes into it
HOTPLUG_PORT = "0000:00:08.0"
HOTPLUG_IMAGE = "hotplug.qcow2"
SELF_TEST = ("echo ' console=ttyS0 pemu.test=poweroff ' >/tmp/cmdline; "
             "mount -o bind /tmp/cmdline /proc/cmdline && exec /init\n")


def pattern() -> bytes:
    """What ``yes pemu-pci-pattern | head -c 1048576`` prints."""
    line = b"pemu-pci-pattern\n"
    return (line * (PATTERN_SIZE // len(line) + 1))[:PATTERN_SIZE]


class EventQMP(QMP):
    """QMP that keeps the events it reads past (DEVICE_DELETED)."""

    def __init__(self, path: str) -> None:
        self.events: list[dict] = []
        super().__init__(path)

    def _read(self) -> dict:
        while True:
            msg = json.loads(self.file.readline())
            if "event" not in msg:
                return msg
            self.events.append(msg)


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

    def run(self, command: str, end: str, timeout: float = 900) -> str:
        """Type ``command; echo END`` into the guest shell; the output up to END."""
        start = len(self.out)
        self.proc.stdin.write(f"{command}; echo {end}\n".encode())  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        m = self.wait_for(rf"^{end}\r?$", timeout, start)
        return self.text[start:m.start()]


def role_of(name: str, path: str) -> str | None:
    """Which controller a /sys/block entry hangs off (by its sysfs path)."""
    if name.startswith("nvme"):
        return name
    if "/pci" not in path:
        return None  # the virtio-mmio root disk
    if name.startswith("vd"):
        return "virtio-blk"
    if name.startswith("sd"):
        return "ahci" if "/ata" in path else "virtio-scsi" if "/virtio" in path else None
    return None


def make_images(work) -> dict[str, object]:
    images = {}
    for role, (name, fmt) in DISKS.items():
        path = images[role] = work / name
        if fmt == "qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path),
                            str(DISK_SIZE)], check=True)
        else:
            with open(path, "wb") as f:
                f.truncate(DISK_SIZE)
    return images


def command_line(machine: str, harts: int, images, cd, rootfs, qmp_path: str) -> list[str]:
    hotplug_slot = (["-device", "pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x8"]
                    if machine == "virt" else [])
    return pemu_cmd(*hotplug_slot,
        "-M", machine, "-m", "512M", "-smp", str(harts), "-nographic", "-no-reboot",
        "-kernel", str(DEBIAN / "Image"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
        "-append", "console=ttyS0 pemu.net=dhcp",
        "-drive", f"file={images['virtio-blk']},format=raw,if=none,id=d0",
        "-device", "virtio-blk-pci,drive=d0,addr=0x3,id=disk0",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,id=nic0",
        "-drive", f"file={images['nvme0n1']},format=qcow2,if=none,id=nv1",
        "-drive", f"file={images['nvme0n2']},format=raw,if=none,id=nv2",
        "-device", "nvme,serial=pemu-nvme-1,drive=nv1,id=nvme0,addr=0x5",
        "-device", "nvme-ns,drive=nv2,bus=nvme0,nsid=2",
        "-drive", f"file={images['ahci']},format=raw,if=none,id=sata0",
        "-drive", f"file={cd},format=raw,if=none,id=cd0,media=cdrom",
        "-device", "ich9-ahci,id=ahci,addr=0x6",
        "-device", "ide-hd,drive=sata0,bus=ahci.0", "-device", "ide-cd,drive=cd0,bus=ahci.1",
        "-drive", f"file={images['virtio-scsi']},format=qcow2,if=none,id=sd0",
        "-device", "virtio-scsi-pci,id=scsi0,addr=0x7",
        "-device", "scsi-hd,drive=sd0,bus=scsi0.0,channel=0,scsi-id=1,lun=0",
        "-drive", f"file={rootfs},format=raw,if=none,id=root,readonly=on",
        "-device", "virtio-blk-device,drive=root", "-device", "virtio-rng-device",
        "-qmp", f"unix:{qmp_path},server=on,wait=off")


def guest_checks(console: Console, qmp_path: str, hotplug_image=None) -> dict[str, object]:
    results: dict[str, object] = {"boot": console.text}
    results["pci"] = console.run(
        'for d in /sys/bus/pci/devices/*; do echo "PCIDEV ${d##*/} $(cat $d/vendor) '
        '$(cat $d/device) $(cat $d/class) $(basename "$(readlink $d/driver)")"; done',
        "PCI-LIST-END")
    results["blocks"] = console.run(
        'for b in /sys/block/*; do echo "BLOCK ${b##*/} $(cat $b/size) $(readlink -f $b)"; '
        'done; for d in /sys/bus/scsi/devices/*:*:*:*; do echo "SCSIDEV ${d##*/} '
        '$(cat $d/type) $(cat $d/vendor) $(cat $d/model) $(readlink -f $d)"; done',
        "BLOCK-LIST-END")
    roles = {}
    for name, size, path in re.findall(r"^BLOCK (\S+) (\d+) (\S+)", results["blocks"], re.M):
        role = role_of(name, path)
        if role is not None:
            roles[role] = (name, int(size))
    results["roles"] = roles
    console.run(f"yes pemu-pci-pattern | head -c {PATTERN_SIZE} >/tmp/p", "PATTERN-END")
    for role, (name, _) in roles.items():
        results[f"dd-{role}"] = console.run(
            f"dd if=/tmp/p of=/dev/{name} bs=4096 seek={PATTERN_OFFSET // 4096} "
            "conv=fsync 2>/dev/null && sync && echo 3 >/proc/sys/vm/drop_caches && "
            f"echo READBACK $(dd if=/dev/{name} bs=4096 skip={PATTERN_OFFSET // 4096} "
            f"count={PATTERN_SIZE // 4096} 2>/dev/null | sha256sum)", f"DD-{role}-END")
    results["irqs"] = console.run("echo PEMU-IRQS-BEGIN; cat /proc/interrupts", "IRQ-END")
    results["dmesg"] = console.run("dmesg | grep -iE 'ata[0-9]|ahci|scsi'", "DMESG-END")
    qmp = EventQMP(qmp_path)
    results["query-pci"] = qmp.execute("query-pci")
    results["info pci"] = qmp.hmp("info pci")
    results["query-block"] = qmp.execute("query-block")
    if hotplug_image is not None:
        results["hotplug"] = hot_plug_round_trip(console, qmp, hotplug_image)
    qmp.close()
    return results


def hot_plug_round_trip(console: Console, qmp: EventQMP, image) -> dict[str, object]:
    """device_add into the empty slot, the guest's pciehp steps, the disk used, then
    device_del answered by the guest powering the slot off."""
    r: dict[str, object] = {}
    run = console.run
    r["before"] = run(f"P=/sys/bus/pci/devices/{HOTPLUG_PORT}/config; {PCIEHP_FUNCTIONS}; "
                      "find_exp; slot before", "SLOT-BEFORE-END")
    qmp.execute("blockdev-add", driver="file", filename=str(image), **{"node-name": "hp-file"})
    qmp.execute("blockdev-add", driver="qcow2", file="hp-file", **{"node-name": "hp-disk"})
    qmp.execute("device_add", driver="virtio-blk-pci", drive="hp-disk", bus="rp1",
                id="hotdisk")
    # the card is in but the slot is off: a rescan before power-on finds nothing
    r["plugged"] = run("slot plugged; echo 1 >/sys/bus/pci/rescan; "
                       f"echo BEHIND $(ls -d /sys/bus/pci/devices/{HOTPLUG_PORT}/0000:??:??.? "
                       "2>/dev/null | wc -l)", "SLOT-PLUGGED-END")
    # pciehp: acknowledge the events, power on with the indicator on, scan the slot
    r["enabled"] = run(
        f"{POWER_ON}; slot enabled; echo 1 >/sys/bus/pci/rescan; sleep 1; "
        f"for b in /sys/block/vd*; do readlink -f $b | grep -q {HOTPLUG_PORT}/ && "
        "echo HOTDISK ${b##*/} $(cat $b/size); done", "SLOT-ENABLED-END")
    m = re.search(r"^HOTDISK (\S+) (\d+)", r["enabled"], re.M)  # type: ignore[arg-type]
    if m:
        name = m[1]
        r["dd"] = run(
            f"dd if=/tmp/p of=/dev/{name} bs=4096 seek={PATTERN_OFFSET // 4096} "
            "conv=fsync 2>/dev/null && sync && echo 3 >/proc/sys/vm/drop_caches && "
            f"echo READBACK $(dd if=/dev/{name} bs=4096 skip={PATTERN_OFFSET // 4096} "
            f"count={PATTERN_SIZE // 4096} 2>/dev/null | sha256sum)", "DD-HOTPLUG-END")
    qmp.execute("device_del", id="hotdisk")
    # pciehp on the button: indicator blinking (5 s to cancel), during which QEMU and
    # pemu refuse another device_del
    r["button"] = run(f"slot button; wr16 $((X + {SLTSTA})) $(rd16 $((X + {SLTSTA}))); "
                      f"wr16 $((X + {SLTCTL})) $(( ($(rd16 $((X + {SLTCTL}))) & "
                      f"~{SLTCTL_PIC}) | {PIC_BLINK} )); slot blinking", "SLOT-BUTTON-END")
    qmp.file.write(json.dumps({"execute": "device_del",
                               "arguments": {"id": "hotdisk"}}).encode() + b"\n")
    qmp.file.flush()
    r["del-while-blinking"] = qmp._read()
    r["pci-before-off"] = qmp.execute("query-pci")
    r["events-before-off"] = [e["event"] for e in qmp.events]
    # the driver lets go of the device, then power and indicator off.  The order
    # matters: a card that vanishes under its driver is a surprise removal, and the
    # guest's power-off then waits forever in virtio's reset for a status register
    # that reads all ones.  (A loop: busybox's ash does not glob a redirection's target.)
    r["disabled"] = run(f"for f in /sys/bus/pci/devices/{HOTPLUG_PORT}/0000:??:??.?; do "
                        "echo 1 >$f/remove; done; "
                        f"wr16 $((X + {SLTCTL})) $(( $(rd16 $((X + {SLTCTL}))) | "
                        f"{SLTCTL_PCC | PIC_OFF} "
                        ")); slot disabled; echo 1 >/sys/bus/pci/rescan; "
                        f"echo BEHIND $(ls -d /sys/bus/pci/devices/{HOTPLUG_PORT}/0000:??:??.? "
                        "2>/dev/null | wc -l)", "SLOT-DISABLED-END")
    r["pci-after"] = qmp.execute("query-pci")
    r["events"] = list(qmp.events)
    return r


@pytest.fixture(scope="module", params=list(MACHINES))
def guest(request, tmp_path_factory):
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img (qemu-utils)")
    work = tmp_path_factory.mktemp(f"debian-pci-{request.param}")
    images = make_images(work)
    expected = work / "expected.raw"
    with open(expected, "wb") as f:
        f.truncate(DISK_SIZE)
        f.seek(PATTERN_OFFSET)
        f.write(pattern())
    cd = work / "cd.img"  # any 2 KiB-block image serves as a disc
    cd.write_bytes(b"".join(f"pemu-cd-block-{n:08d}".encode().ljust(2048, b".")
                            for n in range(CD_BLOCKS)))
    rootfs = work / "rootfs.ext4"
    with gzip.open(LEAN / "rootfs.ext4.gz") as src, open(rootfs, "wb") as dst:
        shutil.copyfileobj(src, dst)
    qmp_path = str(work / "qmp.sock")
    hotplug_image = None
    if MACHINES[request.param][0] == "virt":
        hotplug_image = images["hotplug"] = work / HOTPLUG_IMAGE
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(hotplug_image),
                        str(DISK_SIZE)], check=True)
    started = time.monotonic()
    proc = subprocess.Popen(command_line(*MACHINES[request.param], images, cd, rootfs,
                                         qmp_path),
                            env=pemu_env(), cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    console = Console(proc)
    try:
        console.wait_for(r"pemu: interactive shell", BOOT_TIMEOUT)
        time.sleep(1)
        results = guest_checks(console, qmp_path, hotplug_image)
        results["aia"] = request.param
        results["harts"] = MACHINES[request.param][1]
        proc.stdin.write(SELF_TEST.encode())  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        results["status"] = proc.wait(timeout=BOOT_TIMEOUT)
        results["console"] = console.text.replace("\r\n", "\n")
        results["seconds"] = time.monotonic() - started
        for role, image in images.items():
            fmt = "qcow2" if role == "hotplug" else DISKS[role][1]
            cmp = subprocess.run(["qemu-img", "compare", "-f", fmt, "-F", "raw",
                                  str(image), str(expected)], capture_output=True, text=True)
            results[f"compare-{role}"] = (cmp.returncode, cmp.stdout + cmp.stderr)
        yield results
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(qmp_path):
            os.unlink(qmp_path)


# -- the PCI functions and their drivers ----------------------------------------------------
def test_guest_enumerates_the_devices_with_their_drivers(guest):
    devs = {m[0]: m[1:] for m in re.findall(
        r"PCIDEV 0000:00:(\S+) 0x(\w+) 0x(\w+) 0x(\w+) (\S*)", guest["pci"])}
    assert devs["00.0"][:2] == ("1b36", "0008"), guest["pci"]  # the host bridge
    assert devs["03.0"] == ("1af4", "1042", "010000", "virtio-pci"), guest["pci"]
    net = [d for d in devs.values() if d[1] == "1041"]
    assert net and net[0][3] == "virtio-pci", guest["pci"]
    assert devs["05.0"] == ("1b36", "0010", "010802", "nvme"), guest["pci"]
    assert devs["06.0"] == ("8086", "2922", "010601", "ahci"), guest["pci"]
    assert devs["07.0"] == ("1af4", "1048", "010000", "virtio-pci"), guest["pci"]
    assert "pci-host-generic 30000000.pci: PCI host bridge to bus 0000:00" in guest["boot"]


def test_every_disk_is_seen_with_its_size(guest):
    assert set(guest["roles"]) == set(DISKS), guest["blocks"]
    for role, (_, sectors) in guest["roles"].items():
        assert sectors == DISK_SIZE // 512, (role, guest["blocks"])


@pytest.mark.parametrize("role", list(DISKS))
def test_the_pattern_reads_back_in_the_guest(guest, role):
    digest = hashlib.sha256(pattern()).hexdigest()
    assert f"READBACK {digest}" in guest.get(f"dd-{role}", ""), guest["blocks"]


@pytest.mark.parametrize("role", list(DISKS))
def test_image_holds_exactly_the_pattern(guest, role):
    assert guest["status"] == 0, guest["console"][-2000:]
    assert guest[f"compare-{role}"][0] == 0, guest[f"compare-{role}"][1]


def test_the_cd_and_the_scsi_disk_answer_inquiry(guest):
    units = re.findall(r"^SCSIDEV (\S+) (\d+) (\S+) (.+?) (/sys\S+)\r?$", guest["blocks"], re.M)
    cds = [u for u in units if u[1] == "5"]
    assert cds and cds[0][2] == "QEMU" and "QEMU CD-ROM" in cds[0][3], guest["blocks"]
    assert "/ata" in cds[0][4], cds  # on the AHCI port
    scsi = [u for u in units if "/virtio" in u[4]]
    assert scsi and scsi[0][1] == "0" and "QEMU HARDDISK" in scsi[0][3], guest["blocks"]
    assert re.search(r"ata\d+\.00: ATAPI: QEMU DVD-ROM", guest["dmesg"]), guest["dmesg"]


def test_no_storage_command_failed_in_the_guest(guest):
    text = guest["console"]
    # Linux logs failed NVMe commands, libata's error handling, and SCSI errors
    failed = re.findall(r"nvme\d+\S*: .*(?:Cmd|I/O Error|timeout).*", text)
    failed += re.findall(r"ata\d+(?:\.\d+)?: (?:exception|failed command|hard resetting|"
                         r"COMRESET failed).*", text)
    failed += re.findall(r".*(?:I/O error, dev|Buffer I/O error|FAILED Result).*", text)
    assert not failed, failed
    assert re.search(r"ata\d+: SATA link up", guest["dmesg"]), guest["dmesg"]


def test_net_got_its_dhcp_lease(guest):
    assert re.search(r"PEMU-TEST net eth0 10\.0\.2\.15/24", guest["boot"]), \
        guest["boot"][-3000:]


# -- interrupts ------------------------------------------------------------------------------
# a /proc/interrupts row: counts (one per CPU), chip, hw irq, trigger, [flow,] device names
IRQ_ROW = re.compile(r"^\s*\d+:((?:\s+\d+)+)\s+(\D.*?)\s+(\d+)\s+(?:Edge|Level)\s+"
                     r"(?:-\S+\s+)?(.+?)\s*$", re.M)
PLIC = "SiFive PLIC"


def interrupt_rows(irqs: str) -> list[tuple[int, str, int, str]]:
    """(count on all CPUs, chip, hw irq, device names) per row of /proc/interrupts."""
    table = irqs[irqs.rfind("PEMU-IRQS-BEGIN"):]  # the echoed command line names it too
    return [(sum(int(c) for c in m[1].split()), m[2], int(m[3]), m[4])
            for m in IRQ_ROW.finditer(table)]


@pytest.mark.parametrize("device", ["nvme0q1", "ahci", "virtio"])
def test_pci_interrupts_come_by_intx_or_msi_as_configured(guest, device):
    rows = [r for r in interrupt_rows(guest["irqs"]) if device in r[3] and r[0] > 0]
    intx = [r for r in rows if r[1] == PLIC and 32 <= r[2] <= 35]  # the PLIC's INTx lines
    if guest["aia"] == "plic":
        assert intx, guest["irqs"]
    else:
        assert not intx, guest["irqs"]
        assert any(r[1].startswith(("PCI-MSIX-", "PCI-MSI-")) for r in rows), guest["irqs"]


def test_ahci_uses_msi_and_virtio_scsi_msix_with_aia(guest):
    if guest["aia"] == "plic":
        pytest.skip("no MSI controller on the PLIC boot")
    rows = interrupt_rows(guest["irqs"])
    ahci = [r for r in rows if r[3].startswith("ahci[")]
    assert ahci and ahci[0][1].startswith("PCI-MSI-") and ahci[0][0] > 0, guest["irqs"]
    scsi = [r for r in rows if r[3].endswith("-request") and r[0] > 0]  # virtio_scsi's queue
    assert scsi and scsi[0][1].startswith("PCI-MSIX-"), guest["irqs"]


def test_the_kernel_drives_the_aplic_as_configured(guest):
    out = guest["boot"]
    if guest["aia"] == "plic":
        assert "riscv-imsic" not in out and "riscv-aplic" not in out
        return
    assert "riscv-intc: 64 local interrupts mapped using AIA" in out
    assert re.search(r"riscv-imsic: imsics@28000000: providing IPIs using interrupt 1", out)
    assert re.search(r"riscv-aplic d000000\.aplic: 96 interrupts forwarded to MSI base "
                     r"0x0*28000000", out), out[-3000:]


def test_uart_and_virtio_mmio_interrupts_come_through_the_wired_controller(guest):
    chip = PLIC if guest["aia"] == "plic" else "APLIC-MSI-d000000.aplic"
    rows = interrupt_rows(guest["irqs"])
    uart = [r for r in rows if r[3] == "ttyS0"]
    assert uart and uart[0][1] == chip and uart[0][0] > 0, guest["irqs"]
    # virt's virtio-mmio slots are wired to IRQs 1..8; the PCI functions probe first, so
    # these are the highest virtioN
    mmio = [r for r in rows if 1 <= r[2] <= 8 and re.fullmatch(r"virtio\d+", r[3])]
    assert len(mmio) == 2, guest["irqs"]
    assert all(r[1] == chip and r[0] > 0 for r in mmio), guest["irqs"]


# -- the self-test, the monitor ----------------------------------------------------------------
def test_reaches_the_end_of_the_self_test(guest):
    out = guest["console"]
    for marker in (f"PEMU-TEST cpus: {guest['harts']} ", "PEMU-TEST sha256 ok",
                   "PEMU-TEST urandom ok", "driver virtio_blk", "driver virtio_rng",
                   "PEMU-GUEST-TEST-DONE"):
        assert marker in out, f"no {marker}:\n{out[-3000:]}"
    assert guest["status"] == 0, out[-2000:]


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
    abar = {r["bar"]: r for r in by_id["ahci"]["regions"]}[5]
    assert abar["size"] == 0x1000 and 0x4000_0000 <= abar["address"] < 0x8000_0000
    assert 'id "disk0"' in guest["info pci"] and "1af4:1042" in guest["info pci"]
    assert "8086:2922" in guest["info pci"] and "1af4:1048" in guest["info pci"]
    assert any(b["device"] == "d0" for b in guest["query-block"])



# -- PCIe hot-plug, the guest playing pciehp (PLIC boot) -------------------------------------
def slot_registers(text: str, tag: str) -> tuple[int, int]:
    """(Slot Control, Slot Status) as the guest printed them at step ``tag``."""
    m = re.search(rf"^SLOT {tag} ctl=(\d+) sta=(\d+)", text, re.M)
    assert m, text
    return int(m[1]), int(m[2])


@pytest.fixture
def hotplug(guest):
    if "hotplug" not in guest:
        pytest.skip("hot-plug is played on the PLIC boot")
    return guest["hotplug"]


def test_hot_plug_tells_the_guest_and_the_card_waits_for_power(hotplug):
    ctl, sta = slot_registers(hotplug["before"], "before")
    # after reset an empty slot is off, its power indicator off (QEMU's 0x7c0)
    assert ctl & SLTCTL_PCC and ctl & SLTCTL_PIC == PIC_OFF, hex(ctl)
    assert not sta & SLTSTA_PDS, hex(sta)
    ctl, sta = slot_registers(hotplug["plugged"], "plugged")
    events = SLTSTA_PDS | SLTSTA_PDC | SLTSTA_ABP  # QEMU's 0x49 after device_add
    assert sta & events == events, hex(sta)
    assert re.search(r"^BEHIND 0\r?$", hotplug["plugged"], re.M), hotplug["plugged"]
    ctl, sta = slot_registers(hotplug["enabled"], "enabled")
    assert not ctl & SLTCTL_PCC and ctl & SLTCTL_PIC == PIC_ON, hex(ctl)
    assert sta & SLTSTA_PDS and not sta & (SLTSTA_PDC | SLTSTA_ABP), hex(sta)
    assert re.search(rf"^HOTDISK vd\w+ {DISK_SIZE // 512}\r?$", hotplug["enabled"], re.M), \
        hotplug["enabled"]


def test_the_hot_plugged_disk_takes_the_pattern(guest, hotplug):
    digest = hashlib.sha256(pattern()).hexdigest()
    assert f"READBACK {digest}" in hotplug.get("dd", ""), hotplug["enabled"]
    assert guest["compare-hotplug"][0] == 0, guest["compare-hotplug"][1]


def test_device_del_completes_only_when_the_guest_powers_the_slot_off(hotplug):
    _, sta = slot_registers(hotplug["button"], "button")
    assert sta & SLTSTA_ABP and sta & SLTSTA_PDS, hex(sta)
    ctl, _ = slot_registers(hotplug["button"], "blinking")
    assert ctl & SLTCTL_PIC == PIC_BLINK, hex(ctl)
    refused = hotplug["del-while-blinking"]
    assert "guest is busy (power indicator blinking)" in refused["error"]["desc"], refused

    def behind_port(pci: list) -> list[str]:
        (port,) = [d for d in pci[0]["devices"] if d["qdev_id"] == "rp1"]
        return [d["qdev_id"] for d in port["pci_bridge"]["devices"]]
    assert "DEVICE_DELETED" not in hotplug["events-before-off"]
    assert behind_port(hotplug["pci-before-off"]) == ["hotdisk"]
    ctl, sta = slot_registers(hotplug["disabled"], "disabled")
    assert ctl & SLTCTL_PCC and ctl & SLTCTL_PIC == PIC_OFF, hex(ctl)
    assert not sta & SLTSTA_PDS and sta & SLTSTA_PDC, hex(sta)
    deleted = [e["data"] for e in hotplug["events"]
               if e["event"] == "DEVICE_DELETED" and "device" in e["data"]]
    assert deleted == [{"device": "hotdisk", "path": "/machine/peripheral/hotdisk"}], deleted
    assert behind_port(hotplug["pci-after"]) == []
    assert re.search(r"^BEHIND 0\r?$", hotplug["disabled"], re.M), hotplug["disabled"]
