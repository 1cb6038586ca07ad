"""libvirtd (``qemu:///system``) for tests, with pemu as the emulator, disturbing no
libvirt of the host.

The privileged QEMU driver keeps its files at fixed places (/etc/libvirt,
/run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), and libvirtd
has no option to move them.  So the daemons (virtlogd, which keeps the guests'
stdio logs, and libvirtd) run in a mount namespace of their own in which each of
those directories is a directory of the test: the host's files are not read, a
libvirtd that the host may run keeps its sockets, and virsh reaches this one through
``qemu+unix:///system?socket=...`` (the socket is a file of the test's directory).
What the package's postinst would prepare (the libvirt-qemu user, the directories to
mount over) is prepared here.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.system.conftest import ROOT

# where the privileged QEMU driver keeps things: each gets a directory of the test
SYSTEM_DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
               "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}
QEMU_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                   "libvirt_driver_qemu.so")
VIRSH_TIMEOUT = 180


def missing_prerequisite() -> str | None:
    """Why libvirtd cannot run here, or None (creating the libvirt-qemu user and the
    directories as the package's postinst would)."""
    for tool in ("virsh", "libvirtd", "virtlogd", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps.sh)"
    if not QEMU_DRIVER.exists():
        return "libvirt-daemon-driver-qemu is not installed (scripts/install-deps.sh)"
    if os.geteuid() != 0:
        return "libvirtd with qemu:///system runs as root"
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin",
                        "libvirt-qemu"], check=True, capture_output=True)
    for place in SYSTEM_DIRS.values():
        os.makedirs(place, exist_ok=True)  # empty mount points, as the package ships them
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a mount namespace: {probe.stderr.strip()}"
    return None


def emulator_wrapper(path: Path) -> Path:
    """pemu-system-riscv64 as a program libvirt can run with a cleared environment."""
    path.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} "
                    '-m pemu.cli.system_riscv64 "$@"\n')
    path.chmod(0o755)
    return path


def unexpected_qmp_errors(monitor_log: str) -> list[dict]:
    """The error replies in libvirt's monitor log (``1:qemu.qemu_monitor``), but
    "this device type does not exist": how libvirt learns, while probing, that pemu
    has no ide-hd or virtio-balloon-ccw."""
    replies = (json.loads(m) for m in
               re.findall(r"QEMU_MONITOR_RECV_REPLY: mon=\S+ reply=(.*)$", monitor_log, re.M))
    return [r for r in replies if "error" in r and r["error"]["class"] != "DeviceNotFound"]


def _kill_if(pidfile: Path, program: bytes) -> None:
    """Kill the process ``pidfile`` names if it still runs ``program`` (a stale file
    may name a pid reused since)."""
    try:
        pid = int(pidfile.read_text().strip())
        if program in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


class LibvirtDaemon:
    """virtlogd and libvirtd over the directories under ``base``; ``virsh`` talks to it."""

    def __init__(self, base: Path, host_uuid: str | None = None) -> None:
        self.base = base
        self.dirs = {name: base / name for name in SYSTEM_DIRS}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.host_uuid = host_uuid or str(uuid.uuid4())
        self.log = base / "libvirtd.log"
        self.socket = self.dirs["run"] / "libvirt-sock"
        self.uri = f"qemu+unix:///system?socket={self.socket}"
        etc = self.dirs["etc"]
        # the domain's monitor messages (1:qemu.qemu_monitor) show every QMP exchange
        (etc / "libvirtd.conf").write_text(
            f'host_uuid = "{self.host_uuid}"\n'
            'log_filters = "1:qemu.qemu_monitor 3:*"\n'
            f'log_outputs = "1:file:{self.log}"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n')
        (etc / "virtlogd.conf").write_text(f'log_outputs = "3:file:{base}/virtlogd.log"\n')
        # pemu runs as root: the shared guest files are not relabelled (they must not
        # change) and the test's files need no chown; no cgroups or namespaces (a
        # container may have neither to give)
        (etc / "qemu.conf").write_text(
            'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
            'security_driver = "none"\nnamespaces = []\ncgroup_controllers = []\n'
            'stdio_handler = "logd"\n')
        self.emulator = emulator_wrapper(base / "pemu-system-riscv64")
        self._daemon: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        binds = "".join(f"mount --bind {self.dirs[name]} {place} && "
                        for name, place in SYSTEM_DIRS.items())
        script = (f"{binds}virtlogd -d -p {self.base}/virtlogd.pid && "
                  # (without qemu-system-* in its PATH, libvirtd does not probe the
                  # host's QEMU binaries at start: half a minute each time)
                  f"PATH=/usr/sbin:/sbin exec libvirtd -p {self.base}/libvirtd.pid")
        self._daemon = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=open(self.base / "libvirtd.out", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._daemon.poll() is not None:
                raise RuntimeError(f"libvirtd ended: {self.output()}")
            if self.socket.exists() and self.virsh("list --all", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"libvirtd did not answer in {timeout} s: {self.output()}")

    def output(self) -> str:
        return (self.base / "libvirtd.out").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """libvirtd, then virtlogd, then any pemu a failed test left running."""
        if self._daemon is not None and self._daemon.poll() is None:
            self._daemon.terminate()
            try:
                self._daemon.wait(30)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait()
        _kill_if(self.base / "virtlogd.pid", b"virtlogd")
        for pidfile in (self.dirs["run"] / "qemu").glob("*.pid"):
            _kill_if(pidfile, b"pemu")

    def virsh(self, *commands: str, check: bool = True,
              timeout: float = VIRSH_TIMEOUT) -> subprocess.CompletedProcess:
        r = subprocess.run(["virsh", "-c", self.uri, "; ".join(commands)],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, (commands, r.stdout, r.stderr,
                                       self.emulator_log())
        return r

    def emulator_log(self, domain: str = "*") -> str:
        """The domain's stdio log (virtlogd's): pemu's command line and messages."""
        logs = (self.dirs["log"] / "qemu").glob(f"{domain}.log")
        return "\n".join(p.read_text(errors="replace")[-6000:] for p in logs)

    def monitor_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def sent(self) -> list[str]:
        return re.findall(r'QEMU_MONITOR_SEND_MSG: mon=\S+ msg=\{"execute":"([^"]+)"',
                          self.monitor_log())
