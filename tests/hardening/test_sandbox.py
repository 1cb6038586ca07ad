"""-sandbox: the option parser, the rules each option adds, and a guest running under
the filter (every thread ``Seccomp: 2``; spawns fail with EPERM and the guest runs on;
a denied privileged call kills)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pemu.sandbox.libseccomp import ACT_KILL_PROCESS
from pemu.sandbox.policy import SandboxError, SandboxPolicy, parse_sandbox, rules
from tests.system.conftest import GUESTS, ROOT, _native_supported
from tests.system.lean_guest import UDHCPC_SCRIPT, LeanGuest, need_lean_guest, serve

PROBE = ROOT / "tests" / "hardening" / "sandboxed_pemu.py"


def test_parse_sandbox_options():
    assert parse_sandbox({"enable": "off"}) is None
    assert parse_sandbox({"enable": "on"}) == SandboxPolicy()
    p = parse_sandbox({"enable": "on", "obsolete": "allow", "elevateprivileges": "children",
                       "spawn": "deny", "resourcecontrol": "deny"})
    assert p == SandboxPolicy(obsolete=False, privileged=True, no_new_privs=True, spawn=True,
                              resourcecontrol=True)
    for bad, msg in [({"enable": "on", "spawn": "maybe"}, "invalid argument for spawn"),
                     ({"enable": "on", "x": "deny"}, "Invalid parameter 'x'"),
                     ({"enable": "perhaps"}, "'on' or 'off'")]:
        with pytest.raises(SandboxError, match=msg):
            parse_sandbox(bad)


def test_rules_follow_the_options():
    def denied(policy):
        return {name: action for action, name, _ in rules(policy, ACT_KILL_PROCESS)}

    base = denied(SandboxPolicy())
    assert base["reboot"] == ACT_KILL_PROCESS and "sysfs" in base
    assert "execve" not in base and "setuid" not in base and "setpriority" not in base
    assert "sysfs" not in denied(SandboxPolicy(obsolete=False))
    spawn = denied(SandboxPolicy(spawn=True))
    assert spawn["execve"] == ACT_KILL_PROCESS
    assert spawn["fork"] & 0xFFFF == 1 and spawn["clone"] & 0xFFFF == 1  # EPERM
    assert denied(SandboxPolicy(privileged=True))["setuid"] == ACT_KILL_PROCESS
    assert denied(SandboxPolicy(resourcecontrol=True))["sched_setaffinity"] & 0xFFFF == 1


def _backend() -> list[str]:
    return ["-accel", f"tcg,backend={'native' if _native_supported() else 'python'}"]


def _qmp(path: str, *commands: str) -> list[dict]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        f = s.makefile("rwb")
        f.readline()
        replies = []
        for command in ("qmp_capabilities", *commands):
            f.write(json.dumps({"execute": command}).encode() + b"\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "event" not in msg:
                    break
            replies.append(msg)
        return replies


def _wait_for(path: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "pemu never created its QMP socket"
        time.sleep(0.05)


def _seccomp_of_every_thread(pid: int) -> set[str]:
    modes = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            modes |= {line.split()[1] for line in f if line.startswith("Seccomp:")}
    return modes


def test_guest_runs_under_the_filter_and_spawns_fail(baremetal, tmp_path):
    qmp = str(tmp_path / "qmp.sock")
    probe = tmp_path / "probe.txt"
    proc = subprocess.Popen(
        [sys.executable, str(PROBE), "-M", "virt", "-m", "64M", "-bios", "none",
         "-kernel", str(baremetal), "-display", "none", "-serial", "null", *_backend(),
         "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
         "resourcecontrol=deny", "-qmp", f"unix:{qmp},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT), PEMU_SPAWN_PROBE=str(probe)), cwd=ROOT)
    try:
        _wait_for(qmp, proc)
        deadline = time.monotonic() + 60
        while not probe.exists() or not probe.read_text().endswith("\n"):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the spawn probe never ran"
            time.sleep(0.05)
        assert probe.read_text().splitlines() == ["spawn: refused errno=1",
                                                  "fork: refused errno=1"]
        assert _seccomp_of_every_thread(proc.pid) == {"2"}
        with open(f"/proc/{proc.pid}/status") as f:
            assert "Seccomp_filters:\t1\n" in f.read()
        replies = _qmp(qmp, "query-status", "quit")
        assert replies[1]["return"]["status"] == "running"  # the guest ran on
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_denied_privileged_call_kills():
    code = ("from pemu.sandbox.policy import apply_sandbox, SandboxPolicy\n"
            "import os\n"
            "apply_sandbox(SandboxPolicy(privileged=True))\n"
            "os.setuid(os.getuid())\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == -signal.SIGSYS, r


@pytest.mark.slow
def test_linux_guest_does_disk_io_under_the_sandbox(tmp_path):
    """The shared Linux guest, root on ext4 on virtio-blk (mounted rw), runs its self-test
    and powers off with every option of -sandbox denying."""
    import gzip
    import shutil

    if not (GUESTS / "Image").exists() or not _native_supported():
        pytest.skip("needs the shared riscv64 guest and the native TCG backend")
    image = tmp_path / "rootfs.ext4"
    with gzip.open(GUESTS / "rootfs.ext4.gz") as src, open(image, "wb") as dst:
        shutil.copyfileobj(src, dst)
    r = subprocess.run(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "256M",
         "-nographic", "-no-reboot", *_backend(), "-kernel", str(GUESTS / "Image"),
         "-append", "console=ttyS0 root=/dev/vda rw init=/init pemu.test=poweroff",
         "-drive", f"file={image},format=raw,if=virtio",
         "-sandbox", "on,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, timeout=1800,
        stdin=subprocess.DEVNULL, cwd=ROOT)
    out = r.stdout.decode(errors="replace")
    assert "disk-marker: pemu-disk-marker-v1" in out, out[-2000:] + r.stderr.decode()
    assert "PEMU-GUEST-TEST-DONE" in out, out[-2000:]
    assert r.returncode == 0


@pytest.mark.slow
def test_linux_guest_does_network_io_under_the_sandbox(tmp_path):
    """The lean guest behind -netdev user takes slirp's lease and downloads a file from
    an HTTP server on the host's loopback, with every option of -sandbox denying: the
    network backend's sockets and the main loop's polling pass the filter."""
    need_lean_guest()
    payload = os.urandom(300_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob").write_bytes(payload)
    server, port = serve(www)
    guest = LeanGuest(["-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
                       "-sandbox", "on,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"])
    try:
        guest.wait_prompt()
        guest.run(UDHCPC_SCRIPT)
        guest.run("ifconfig eth0 up && udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh", 120)
        assert "inet addr:10.0.2.15" in guest.run("ifconfig eth0")
        out = guest.run(f"wget -q -O - http://10.0.2.2:{port}/blob | sha256sum", 180)
        assert hashlib.sha256(payload).hexdigest() in out, out
    finally:
        guest.close()
        server.shutdown()
