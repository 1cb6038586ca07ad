"""mapped-ram end to end on the lean guest (../shared/guests/riscv64): a booted
guest is saved with ``migrate file:`` and mapped-ram on, then two new pemu processes
restore it from the one file with ``-incoming file:`` and their shells go on, each
with the file written before the save, neither seeing what the other writes."""

from __future__ import annotations

import subprocess
import time

from tests.migration.pemu_process import QMP
from tests.system.conftest import GUESTS, pemu_cmd, pemu_env
from tests.system.lean_guest import LeanGuest, need_lean_guest


def _wait_migration(qmp: QMP, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed"):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.1)


def test_snapshot_file_restores_two_guests(tmp_path):
    need_lean_guest()
    snap = tmp_path / "guest.snap"
    src = LeanGuest(["-qmp", f"unix:{tmp_path}/src.qmp,server=on,wait=off"])
    restored: list[LeanGuest] = []
    try:
        src.wait_prompt()
        src.run("echo written-before-save > /tmp/before")
        qmp = QMP(f"{tmp_path}/src.qmp")
        qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "mapped-ram", "state": True}])
        refused = qmp.execute("migrate", uri="tcp:127.0.0.1:1")
        assert "mapped-ram requires a file:" in refused["error"]["desc"]
        qmp.cmd("migrate", uri=f"file:{snap}")
        info = _wait_migration(qmp)
        assert info["status"] == "completed", info
        assert qmp.cmd("query-status")["status"] == "postmigrate"
        qmp.close()

        for name in ("a", "b"):
            guest = LeanGuest(["-qmp", f"unix:{tmp_path}/{name}.qmp,server=on,wait=off",
                               "-incoming", f"file:{snap}"])
            restored.append(guest)
            q = QMP(f"{tmp_path}/{name}.qmp")
            assert _wait_migration(q)["status"] == "completed"
            q.close()
        a, b = restored
        assert "written-before-save" in a.run("cat /tmp/before")
        a.run("echo only-in-a > /tmp/after")
        assert "written-before-save" in b.run("cat /tmp/before")
        assert "no-such-file" in b.run("test -e /tmp/after || echo no-such-file")
        assert "only-in-a" in a.run("cat /tmp/after")

        # a truncated copy: the destination says why and exits non-zero
        bad = tmp_path / "truncated.snap"
        bad.write_bytes(snap.read_bytes()[:snap.stat().st_size // 2])
        proc = subprocess.run(
            pemu_cmd("-M", "virt", "-m", "256M", "-nographic", "-kernel",
                     str(GUESTS / "Image"), "-incoming", f"file:{bad}"),
            stdin=subprocess.DEVNULL, capture_output=True, env=pemu_env(), timeout=120)
        assert proc.returncode == 1
        assert b"load of migration failed" in proc.stderr
        assert b"past the end of the file" in proc.stderr
    finally:
        src.close()
        for guest in restored:
            guest.close()
