"""libvirtd (``qemu:///system``) manages the Debian guest on pemu: one boot, and in
order: ``virsh console`` shows the boot and runs a shell command; ``virsh
qemu-agent-command`` reaches the real qemu-ga; the balloon's statistics and
``setmem``; ``virsh migrate --live`` to a second libvirtd (another pemu on this host),
where console and agent answer; ``suspend``/``resume``, ``attach-device`` of a second
disk and ``snapshot-create-as`` there; and ``shutdown --mode=agent`` ends the domain.  (A
disk hot-added under libvirt is test_virsh.py's (the QMP side) and
tests/system/test_debian_pci.py's (the guest's side): here it cost minutes of guest
shell work for nothing new.)

Two daemons, each in a mount namespace of its own (tests/libvirt/libvirtd.py), with
different host UUIDs: libvirt refuses a migration whose destination has the source's
host UUID ("Attempt to migrate guest to the same host").  The domain's initrd is the
shared image followed by a small archive adding ``/sbin/shutdown`` (qemu-ga's
guest-shutdown runs ``/sbin/shutdown -h -P +0 ...``, which the busybox image lacks);
the image itself is not changed.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pemu.guests import guest_file
from tests.libvirt.initrd_overlay import with_overlay
from tests.libvirt.libvirtd import LibvirtDaemon, missing_prerequisite, unexpected_qmp_errors
from tests.libvirt.test_virsh import SECOND_DISK
from tests.libvirt.virsh_console import CONNECTED, VirshConsole
from tests.system.conftest import OPENSBI

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1500  # seconds to the shell on a loaded 2-core host (as tests/system)
DOMAIN = "pemu-debian"

DEBIAN_DOMAIN = """<domain type='qemu'>
  <name>pemu-debian</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='riscv64' machine='virt'>hvm</type>
    <kernel>{guest}/Image</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{emulator}</emulator>
    <serial type='pty'/>
    <console type='pty'/>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='virtio'><stats period='2'/></memballoon>
  </devices>
</domain>
"""

# qemu-ga waits for /sbin/shutdown's exit status, then answers: power off a moment later
SHUTDOWN_SCRIPT = b"#!/bin/sh\n(/bin/busybox sleep 1; /bin/busybox poweroff -f) " \
                  b">/dev/null 2>&1 </dev/null &\n"


def _until(check, timeout: float, period: float = 3.0):
    """``check()`` again until it returns something true."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(period)


class Domain:
    """The booted domain, the daemon that runs it now, and its console."""

    def __init__(self, base: Path, source: LibvirtDaemon, target: LibvirtDaemon) -> None:
        self.base, self.source, self.target = base, source, target
        self.lv = source
        self.console: VirshConsole | None = None

    def virsh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.lv.virsh(*commands, check=check)

    def agent(self, command: str, arguments: dict | None = None,
              timeout: float = 300) -> dict:
        """A qemu-ga command through libvirt, once libvirt has the agent connected
        (qemu-ga 10 reopens its port every few seconds while no host client is there;
        the daemon connects on the VSERPORT_CHANGE of a reopening)."""
        msg = {"execute": command} | ({"arguments": arguments} if arguments else {})
        end = time.monotonic() + timeout
        while True:
            r = self.virsh(f"qemu-agent-command {DOMAIN} '{json.dumps(msg)}' --timeout 60",
                           check=False)
            if r.returncode == 0:
                return json.loads(r.stdout.strip().splitlines()[-1])["return"]
            # not connected yet, or connected but its first guest-sync went unanswered
            # (a guest slow under load, or qemu-ga reopening its port after migration)
            assert "agent is not connected" in r.stderr or \
                "agent is not responding" in r.stderr, r.stderr
            assert time.monotonic() < end, f"libvirt never had the agent connected: {r.stderr}"
            time.sleep(2)

    def guest_sh(self, script: str) -> str:
        """``script`` run in the guest through qemu-ga's guest-exec; its stdout."""
        pid = self.agent("guest-exec", {"path": "/bin/sh", "arg": ["-c", script],
                                        "capture-output": True})
        status = _until(lambda: (st := self.agent("guest-exec-status", pid))["exited"]
                        and st, 300, period=2)
        assert status and status.get("exitcode") == 0, (script, status)
        return base64.b64decode(status.get("out-data", "")).decode()

    def shell(self, command: str, answer: str, timeout: float = 120) -> None:
        """``command`` typed on the serial console; ``answer`` must come back."""
        assert self.console is not None
        start = len(self.console.text)
        self.console.send(f"\r{command}\r")
        assert self.console.wait_for(answer, timeout, start), self.console.text[-2000:]


@pytest.fixture(scope="module")
def debian():
    why = missing_prerequisite()
    if why:
        pytest.skip(why)
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    # short: libvirt refuses monitor socket paths over 107 bytes
    base = Path(tempfile.mkdtemp(prefix="pemu-lvd-", dir="/tmp"))
    source, target = LibvirtDaemon(base / "a"), LibvirtDaemon(base / "b")
    dom = Domain(base, source, target)
    try:
        source.start()
        target.start()
        initrd = with_overlay(DEBIAN / "initramfs.cpio.gz",
                              {"sbin": (0o40755, b""),
                               "sbin/shutdown": (0o100755, SHUTDOWN_SCRIPT)},
                              base / "initrd.img")
        xml = base / "debian.xml"
        xml.write_text(DEBIAN_DOMAIN.format(guest=DEBIAN, initrd=initrd,
                                            emulator=source.emulator))
        source.virsh(f"define {xml}")
        # the console from the first instruction: a pty drops what the guest writes
        # while nobody is attached (as QEMU's does), so attach before it runs
        source.virsh(f"start {DOMAIN} --paused")
        dom.console = VirshConsole(source.uri, DOMAIN)
        assert dom.console.wait_for(CONNECTED, 60), dom.console.text[-2000:]
        source.virsh(f"resume {DOMAIN}")
        assert dom.console.wait_for("PEMU-TEST guest-agent on", BOOT_TIMEOUT), \
            dom.console.text[-3000:] + source.emulator_log()
        yield dom
    finally:
        if dom.console is not None:
            dom.console.close()
        for lv in (source, target):
            if lv.socket.exists():
                lv.virsh(f"destroy {DOMAIN}", check=False)
                lv.virsh(f"undefine {DOMAIN}", check=False)
            lv.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_console_shows_the_boot_and_runs_a_command(debian):
    # everything the guest printed from the firmware on: a client slower than the guest
    # holds the guest's UART back instead of losing output
    text = debian.console.text
    assert "OpenSBI" in text and "Linux version" in text and "Run /init" in text, text[:3000]
    assert debian.console.wait_for("PEMU-GUEST-BOOT-OK", 120), debian.console.text[-2000:]
    debian.shell("echo PEMU-CONSOLE $((6 * 7))", "PEMU-CONSOLE 42")


