"""Throughput of the soft-float helpers: ``python3 bench/bench_fpu.py``.

Operands are random normal numbers of moderate magnitude (the common case in
guest code); results are printed as operations per second for each helper
and rounding mode.  Not run by the test suite.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

from pemu.fpu import softfloat as sf

_N = 20000


def _operands(fmt: str, rng: random.Random) -> list[int]:
    pack, unpack = ("<f", "<I") if fmt == "f32" else ("<d", "<Q")
    vals = [rng.uniform(-1e6, 1e6) for _ in range(_N)]
    return [struct.unpack(unpack, struct.pack(pack, v))[0] for v in vals]


def _rate(call: Callable[[int, int], object], xs: list[int], ys: list[int]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for x, y in zip(xs, ys, strict=True):
            call(x, y)
        best = min(best, time.perf_counter() - start)
    return len(xs) / best


def main() -> None:
    rng = random.Random(1)
    ops: list[tuple[str, str, Callable[[int, int], object]]] = []
    for fmt in ("f32", "f64"):
        for rm, rm_name in ((0, "RNE"), (1, "RTZ")):
            for name in ("add", "sub", "mul", "div"):
                fn = getattr(sf, f"{fmt}_{name}")
                ops.append((fmt, f"{name} {rm_name}", lambda x, y, fn=fn, rm=rm: fn(x, y, rm)))
            sqrt = getattr(sf, f"{fmt}_sqrt")
            ops.append(
                (
                    fmt,
                    f"sqrt {rm_name}",
                    lambda x, y, fn=sqrt, rm=rm: fn(x & ~(1 << 63) & ~(1 << 31), rm),
                )
            )
            fma = getattr(sf, f"{fmt}_fma")
            ops.append(
                (fmt, f"fma {rm_name}", lambda x, y, fn=fma, rm=rm: fn(x, y, x, rm, False, False))
            )
            to_i = getattr(sf, f"{fmt}_to_i32")
            ops.append((fmt, f"to_i32 {rm_name}", lambda x, y, fn=to_i, rm=rm: fn(x, rm)))
        for name in ("lt", "eq", "min"):
            fn = getattr(sf, f"{fmt}_{name}")
            ops.append((fmt, name, fn))
    data = {fmt: (_operands(fmt, rng), _operands(fmt, rng)) for fmt in ("f32", "f64")}
    for fmt, label, call in ops:
        xs, ys = data[fmt]
        print(f"{fmt}_{label:<12} {_rate(call, xs, ys) / 1e6:6.2f} Mops/s")


if __name__ == "__main__":
    main()
