"""Why a warm boot still translates: boots a guest twice with a private translation
cache and classifies the blocks the second boot translated instead of taking them
from the cache.

    python3 bench/bench_tb_cache_misses.py [--guest lean|debian] [--keep DIR]

Each boot runs pemu-system-riscv64 (native backend, bench_boot.py's command line) in
a child that records every block lookup that reached the translator: pc, flags,
physical page, the digest of the page's bytes, whether the cache served it and how
many pages the block spans.  A cold block of the second boot is put in the first
class that fits: spans two pages (never cached), the same (flags, pc, bytes) was
seen in the first boot (a lost or refused cache entry), the same bytes and offset
in the page at another pc (position-dependent code: ASLR), the same pc with other
page bytes (code patched or relocated per boot), a page seen with other pcs or flags
(a path the first boot did not take), or page bytes never seen.  Each class is split
by privilege and by address range (user, kernel modules below 0xffffffff80000000,
kernel image).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import marshal
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pemu_bytecode import compile_pemu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PAGE = 4096
KERNEL_IMAGE = 0xFFFF_FFFF_8000_0000


def _record(out: str, pemu_args: list[str]) -> int:
    """In the child: run pemu with SystemTranslator.translate wrapped."""
    from pemu.accel.tcg import system_cpu
    from pemu.accel.tcg.tb_cache import page_digest
    from pemu.cli.system_riscv64 import main

    records: list[tuple] = []
    translate = system_cpu.SystemTranslator.translate

    def recording(self, hart, pc, flags, page, max_insns=None):  # noqa: ANN001, ANN202
        before = self.stats.get("cached", 0)
        tb = translate(self, hart, pc, flags, page, max_insns)
        region = self.space.find(page, PAGE)
        off = page - region.base
        digest = page_digest(bytes(region.view[off:off + PAGE]))
        records.append((pc, flags, page >> 12, digest,
                        self.stats.get("cached", 0) != before, len(tb.pages)))
        return tb

    system_cpu.SystemTranslator.translate = recording

    def dump() -> None:
        with open(out, "wb") as f:
            marshal.dump(records, f)

    atexit.register(dump)
    return main(pemu_args)


def classify(first: list[tuple], second: list[tuple]) -> collections.Counter:
    keys = {(f, pc, d) for pc, f, _p, d, _h, _n in first}
    offsets = {(f, pc % PAGE, d) for pc, f, _p, d, _h, _n in first}
    pcs = {(f, pc) for pc, f, _p, d, _h, _n in first}
    digests = {d for _pc, _f, _p, d, _h, _n in first}
    classes: collections.Counter = collections.Counter()
    for pc, flags, _ppn, digest, hit, n_pages in second:
        if hit:
            continue
        region = ("user" if pc < 1 << 63 else
                  "modules" if pc < KERNEL_IMAGE else "kernel")
        if n_pages > 1:
            why = "spans two pages"
        elif (flags, pc, digest) in keys:
            why = "same key in the first boot"
        elif (flags, pc % PAGE, digest) in offsets:
            why = "same bytes and page offset, other pc"
        elif (flags, pc) in pcs:
            why = "same pc, other page bytes"
        elif digest in digests:
            why = "page seen, not this pc/flags"
        else:
            why = "page bytes never seen"
        classes[(flags & 3, region, why)] += 1
    return classes


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    if len(sys.argv) > 2 and sys.argv[1] == "--record":  # the child
        return _record(sys.argv[2], sys.argv[3:])
    from bench_boot import GUESTS, guest_args

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guest", choices=["lean", "debian"], default="lean")
    ap.add_argument("--keep", help="a folder for the cache and the records (kept)")
    args = ap.parse_args()
    g = GUESTS[args.guest]
    folder = Path(args.keep or tempfile.mkdtemp(prefix="pemu-tb-misses-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PEMU_TB_CACHE=str(folder / "cache"))
    cmd = [*guest_args(args.guest, 1, f"console={g.console} pemu.test=poweroff"),
           "-accel", "tcg,backend=native", "-d", "stats"]
    boots = []
    for n in (1, 2):
        out = folder / f"boot{n}.rec"
        r = subprocess.run([sys.executable, __file__, "--record", str(out), *cmd],
                           capture_output=True, env=env, stdin=subprocess.DEVNULL)
        stats = [line for line in r.stderr.decode().splitlines() if "stats:" in line]
        print(f"boot {n}: exit {r.returncode}; {stats[-1] if stats else 'no stats'}")
        with open(out, "rb") as f:
            boots.append(marshal.load(f))
    classes = classify(*boots)
    print(f"second boot: {sum(classes.values())} blocks translated, not from the cache")
    for (priv, region, why), n in classes.most_common():
        print(f"{n:8d}  priv {priv}  {region:8s} {why}")
    if not args.keep:
        print(f"(records and cache in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