@pytest.mark.slow
def test_the_real_guest_agent_answers(debian):
    info = debian.agent("guest-info")
    assert info["version"] and "guest-shutdown" in {c["name"] for c in
                                                    info["supported_commands"]}, info
    assert debian.guest_sh("uname -m").strip() == "riscv64"


@pytest.mark.slow
def test_balloon_statistics_and_setmem(debian):
    mem = _until(lambda: (out := debian.virsh(f"dommemstat {DOMAIN}").stdout)
                 and "available" in out and out, 120)
    assert mem and re.search(r"^available \d+$", mem, re.M) and "unused" in mem, mem
    debian.virsh(f"setmem {DOMAIN} 400M")
    assert _until(lambda: "actual 409600" in debian.virsh(f"dommemstat {DOMAIN}").stdout,
                  300)


@pytest.mark.slow
def test_live_migration_to_another_libvirtd(debian):
    """Same host, another libvirtd (its own host UUID); libvirt turns pemu's
    return-path on at both ends, so the source stops only once the target loaded."""
    r = subprocess.run(["virsh", "-c", debian.source.uri, "migrate", "--live", DOMAIN,
                        debian.target.uri, "--migrateuri", "tcp://127.0.0.1"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stderr, debian.target.emulator_log())
    assert DOMAIN not in debian.source.virsh("list").stdout
    assert re.search(rf"{DOMAIN}\s+running", debian.target.virsh("list").stdout)
    debian.console.close()  # the source's pty went with its pemu
    debian.lv = debian.target
    debian.console = VirshConsole(debian.target.uri, DOMAIN)
    debian.shell("echo PEMU-MIGRATED $((6 * 7))", "PEMU-MIGRATED 42")
    # the agent's port was open at the source: the target's libvirt connects to it
    assert debian.agent("guest-ping") == {}
    assert "-incoming defer" in debian.target.emulator_log(DOMAIN)
    assert "migrate-incoming" in debian.target.sent()
    assert "migrate" in debian.source.sent()


@pytest.mark.slow
def test_suspend_resume_a_second_disk_and_a_snapshot(debian):
    """On the migrated domain: pause and resume; attach-device of a qcow2 disk (libvirt's
    blockdev-add pair and device_add on a free root port); snapshot-create-as, which
    libvirt does with stop, HMP savevm and cont: the machine state lands in the disk
    (qemu-img lists the snapshot with its VM state size) and the guest runs on."""
    debian.virsh(f"suspend {DOMAIN}")
    assert "paused" in debian.virsh(f"domstate {DOMAIN}").stdout
    debian.virsh(f"resume {DOMAIN}")
    assert "running" in debian.virsh(f"domstate {DOMAIN}").stdout
    disk = debian.base / "second.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    xml = debian.base / "second.xml"
    xml.write_text(SECOND_DISK.format(disk=disk))
    debian.virsh(f"attach-device {DOMAIN} {xml}")
    assert re.search(r"^\s*vdb\s+\S*second\.qcow2", debian.virsh(f"domblklist {DOMAIN}").stdout,
                     re.M)
    debian.virsh(f"snapshot-create-as {DOMAIN} pemu-s1")
    assert "pemu-s1" in debian.virsh(f"snapshot-list {DOMAIN}").stdout
    listed = subprocess.run(["qemu-img", "snapshot", "-U", "-l", str(disk)],
                            capture_output=True, text=True, check=True).stdout
    row = [line.split() for line in listed.splitlines() if "pemu-s1" in line]
    assert row and row[0][2] != "0", listed  # VM SIZE: the machine state is in the image
    assert "running" in debian.virsh(f"domstate {DOMAIN}").stdout
    debian.shell("echo PEMU-SNAPSHOT $((6 * 7))", "PEMU-SNAPSHOT 42")


@pytest.mark.slow
def test_shutdown_through_the_agent_ends_the_domain(debian):
    debian.virsh(f"shutdown --mode=agent {DOMAIN}")
    gone = _until(lambda: DOMAIN not in debian.virsh("list").stdout, 300)
    assert gone, debian.lv.emulator_log(DOMAIN)[-3000:]
    log = debian.lv.emulator_log(DOMAIN)
    # the guest powered off (libvirt then ended it, as <on_poweroff> says)
    assert "shutting down, reason=shutdown" in log, log[-2000:]
    # the migration left the source's persistent definition (shut off there): undefine
    debian.source.virsh(f"undefine {DOMAIN}")
    assert DOMAIN not in debian.source.virsh("list --all").stdout
    for lv in (debian.source, debian.target):
        errors = unexpected_qmp_errors(lv.monitor_log())
        assert errors == [], errors
