#!/usr/bin/env python3
"""Fuzz pemu's parsers at length: mutate seeds and corpus inputs, keep every input that
reaches lines no earlier input reached, save every bug.

  python3 scripts/fuzz.py --minutes 30                  all targets, round robin
  python3 scripts/fuzz.py --minutes 5 --targets qcow2,gdb-packets --corpus DIR

The corpus (default fuzz-corpus/, one directory per target) grows across runs, and
tests/fuzz/test_fuzz_targets.py replays it in the suite.  Bugs go to
CORPUS/TARGET/crashes/ (the input .bin and its traceback .txt); the exit status is 1
when any was found.  Targets: tests/fuzz/targets.py.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz import mutate  # noqa: E402
from tests.fuzz.harness import (  # noqa: E402
    DEFAULT_CORPUS,
    corpus_inputs,
    report_bug,
    run_one,
    save_input,
)
from tests.fuzz.targets import TARGETS, FuzzTarget  # noqa: E402


class LineCoverage:
    """Lines run in the target's own modules (sys.settrace: slow, but needs nothing)."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.prefixes = tuple(str(ROOT / m) for m in modules)
        self.seen: set[tuple[str, int]] = set()
        self._new = 0

    def _local(self, frame, event, arg):
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            if key not in self.seen:
                self.seen.add(key)
                self._new += 1
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename.startswith(self.prefixes):
            return self._local
        return None

    def run(self, target: FuzzTarget, data: bytes):
        """(outcome, number of new lines)."""
        self._new = 0
        sys.settrace(self._global)
        try:
            outcome = run_one(target, data, measure_memory=False)
        finally:
            sys.settrace(None)
        return outcome, self._new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma separated, from: {', '.join(TARGETS)}")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    args = ap.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target {unknown[0]!r}")
    rng = random.Random(args.seed if args.seed is not None else time.time_ns())
    state = {}
    for name in names:
        target = TARGETS[name]
        seeds = [(s.data, list(s.focus)) for s in target.seeds()]
        pool = seeds + [(d, []) for d in corpus_inputs(args.corpus, target, limit=10_000)]
        cov = LineCoverage(target.modules)
        for data, _ in pool:  # the coverage we already have
            cov.run(target, data)
        state[name] = {"pool": pool, "cov": cov, "runs": 0, "new": 0, "bugs": 0}
    deadline = time.monotonic() + args.minutes * 60
    bugs = 0
    while time.monotonic() < deadline:
        for name in names:
            target, st = TARGETS[name], state[name]
            base, focus = rng.choice(st["pool"])
            other = rng.choice(st["pool"])[0]
            data = mutate.apply(base, mutate.random_mutations(rng), focus, other)
            outcome, new_lines = st["cov"].run(target, data)
            st["runs"] += 1
            if outcome.verdict == "bug":
                st["bugs"] += 1
                bugs += 1
                report_bug(args.corpus, target, data, outcome)
            elif new_lines:
                st["new"] += 1
                save_input(args.corpus, target, data)
                st["pool"].append((data, focus))
    for name in names:
        st = state[name]
        print(f"{name:20} {st['runs']:8} runs {st['new']:5} new inputs "
              f"{len(st['cov'].seen):6} lines {st['bugs']:3} bugs")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
