"""What installing a cached block costs: the user-mode blocks of a warm translation
cache (a Debian boot's, say) installed page by page on a bare RISC-V translator, as a
warm boot does at each page's first hit, at several virtual addresses per page (the
same library page in several processes).

    PEMU_TB_CACHE=DIR python3 bench/bench_tb_install.py [--blocks N] [--rounds R]

DIR holds a cache filled by a boot of this tree (``bench_boot.py`` with the same
``PEMU_TB_CACHE``); its newest version's table is read whatever tree wrote it (the
entries' format is what matters), and nothing is written to it.  Prints CPU
microseconds per installed block (the lookup of the page's blocks in the cache, the
copy into the code buffer, chaining, the translator's records).  A warm Debian boot
installs about 170 k blocks so ("translated ... in" of ``-d stats``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAM_BASE = 0x8000_0000
USER_BASE = 0x1000_0000  # where the first round maps the pages (one process)
ROUND_STRIDE = 0x100_0000  # the next round's pages: another process's addresses


def _translator(cache_dir: str):
    from pemu.accel.tcg.gc_policy import pace_collector_for_translation
    from pemu.accel.tcg.system_cpu import SystemTranslator
    from pemu.memory.address_space import AddressSpace
    from pemu.target.riscv.hart import RiscvHart
    from pemu.target.riscv.isa import parse_cpu
    from pemu.target.riscv.tcg_target import riscv64_target
    os.environ["PEMU_TB_CACHE"] = cache_dir  # an empty one: the rows come from ours
    pace_collector_for_translation()  # as the CLI does
    isa = parse_cpu(None)
    space = AddressSpace("memory")
    dram = space.add_ram("ram", RAM_BASE, 1 << 20)
    translator = SystemTranslator(space, dram, riscv64_target(isa), backend="native")
    RiscvHart(0, translator, space, lambda: 0, threading.Event(), isa)
    return translator


def main() -> int:
    from pemu.accel.tcg.tb_cache import (
        DB_NAME,
        PAGE_OFFSET_KEY_FLAG,
        TWO_PAGES_KEY_FLAG,
        cache_dir,
        split_key,
    )
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=20000, help="stored blocks to use")
    ap.add_argument("--rounds", type=int, default=3, help="virtual addresses per page")
    args = ap.parse_args()
    folder = cache_dir()
    if folder is None or not (folder / DB_NAME).exists():
        sys.exit("bench_tb_install: PEMU_TB_CACHE must name a filled cache folder")
    db = sqlite3.connect(folder / DB_NAME)
    (table,) = db.execute("SELECT name FROM versions ORDER BY used DESC").fetchone()
    rows = []
    for k, v in db.execute(f"SELECT k, v FROM {table}"):
        flags = split_key(k)[0]
        if flags & PAGE_OFFSET_KEY_FLAG and not flags & TWO_PAGES_KEY_FLAG:
            rows.append((k, v))
            if len(rows) == args.blocks:
                break
    db.close()
    if not rows:
        sys.exit("bench_tb_install: no user-mode blocks in the cache")
    by_digest: dict[bytes, dict[bytes, bytes]] = {}
    firsts: dict[tuple[bytes, int], bytes] = {}  # (digest, flags) -> a block's key
    for k, v in rows:
        by_digest.setdefault(k[:16], {})[k] = v
        firsts.setdefault((k[:16], split_key(k)[0]), k)
    with tempfile.TemporaryDirectory() as empty:
        translator = _translator(empty)
        cache = translator.tb_cache
        # the stored rows as the cache file's pages (read once each, as in a boot)
        cache._read_page = lambda digest: dict(by_digest.get(digest, {}))
        page_bytes = bytes(4096)  # only the snapshot sees them
        spent = 0.0
        for r in range(args.rounds):
            for i, ((digest, flags), k) in enumerate(firsts.items()):
                offset = split_key(k)[1]
                pc = USER_BASE + r * ROUND_STRIDE + (i << 12) + offset
                page = RAM_BASE + ((i % 256) << 12)
                start = time.process_time()
                hit = cache.get(flags, offset, digest)
                if hit is not None:
                    translator._install_cached(cache, pc, flags & ~PAGE_OFFSET_KEY_FLAG,
                                               flags, page, hit, None, page_bytes, digest)
                spent += time.process_time() - start
        n = translator.stats.get("cached", 0)
    print(f"{n} blocks installed ({len(firsts)} pages x {args.rounds} addresses, "
          f"table {table}): {spent / max(n, 1) * 1e6:.2f} us CPU per block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
