"""Build and drive the riscv64 oracle program (real F/D instructions under qemu-riscv64).

The oracle source is compiled at test time into a pytest temporary directory;
no binary is kept in the tree.  Cases are sent in large batches so that a few
qemu processes cover thousands of operations.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pemu.fpu import softfloat

SOURCE = Path(__file__).parent / "riscv_oracle" / "fpu_oracle.c"
CC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"

Case = tuple[str, int, int, int, int]  # (op, rm, a, b, c)


def build_oracle(out_dir: Path) -> Path:
    """Compile the oracle; skip the calling test if the toolchain or qemu is missing."""
    for tool in (CC, QEMU):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (needed for the RISC-V FPU oracle)")
    exe = out_dir / "fpu_oracle"
    subprocess.run(
        [CC, "-O2", "-static", "-Wall", "-Werror", "-o", str(exe), str(SOURCE)],
        check=True,
        capture_output=True,
    )
    return exe


def run_oracle(exe: Path, cases: Sequence[Case]) -> list[tuple[int, int]]:
    """Execute every case on qemu-riscv64; return (result bits, fflags) per case."""
    text = "".join(f"{op} {rm:x} {a:x} {b:x} {c:x}\n" for op, rm, a, b, c in cases)
    proc = subprocess.run(
        [QEMU, str(exe)], input=text, capture_output=True, text=True, check=True, timeout=120
    )
    out = []
    for line in proc.stdout.splitlines():
        r, f = line.split()
        out.append((int(r, 16), int(f, 16)))
    assert len(out) == len(cases), proc.stderr
    return out


# How each oracle op name maps onto the softfloat interface.
_FMA_NEGATIONS = {
    "fmadd": (False, False),
    "fmsub": (False, True),
    "fnmsub": (True, False),
    "fnmadd": (True, True),
}


def _python_op(op: str) -> Callable[[int, int, int, int], tuple[int, int]]:
    prefix, _, name = op.partition("_")
    if name in _FMA_NEGATIONS:
        fma = getattr(softfloat, f"{prefix}_fma")
        neg_p, neg_c = _FMA_NEGATIONS[name]
        return lambda rm, a, b, c: fma(a, b, c, rm, neg_p, neg_c)
    fn = getattr(softfloat, op)
    if name in ("add", "sub", "mul", "div"):
        return lambda rm, a, b, c: fn(a, b, rm)
    if name in ("min", "max", "eq", "lt", "le"):
        return lambda rm, a, b, c: fn(a, b)
    if name == "classify":
        return lambda rm, a, b, c: (fn(a), 0)
    # sqrt, to_*, from_*, format conversions: one operand and a rounding mode
    return lambda rm, a, b, c: fn(a, rm)


def mismatches(exe: Path, cases: Sequence[Case]) -> list[str]:
    """Run cases on the oracle and on softfloat; describe every disagreement."""
    expected = run_oracle(exe, cases)
    fns: dict[str, Callable[[int, int, int, int], tuple[int, int]]] = {}
    bad = []
    for (op, rm, a, b, c), want in zip(cases, expected, strict=True):
        fn = fns.get(op) or fns.setdefault(op, _python_op(op))
        got = fn(rm, a, b, c)
        if got != want:
            bad.append(
                f"{op} rm={rm} a={a:#x} b={b:#x} c={c:#x}: "
                f"got ({got[0]:#x}, flags {got[1]:#x}) want ({want[0]:#x}, flags {want[1]:#x})"
            )
    return bad
