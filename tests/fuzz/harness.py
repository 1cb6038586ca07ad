"""Running one input against a target with limits, and the corpus on disk."""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
import traceback
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.targets import MEMORY_LIMIT, TIME_LIMIT_S, FuzzTarget

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = ROOT / "fuzz-corpus"  # grows with scripts/fuzz.py; git-ignored


class TooSlow(Exception):
    pass


@dataclass
class Outcome:
    verdict: str  # "accepted", "refused" or "bug"
    detail: str = ""


def _alarm(signum, frame) -> None:
    raise TooSlow(f"input took more than {TIME_LIMIT_S} s")


def run_one(target: FuzzTarget, data: bytes, measure_memory: bool = True) -> Outcome:
    """Run ``data``; a bug is any exception but the target's refusal, a run over
    TIME_LIMIT_S, or a peak allocation over MEMORY_LIMIT."""
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    if measure_memory:
        tracemalloc.start()
    try:
        target.run(data)
        outcome = Outcome("accepted")
    except target.allowed as e:
        outcome = Outcome("refused", f"{type(e).__name__}: {e}")
    except Exception:  # noqa: BLE001 - what the fuzzer is looking for
        outcome = Outcome("bug", traceback.format_exc())
    finally:
        if in_main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        if measure_memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if measure_memory and outcome.verdict != "bug" and peak > MEMORY_LIMIT:
        outcome = Outcome("bug", f"peak allocation {peak} bytes > {MEMORY_LIMIT}")
    return outcome


def corpus_dir(root: Path, target: FuzzTarget) -> Path:
    return root / target.name


def corpus_inputs(root: Path, target: FuzzTarget, limit: int = 500) -> list[bytes]:
    d = corpus_dir(root, target)
    if not d.is_dir():
        return []
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix == ".bin")
    return [p.read_bytes() for p in files[:limit]]


def save_input(root: Path, target: FuzzTarget, data: bytes, sub: str = "") -> Path:
    d = corpus_dir(root, target) / sub
    d.mkdir(parents=True, exist_ok=True)
    path = d / (hashlib.sha1(data).hexdigest()[:20] + ".bin")
    path.write_bytes(data)
    return path


def report_bug(root: Path, target: FuzzTarget, data: bytes, outcome: Outcome) -> Path:
    path = save_input(root, target, data, "crashes")
    path.with_suffix(".txt").write_text(outcome.detail)
    print(f"fuzz: {target.name}: BUG saved to {path}\n{outcome.detail}", file=sys.stderr)
    return path
