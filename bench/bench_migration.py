"""Benchmark: live migration of the lean guest (../shared/guests/riscv64) over a UNIX
socket, pemu against QEMU on the same guest in one run, idle and while the guest keeps
dirtying memory (issue 24's speed section).

    python3 bench/bench_migration.py [--mem 1G] [--fill 256] [--dirty 16]

For each emulator: boot the guest with --mem of RAM, write --fill MiB of random data
into its /tmp (RAM), migrate it A -> B while idle, then start a loop in the guest that
rewrites --dirty MiB over and over and migrate it B -> C.  For each migration: the
source's total time and downtime (query-migrate) and the MiB sent, then the time from
the migrate command to the destination's shell answering.  Prints pemu/QEMU ratios; a
migration that has not converged after GIVE_UP_S is cancelled and shows as inf.
Not a test: the numbers depend on the machine and its load.
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

from tests.migration.pemu_process import QMP, wait_path  # noqa: E402
from tests.system.lean_guest import LeanGuest  # noqa: E402


def _guest(workdir: str, name: str, mem: str, qemu: bool, *extra: str
           ) -> tuple[LeanGuest, str]:
    qmp = f"{workdir}/{name}.qmp"
    return LeanGuest(["-m", mem, "-qmp", f"unix:{qmp},server=on,wait=off", *extra],
                     qemu=qemu), qmp


GIVE_UP_S = 300  # a dirtying guest may never fit the downtime limit: report that


def _migrate(src_qmp: QMP, dst: LeanGuest, sock: str) -> dict[str, float]:
    t0 = time.monotonic()
    src_qmp.cmd("migrate", uri=f"unix:{sock}")
    while True:
        info = src_qmp.cmd("query-migrate")
        if info.get("status") == "completed":
            break
        if info.get("status") in ("failed", "cancelled"):
            raise SystemExit(f"migration failed: {info}")
        if time.monotonic() - t0 > GIVE_UP_S:
            src_qmp.cmd("migrate_cancel")
            return {key: float("inf") for key in
                    ("total ms", "downtime ms", "MiB sent", "to shell ms")}
        time.sleep(0.002)
    dst.run("true", timeout=600)
    return {"total ms": info["total-time"], "downtime ms": info["downtime"],
            "MiB sent": info["ram"]["transferred"] / (1 << 20),
            "to shell ms": (time.monotonic() - t0) * 1000}


def _measure(work: str, qemu: bool, opts: argparse.Namespace) -> dict[str, dict]:
    name = "qemu" if qemu else "pemu"
    socks = [f"{work}/{name}-{n}.sock" for n in ("b", "c")]
    a, a_qmp = _guest(work, f"{name}-a", opts.mem, qemu)
    b, b_qmp = _guest(work, f"{name}-b", opts.mem, qemu, "-incoming", f"unix:{socks[0]}")
    c, c_qmp = _guest(work, f"{name}-c", opts.mem, qemu, "-incoming", f"unix:{socks[1]}")
    try:
        a.wait_prompt()
        a.run("head -c 1048576 /dev/urandom > /tmp/seed && for i in "
              f"$(seq {opts.fill}); do cat /tmp/seed; done > /tmp/fill", timeout=1800)
        wait_path(socks[0])
        idle = _migrate(QMP(a_qmp), b, socks[0])
        b.run(f"(while :; do for i in $(seq {opts.dirty}); do cat /tmp/seed; done "
              "> /tmp/dirty; done) &")
        time.sleep(2)  # the loop is running
        wait_path(socks[1])
        dirtying = _migrate(QMP(b_qmp), c, socks[1])
        return {"idle": idle, "dirtying": dirtying}
    finally:
        for g in (a, b, c):
            g.close()


def main() -> None:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--fill", type=int, default=256, help="MiB written into the guest")
    ap.add_argument("--dirty", type=int, default=16, help="MiB the loop keeps rewriting")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = {"qemu": _measure(work, True, opts), "pemu": _measure(work, False, opts)}
    print(f"lean guest, -m {opts.mem}, {opts.fill} MiB written, unix: socket; "
          f"load average {os.getloadavg()[0]:.1f}")
    for case in ("idle", "dirtying"):
        q, p = results["qemu"][case], results["pemu"][case]
        for key in q:
            ratio = p[key] / q[key] if q[key] else float("inf")
            print(f"{case:9} {key:12} qemu {q[key]:9.1f}  pemu {p[key]:9.1f}  "
                  f"ratio {ratio:5.2f}x")


if __name__ == "__main__":
    main()
