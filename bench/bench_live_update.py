"""Benchmark: handing a running lean guest (../shared/guests/riscv64) to a new pemu
process, ordinary live migration over a UNIX socket vs a cpr-transfer live update
(RAM handed over as a memfd), in one run on the same guest.

    python3 bench/bench_live_update.py [--mem 1G] [--fill 256]

Boots the guest with --mem of RAM in a memory-backend-memfd, writes --fill MiB of
random data into its /tmp (RAM), then migrates it A -> B over a UNIX socket
(pre-copy) and B -> C by cpr-transfer.  For each: the source's total time, downtime
and bytes sent, the destination's load time (query-migrate total-time: from the
main channel's connection to the guest running), and the time from the migrate
command to the destination's shell answering.  Not a test: numbers depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu_bytecode import compile_pemu  # noqa: E402

from tests.migration.pemu_process import QMP, wait_path  # noqa: E402
from tests.system.lean_guest import LeanGuest  # noqa: E402


def _guest(workdir: str, name: str, mem: str, *extra: str) -> tuple[LeanGuest, str]:
    qmp = f"{workdir}/{name}.qmp"
    args = ["-m", mem, "-object", f"memory-backend-memfd,id=ram0,size={mem}",
            "-machine", "memory-backend=ram0",
            "-qmp", f"unix:{qmp},server=on,wait=off", *extra]
    return LeanGuest(args), qmp


def _completed(qmp: QMP) -> dict:
    while True:
        info = qmp.cmd("query-migrate")
        if info.get("status") == "completed":
            return info
        if info.get("status") == "failed":
            raise SystemExit(f"migration failed: {info}")
        time.sleep(0.002)


def _hand_over(label: str, src_qmp: QMP, dst: LeanGuest, dst_qmp_path: str,
               args: dict) -> None:
    dst_qmp = QMP(dst_qmp_path)
    t0 = time.monotonic()
    src_qmp.cmd("migrate", **args)
    info = _completed(src_qmp)
    while dst_qmp.cmd("query-status")["status"] != "running":
        time.sleep(0.002)
    running = time.monotonic() - t0
    dst.run("true", timeout=600)
    answered = time.monotonic() - t0
    load = dst_qmp.cmd("query-migrate").get("total-time")
    print(f"{label:28} total {info['total-time']:6} ms  downtime {info['downtime']:5} ms"
          f"  sent {info['ram']['transferred'] / (1 << 20):8.1f} MiB  dest load "
          f"{load:5} ms  migrate->running {running * 1000:6.0f} ms  ->shell "
          f"{answered * 1000:6.0f} ms")
    dst_qmp.close()


def main() -> None:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--fill", type=int, default=256, help="MiB written into the guest")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        a, a_qmp_path = _guest(work, "a", opts.mem)
        main_b, main_c, cpr_c = (f"{work}/{n}.sock" for n in ("b", "c", "c-cpr"))
        b, b_qmp_path = _guest(work, "b", opts.mem, "-incoming", f"unix:{main_b}")
        cpr = {"transport": "socket", "type": "unix", "path": cpr_c}
        c, c_qmp_path = _guest(work, "c", opts.mem, "-incoming", f"unix:{main_c}",
                               "-incoming", json.dumps({"channel-type": "cpr",
                                                        "addr": cpr}))
        try:
            a.wait_prompt()
            a.run("head -c 1048576 /dev/urandom > /tmp/seed && for i in "
                  f"$(seq {opts.fill}); do cat /tmp/seed; done > /tmp/fill", timeout=1800)
            wait_path(main_b)
            wait_path(cpr_c)
            print(f"lean guest, -m {opts.mem} (memfd), {opts.fill} MiB written in /tmp")
            a_qmp = QMP(a_qmp_path)
            _hand_over("live migration (unix:)", a_qmp, b, b_qmp_path,
                       {"uri": f"unix:{main_b}"})
            b_qmp = QMP(b_qmp_path)
            b_qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
            unix = {"transport": "socket", "type": "unix"}
            _hand_over("live update (cpr-transfer)", b_qmp, c, c_qmp_path, {"channels": [
                {"channel-type": "main", "addr": {**unix, "path": main_c}},
                {"channel-type": "cpr", "addr": cpr}]})
        finally:
            for g in (a, b, c):
                g.close()


if __name__ == "__main__":
    main()
