"""Cold translation cost of a real workload: frontend, optimizer and native code generation.

    python3 bench/bench_translate.py [--workload user|boot] [--recording FILE]
                                     [--save FILE] [--repeat N] [--profile N]
                                     [--digest] [--no-gc] [--frontend-only]
                                     [--optimizer target|always|never]

Two steps.  *Record*: run the workload once under pemu with ``PEMU_RECORD_BLOCKS``
(accel/tcg/block_record.py) and no translation cache, which writes every block it
translates (pc, flags, the code fetches).  ``--workload user`` (the default) is
``busybox sh -c`` running a dozen applets in pipes (about 11 000 blocks over its
processes, a few seconds); ``--workload boot`` is the lean riscv64 guest's boot to
power-off (bench_boot.py's command line, about 39 000 blocks, 20 s or more).
``--recording FILE`` replays an earlier recording instead (``--save FILE`` keeps the
new one).

*Replay*: translate every recorded block again in this process, native backend,
timing each stage with the thread's CPU clock, and print microseconds per block and per
guest instruction for the frontend (guest code -> IR), the optimizer and code
generation (register allocation, x86-64 encoding, placing the code in the buffer).
``--profile N`` prints the N costliest functions of one more replay under cProfile.

QEMU's side: Debian's QEMU has no TCG profiler (``-d`` has no timing), so its
translation time is bounded, not measured: its monitor's ``info jit`` counts the TBs
of a boot (38.5 k for the lean one) and ``perf record`` of the boot splits its CPU
(1.7 s) into named translation functions and unnamed static ones; see
docs/PERFORMANCE.md, "Translation cost (session 10)": 1-13 us per TB on this host.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import marshal
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu.accel.tcg.block_record import RECORD_ENV, read_records  # noqa: E402
from pemu.accel.tcg.optimize import optimize  # noqa: E402
from pemu.guests import guest_file  # noqa: E402

USER_SCRIPT = ("for i in 1 2 3; do echo $i; done | sort -r | head -n 2 > /dev/null; "
               "ls / > /dev/null; echo hello | sed s/h/j/ | tr a-z A-Z | wc -c; "
               "expr 6 \\* 7; seq 1 50 | md5sum; true")


def record(workload: str, path: str, timeout: float) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PEMU_TB_CACHE="off")
    env[RECORD_ENV] = path
    if workload == "user":
        cmd = [sys.executable, "-m", "pemu.linux_user.main",
               str(guest_file("riscv64/busybox")), "sh", "-c", USER_SCRIPT]
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_boot import guest_args  # noqa: PLC0415 - only for this workload
        cmd = [sys.executable, "-m", "pemu.cli.system_riscv64",
               *guest_args("lean", 1, "console=ttyS0 pemu.test=poweroff"),
               "-accel", "tcg,backend=native"]
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"recording run failed ({r.returncode}): {r.stderr[-2000:]!r}")


class Replayer:
    """The pieces a run had (target, frontend options, native backend), built anew."""

    def __init__(self, targets: set[tuple[str, str]], system: bool,
                 optimizer: str = "target") -> None:
        if len(targets) != 1:
            raise SystemExit(f"one target per recording, found {sorted(targets)}")
        (name, config), = targets
        if name != "riscv64":
            raise SystemExit(f"replay knows riscv64 only, not {name}")
        from pemu.target.riscv.isa import parse_cpu
        from pemu.target.riscv.tcg_target import riscv64_target
        isa = parse_cpu(None)
        self.target = riscv64_target(isa)
        if self.target.config != config:
            raise SystemExit(f"recorded under -cpu {config!r}: replay builds the default")
        # as the translator does (TCGTarget.optimize), or always / never to compare
        self.optimize = {"target": self.target.optimize, "always": True,
                         "never": False}[optimizer]
        if system:
            self.backend = self._system_backend(isa)
        else:
            from pemu.accel.tcg.engine import TCGEngine
            from pemu.linux_user.vmem import GuestVirtualMemory
            self.engine = TCGEngine(GuestVirtualMemory(), self.target, backend="native")
            self.backend = self.engine.backend

    def _system_backend(self, isa: object) -> object:
        from pemu.accel.tcg.system_cpu import SystemTranslator
        from pemu.memory.address_space import AddressSpace
        from pemu.target.riscv.hart import RiscvHart
        space = AddressSpace("memory")
        dram = space.add_ram("ram", 0x8000_0000, 16 << 20)
        translator = SystemTranslator(space, dram, self.target, backend="native")
        # a hart registers the privileged instructions and CSRs with the frontend
        self.hart = RiscvHart(0, translator, space, lambda: 0, threading.Event(), isa)
        return translator.backend

    def code_digest(self, records: list[bytes]) -> str:
        """A digest of the machine code of every block (helper addresses, which differ
        between processes, left out): equal before and after a change to the code
        generator that should only make it faster."""
        self.backend.keep_generated = True
        h = hashlib.blake2b(digest_size=16)
        for raw in records:
            (_fmt, _target, pc, flags, max_insns, inline_atomics, options,
             fetches) = marshal.loads(raw)
            code = {(a, s): v for a, s, v in fetches}
            block = self.target.translate(pc, flags, lambda a, s, c=code: c[(a, s)],
                                          max_insns=max_insns,
                                          inline_atomics=inline_atomics, **options)
            if self.optimize:
                optimize(block)
            gen = self.backend.compile(block).fn.generated
            buf = bytearray(gen.code)
            for at, _helper, _n in gen.helper_fixups:
                buf[at:at + 8] = bytes(8)
            h.update(repr((gen.entry, gen.body, gen.exits, gen.ext_fixups)).encode())
            h.update(buf)
        self.backend.keep_generated = False
        return h.hexdigest()

    def run(self, records: list[bytes], frontend_only: bool = False) -> dict[str, float]:
        """Translate every record (each kept marshalled until its turn: a heap of live
        records would make the garbage collector's passes, which translation
        triggers, slower than in a real run); ``frontend_only``: guest code -> IR and
        nothing after it (no code generation evicting the frontend's code and data
        from the caches between two blocks)."""
        clock = time.thread_time_ns
        frontend = self.target.translate
        compile_ = self.backend.compile
        t_front = t_opt = t_gen = 0
        insns = ops = 0
        optimize_ = optimize if self.optimize else None
        for raw in records:
            (_fmt, _target, pc, flags, max_insns, inline_atomics, options,
             fetches) = marshal.loads(raw)
            code = {(a, s): v for a, s, v in fetches}

            def fetch(addr: int, size: int, _code: dict = code) -> int:
                return _code[(addr, size)]
            t0 = clock()
            block = frontend(pc, flags, fetch, max_insns=max_insns,
                             inline_atomics=inline_atomics, **options)
            t1 = clock()
            if frontend_only:
                t_front += t1 - t0
                insns += block.n_insns
                ops += len(block.ops)
                continue
            if optimize_ is not None:
                optimize_(block)
            t2 = clock()
            compile_(block)
            t3 = clock()
            t_front += t1 - t0
            t_opt += t2 - t1
            t_gen += t3 - t2
            insns += block.n_insns
            ops += len(block.ops)
        return {"frontend": t_front / 1e9, "optimizer": t_opt / 1e9,
                "codegen": t_gen / 1e9, "insns": insns, "ops": ops}


def report(n_blocks: int, times: dict[str, float]) -> None:
    insns = times["insns"]
    total = (times["frontend"] + times["optimizer"] + times["codegen"]) or 1e-9
    print(f"{n_blocks} blocks, {insns} guest instructions "
          f"({insns / n_blocks:.1f} per block), {times['ops'] / n_blocks:.1f} IR ops "
          "per block compiled")
    for stage in ("frontend", "optimizer", "codegen"):
        t = times[stage]
        print(f"  {stage:10} {t:7.3f} s  {1e6 * t / n_blocks:7.1f} us/block  "
              f"{1e6 * t / insns:6.2f} us/insn  {100 * t / total:5.1f} %")
    print(f"  {'total':10} {total:7.3f} s  {1e6 * total / n_blocks:7.1f} us/block  "
          f"{1e6 * total / insns:6.2f} us/insn")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=("user", "boot"), default="user")
    ap.add_argument("--recording", help="replay this recording (no recording run)")
    ap.add_argument("--save", help="keep the new recording in this file")
    ap.add_argument("--repeat", type=int, default=3, help="replays (the best is reported)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="one more replay under cProfile: its N costliest functions")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--digest", action="store_true",
                    help="print a digest of all the generated code (and time nothing)")
    ap.add_argument("--optimizer", choices=("target", "always", "never"),
                    default="target",
                    help="run the IR optimizer as the target says (TCGTarget.optimize), "
                         "on every block, or on none")
    ap.add_argument("--frontend-only", action="store_true",
                    help="time the frontend alone (no optimizer, no code generation)")
    ap.add_argument("--no-gc", action="store_true",
                    help="replay with the cyclic garbage collector off (its share)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.recording
        if path is None:
            path = args.save or os.path.join(tmp, "blocks.rec")
            if os.path.exists(path):
                os.unlink(path)
            start = time.monotonic()
            record(args.workload, path, args.timeout)
            print(f"recorded {args.workload} in {time.monotonic() - start:.1f} s")
        try:
            records = list(read_records(path))
        except (OSError, ValueError) as e:
            raise SystemExit(str(e)) from None
    if not records:
        raise SystemExit("the recording holds no blocks")
    kinds = Counter("system" if r[5] else "user" for r in records)
    print(f"replaying {len(records)} blocks ({dict(kinds)})")
    targets = {r[1] for r in records}
    system = bool(kinds["system"])  # inline atomics: one thread runs the guest
    records = [marshal.dumps(r) for r in records]
    if args.digest:
        print("code digest", Replayer(targets, system, args.optimizer).code_digest(records))
        return 0
    if args.no_gc:
        gc.disable()
    best: dict[str, float] | None = None
    for _ in range(max(1, args.repeat)):
        # a fresh backend each time: an empty code buffer, as in a cold run
        times = Replayer(targets, system, args.optimizer).run(records, args.frontend_only)
        total = times["frontend"] + times["optimizer"] + times["codegen"]
        if best is None or total < best["frontend"] + best["optimizer"] + best["codegen"]:
            best = times
    report(len(records), best)
    if args.profile:
        replayer = Replayer(targets, system, args.optimizer)
        prof = cProfile.Profile()
        prof.enable()
        replayer.run(records, args.frontend_only)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
