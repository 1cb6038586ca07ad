"""Benchmark: restoring a saved lean guest (../shared/guests/riscv64), pemu
mapped-ram vs pemu's sequential stream vs QEMU, in one run.

    python3 bench/bench_snapshot_restore.py [--mem 1G] [--fill 512] [--dir /tmp]

Boots the guest with --mem of RAM, writes --fill MiB of random data into its /tmp
(RAM), saves it (pemu: ``migrate file:`` with and without the mapped-ram capability;
QEMU 7.2, which has no file: URI: ``migrate exec:cat>FILE``), then starts a new
process with ``-incoming`` of each file and reports the time from its start to
query-migrate ``completed`` and to the first answer of the guest's shell, plus the
restored process's RSS then.  Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu_bytecode import compile_pemu  # noqa: E402

from tests.migration.pemu_process import QMP  # noqa: E402
from tests.system.lean_guest import LeanGuest  # noqa: E402


def _wait_status(qmp: QMP, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while True:
        status = qmp.cmd("query-migrate").get("status")
        if status == "completed":
            return time.monotonic()
        if status == "failed" or time.monotonic() > deadline:
            raise SystemExit(f"migration {status}")
        time.sleep(0.005)


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _qmp_args(path: str) -> list[str]:
    return ["-m", MEM, "-qmp", f"unix:{path},server=on,wait=off"]


def save(workdir: str, qemu: bool, fill_mib: int, targets: list[tuple[str, bool]]) -> None:
    """Boot, fill, and save once per (uri, mapped-ram) target."""
    qmp_path = f"{workdir}/save.qmp"
    guest = LeanGuest(_qmp_args(qmp_path), qemu=qemu)
    try:
        guest.wait_prompt()
        t = time.monotonic()
        guest.run("head -c 1048576 /dev/urandom > /tmp/seed && "
                  f"for i in $(seq {fill_mib}); do cat /tmp/seed; done > /tmp/fill",
                  timeout=1800)
        print(f"  {'qemu' if qemu else 'pemu'}: {fill_mib} MiB written in the guest "
              f"in {time.monotonic() - t:.1f} s", flush=True)
        qmp = QMP(qmp_path)
        qmp.cmd("stop")
        for uri, mapped in targets:
            if not qemu:
                qmp.cmd("migrate-set-capabilities",
                        capabilities=[{"capability": "mapped-ram", "state": mapped}])
            t = time.monotonic()
            qmp.cmd("migrate", uri=uri)
            _wait_status(qmp)
            print(f"  saved {uri} in {time.monotonic() - t:.2f} s", flush=True)
        qmp.close()
    finally:
        guest.close()


def restore(workdir: str, name: str, incoming: str, qemu: bool) -> None:
    qmp_path = f"{workdir}/{name}.qmp"
    start = time.monotonic()
    guest = LeanGuest([*_qmp_args(qmp_path), "-incoming", incoming], qemu=qemu)
    try:
        qmp = QMP(qmp_path)
        done = _wait_status(qmp)
        load_ms = qmp.cmd("query-migrate").get("total-time", -1)  # the load alone
        if qmp.cmd("query-status")["status"] != "running":
            qmp.cmd("cont")  # QEMU keeps the source's run state: it was saved paused
        rss = _rss_mib(guest.proc.pid)
        guest.run("true")
        answered = time.monotonic()
        qmp.close()
    finally:
        guest.close()
    print(f"{name:24} completed {1000 * (done - start):8.0f} ms after start, "
          f"shell answers at {1000 * (answered - start):8.0f} ms, load (query-migrate "
          f"total-time) {load_ms:6} ms, RSS at completion {rss:6.0f} MiB", flush=True)


def main() -> None:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    global MEM
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--fill", type=int, default=512, help="MiB written in the guest")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args()
    MEM = args.mem
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        mapped, stream, qfile = (f"{workdir}/{n}" for n in ("mapped", "stream", "qemu"))
        print(f"guest: -m {MEM}, {args.fill} MiB of random data in its RAM")
        save(workdir, False, args.fill, [(f"file:{stream}", False),
                                         (f"file:{mapped}", True)])
        if not args.no_qemu:
            save(workdir, True, args.fill, [(f"exec:cat>{qfile}", False)])
        for path in (mapped, stream, qfile):
            if os.path.exists(path):
                st = os.stat(path)
                print(f"  {os.path.basename(path)}: {st.st_size >> 20} MiB, "
                      f"{st.st_blocks * 512 >> 20} MiB on disk")
        restore(workdir, "pemu mapped-ram", f"file:{mapped}", False)
        restore(workdir, "pemu stream", f"file:{stream}", False)
        if not args.no_qemu:
            restore(workdir, "qemu 7.2 exec:cat", f"exec:cat {qfile}", True)


MEM = "1G"

if __name__ == "__main__":
    main()
