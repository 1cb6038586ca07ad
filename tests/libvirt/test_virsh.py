"""Debian's libvirt 9.0 drives pemu: ``virsh domcapabilities`` probes it, and a
domain of the lean guest is defined, started, paused, resumed and destroyed.

libvirt runs here as its embedded QEMU driver (``qemu:///embed?root=DIR``): the
driver lives in the virsh process, with its configuration, cache, logs and sockets
in the test's own directory, so no daemon is started and nothing of the host's
libvirt is used.  The driver insists that the ``libvirt-qemu`` user exists (Debian's
libvirt-daemon-system postinst creates it); the test creates it as that postinst
would when it runs as root.  libvirt's own debug log of the QMP traffic
(``1:qemu.qemu_monitor``) shows what libvirt sent and what pemu answered.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.libvirt.libvirtd import unexpected_qmp_errors
from tests.system.conftest import GUESTS, OPENSBI, ROOT

QEMU_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                   "libvirt_driver_qemu.so")
VIRSH_TIMEOUT = 180


def _need_libvirt() -> None:
    if shutil.which("virsh") is None or not QEMU_DRIVER.exists():
        pytest.skip("Debian's libvirt is not installed (libvirt-clients, "
                    "libvirt-daemon-driver-qemu: scripts/install-deps.sh)")
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        if os.geteuid() != 0:
            pytest.skip("libvirt's QEMU driver needs the libvirt-qemu user, and only root "
                        "can create it")
        # what libvirt-daemon-system's postinst does
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin",
                        "libvirt-qemu"], check=True, capture_output=True)


class EmbeddedLibvirt:
    """libvirt's QEMU driver with everything under ``base``; pemu as the emulator."""

    def __init__(self, base: Path) -> None:
        self.root = base / "libvirt"
        (self.root / "etc").mkdir(parents=True)
        # pemu runs as the test's user: the guest files stay readable and nothing is
        # chowned; the child's stdio goes to a file (no virtlogd daemon needed)
        (self.root / "etc" / "qemu.conf").write_text(
            f'user = "{pwd.getpwuid(os.geteuid()).pw_name}"\n'
            'group = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
            'namespaces = []\nstdio_handler = "file"\n')
        self.emulator = base / "pemu-system-riscv64"
        self.emulator.write_text(
            f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} "
            '-m pemu.cli.system_riscv64 "$@"\n')
        self.emulator.chmod(0o755)
        self.log = base / "libvirt-monitor.log"

    def virsh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, LIBVIRT_LOG_FILTERS="1:qemu.qemu_monitor 4:*",
                   LIBVIRT_LOG_OUTPUTS=f"1:file:{self.log}")
        r = subprocess.run(["virsh", "-c", f"qemu:///embed?root={self.root}",
                            "; ".join(commands)], env=env, capture_output=True, text=True,
                           timeout=VIRSH_TIMEOUT, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, (commands, r.stdout, r.stderr, self.emulator_log())
        return r

    def emulator_log(self) -> str:
        logs = list((self.root / "log").glob("qemu/*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)

    def sent(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return re.findall(r'QEMU_MONITOR_SEND_MSG: mon=\S+ msg=\{"execute":"([^"]+)"', text)


def _unexpected_errors(lv: EmbeddedLibvirt) -> list[dict]:
    return unexpected_qmp_errors(lv.log.read_text(errors="replace"))


@pytest.fixture
def libvirt():
    """In a short directory of its own: libvirt refuses monitor socket paths over 107
    bytes, and pytest's tmp_path with a domain's name appended is longer."""
    _need_libvirt()
    base = Path(tempfile.mkdtemp(prefix="pemu-lv-", dir="/tmp"))
    yield EmbeddedLibvirt(base)
    shutil.rmtree(base, ignore_errors=True)


def test_domcapabilities_lists_pemus_devices(libvirt):
    r = libvirt.virsh(f"domcapabilities --emulatorbin {libvirt.emulator} --arch riscv64 "
                      "--machine virt --virttype qemu")
    caps = ET.fromstring(r.stdout)
    assert caps.findtext("path") == str(libvirt.emulator)
    assert caps.findtext("domain") == "qemu"
    assert caps.findtext("arch") == "riscv64" and caps.findtext("machine") == "virt"
    disk_models = [v.text for v in caps.findall("./devices/disk/enum[@name='model']/value")]
    # virtio-blk-pci (modern only) is also virtio-blk-pci-non-transitional; libvirt then
    # offers virtio-transitional too, which pemu refuses at start (no legacy virtio)
    assert {"virtio", "virtio-non-transitional"} <= set(disk_models)
    rng = [v.text for v in caps.findall("./devices/rng/enum[@name='model']/value")]
    assert {"virtio", "virtio-non-transitional"} <= set(rng)  # virtio-rng-pci
    assert caps.find("./devices/tpm").get("supported") == "no"
    assert caps.find("./cpu/mode[@name='host-passthrough']").get("supported") == "no"
    sent = libvirt.sent()
    assert {"query-qmp-schema", "qom-list-types", "device-list-properties",
            "query-command-line-options", "query-tpm-models"} <= set(sent)
    assert _unexpected_errors(libvirt) == []


LEAN_DOMAIN = """<domain type='qemu'>
  <name>pemu-lean</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='riscv64' machine='virt'>hvm</type>
    <kernel>{guests}/Image</kernel>
    <initrd>{guests}/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{serial}'/></serial>
    <interface type='user'><model type='virtio'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='virtio'><stats period='2'/></memballoon>
  </devices>
</domain>
"""


def _wait_for(path: Path, needle: bytes, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and needle in path.read_bytes():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_the_lean_guest_runs_as_a_libvirt_domain(libvirt):
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")
    serial = libvirt.root.parent / "serial.log"
    xml = libvirt.root.parent / "lean.xml"
    disk = libvirt.root.parent / "disk.qcow2"
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian qemu-utils)")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    xml.write_text(LEAN_DOMAIN.format(guests=GUESTS, emulator=libvirt.emulator,
                                      serial=serial, disk=disk))
    libvirt.virsh(f"define {xml}")
    try:
        libvirt.virsh("start pemu-lean")
        assert _wait_for(serial, b"Run /init", 300), serial.read_bytes()[-2000:]
        libvirt.virsh("suspend pemu-lean")
        assert "paused" in libvirt.virsh("domstate pemu-lean").stdout
        libvirt.virsh("resume pemu-lean")
        assert "running" in libvirt.virsh("domstate pemu-lean").stdout
        # the disk: libvirt's -blockdev node pair, found by node-name and qdev
        info = libvirt.virsh("domblkinfo pemu-lean vda").stdout
        assert re.search(r"Capacity:\s+16777216", info), info
        stats = libvirt.virsh("domblkstat pemu-lean vda").stdout
        assert re.search(r"vda rd_req \d+", stats), stats
        _check_devices_of_the_running_lean_domain(libvirt, disk.parent)
    finally:
        libvirt.virsh("destroy pemu-lean", check=False)
        libvirt.virsh("undefine pemu-lean", check=False)
    sent = libvirt.sent()
    assert {"cont", "stop", "balloon", "qom-set", "blockdev-add", "device_add",
            "device_del", "system_powerdown"} <= set(sent)
    assert _unexpected_errors(libvirt) == [], _unexpected_errors(libvirt)
    command_line = libvirt.emulator_log()
    for option in ("-name guest=pemu-lean,debug-threads=on", "-no-shutdown",
                   "-machine virt,usb=off,dump-guest-core=off,memory-backend=ram",
                   "-object memory-backend-ram,id=ram", "-sandbox on",
                   # libvirt puts virtio devices on PCIe root ports (they are modern)
                   "-device pcie-root-port", "-netdev user,id=hostnet0",
                   "-device virtio-net-pci,netdev=hostnet0", "-blockdev '{",
                   "drive=libvirt-1-format", "-device virtio-serial-pci",
                   "name=org.qemu.guest_agent.0", "-device virtio-balloon-pci"):
        assert option in command_line


SECOND_DISK = """<disk type='file' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source file='{disk}'/>
  <target dev='vdb' bus='virtio'/>
</disk>
"""


def _check_devices_of_the_running_lean_domain(libvirt, base: Path) -> None:
    """What virsh does to the guest-agent channel, the balloon, a hot-plugged disk and
    the power button.  The lean guest has no virtio-pci driver and no qemu-ga, so the
    guest's side of each is absent; what is checked is what libvirt asks of pemu and
    what pemu answers (the Debian module checks the guest's side)."""
    # the agent's port: closed (VSERPORT_CHANGE is in the schema, so libvirt trusts
    # query-chardev's frontend-open, false until a guest program opens the port)
    r = libvirt.virsh("qemu-agent-command pemu-lean '{\"execute\":\"guest-ping\"}' "
                      "--timeout 5", check=False)
    assert r.returncode != 0 and "agent is not connected" in r.stderr, r.stderr
    # the balloon: libvirt sets the stats period (qom-set) and reads qom-get guest-stats
    mem = libvirt.virsh("dommemstat pemu-lean").stdout
    assert re.search(r"^actual 262144$", mem, re.M), mem
    libvirt.virsh("setmem pemu-lean 200M")
    # a second disk: libvirt's blockdev-add node pair, device_add on a free root port
    disk2 = base / "disk2.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk2), "8M"], check=True)
    xml = base / "disk2.xml"
    xml.write_text(SECOND_DISK.format(disk=disk2))
    libvirt.virsh(f"attach-device pemu-lean {xml}")
    assert "vdb" in libvirt.virsh("domblklist pemu-lean").stdout
    info = libvirt.virsh("domblkinfo pemu-lean vdb").stdout
    assert re.search(r"Capacity:\s+8388608", info), info
    # detach: the lean guest has no PCI at all, so the slot is still off from reset and
    # the card leaves at once, with DEVICE_DELETED (QEMU's fast path for an unpowered slot)
    libvirt.virsh(f"detach-device pemu-lean {xml}")
    # savevm: every device of this domain carries its state
    libvirt.virsh("snapshot-create-as pemu-lean s1")
    assert "s1" in libvirt.virsh("snapshot-list pemu-lean").stdout
    # shutdown --mode=acpi is QMP system_powerdown: virt has no power button, so
    # pemu only emits POWERDOWN (as QEMU's riscv virt) and the guest keeps running
    libvirt.virsh("shutdown --mode=acpi pemu-lean")
    time.sleep(2)
    assert "running" in libvirt.virsh("domstate pemu-lean").stdout


TAP_DOMAIN = """<domain type='qemu'>
  <name>pemu-tap</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='riscv64' machine='virt'>hvm</type>
    <kernel>{guests}/Image</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <devices>
    <emulator>{emulator}</emulator>
    <interface type='ethernet'><target dev='{tap}'/><model type='virtio'/></interface>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def test_domifstat_of_a_tap_nic_and_virsh_calls_back_to_back(libvirt):
    """domifstat reads the host's counters of the NIC's tap device (libvirt opens the
    tap and passes pemu ``-netdev tap,fd=N``); a user-network NIC has no host device,
    so libvirt has nothing to read for it, under QEMU too.  The virsh calls follow
    each other closely: each one's monitor connection comes as the last one closes
    (pemu must queue it and greet it, as QEMU)."""
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        pytest.skip("libvirt makes the tap device: needs root and /dev/net/tun")
    tap = f"pemulv{os.getpid() % 100000}"
    xml = libvirt.root.parent / "tap.xml"
    xml.write_text(TAP_DOMAIN.format(guests=GUESTS, emulator=libvirt.emulator, tap=tap))
    libvirt.virsh(f"define {xml}")
    try:
        libvirt.virsh("start pemu-tap")
        assert tap in libvirt.virsh("domiflist pemu-tap").stdout
        stats = libvirt.virsh(f"domifstat pemu-tap {tap}").stdout
        assert re.search(rf"^{tap} rx_bytes \d+$", stats, re.M), stats
        assert re.search(rf"^{tap} tx_packets \d+$", stats, re.M), stats
        assert "-netdev tap,fd=" in libvirt.emulator_log()
        assert "running" in libvirt.virsh("domstate pemu-tap").stdout
    finally:
        # (a destroy right after a virsh process starts races with that process's own
        # reconnection to the monitor: libvirt's SIGTERM ends pemu under it, and the
        # reconnection's end of file may win, "domain is not running")
        libvirt.virsh("destroy pemu-tap", check=False)
        libvirt.virsh("undefine pemu-tap", check=False)
    assert _unexpected_errors(libvirt) == [], _unexpected_errors(libvirt)
