"""The heartbeat guest (guests/heartbeat.S) as the VM-state tests see it: its beat lines,
the memory checksum each must carry, and pemu-system-x86_64 processes running it."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

BEAT = re.compile(r"PEMU-BAREMETAL beat ([0-9a-f]{8}) done ([0-9a-f]{8}) sum ([0-9a-f]{8})$")
PAGES = 256


def kvm_cmd(*args: str) -> list[str]:
    """For ``tests.migration.pemu_process.Pemu(..., command=kvm_cmd)``."""
    return [sys.executable, "-m", "pemu.cli.system_x86_64", *args]


def machine_args(kernel: str, *extra: str) -> list[str]:
    return ["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "32", "-no-reboot",
            "-kernel", kernel, *extra]


def expected_sum(done: int) -> int:
    """What the guest must read back after ``done`` ticks: page p holds the last tick
    n <= done with n % 256 == p (or 0), in its first and last word."""
    total = 0
    for page in range(PAGES):
        last = done - ((done - page) % PAGES)
        if last >= 1:
            total += 2 * last
    return total & 0xFFFF_FFFF


@dataclass
class Beat:
    number: int
    done: int
    checksum: int
    stamp: float  # when the line reached the test (host monotonic)


def beats(lines: list[str], stamps: list[float]) -> list[Beat]:
    out = []
    for line, stamp in zip(list(lines), list(stamps), strict=False):
        m = BEAT.search(line)
        if m:
            out.append(Beat(int(m[1], 16), int(m[2], 16), int(m[3], 16), stamp))
    return out


def check_continues(before: list[Beat], before_lines: list[str], after: list[Beat]) -> None:
    """The beats after a restore go on from the last one before it.  A line the first
    process had begun when it stopped (its console ends without a newline) is finished
    by the second, so that beat shows in neither as a whole line."""
    split = bool(before_lines) and BEAT.search(before_lines[-1]) is None
    assert before and after, (before, after)
    assert after[0].number == before[-1].number + (2 if split else 1), (before[-1], after[0])


def check_heartbeat(seq: list[Beat]) -> None:
    """Consecutive beats, each with the checksum its tick count implies."""
    assert seq, "no beats"
    for prev, beat in zip(seq, seq[1:], strict=False):
        assert beat.number == prev.number + 1, (prev, beat)
    for beat in seq:
        assert beat.checksum == expected_sum(beat.done), beat


__all__ = ["BEAT", "Beat", "beats", "check_continues", "check_heartbeat", "expected_sum",
           "kvm_cmd", "machine_args"]
