"""Byte-level mutations shared by the suite (driven by hypothesis) and scripts/fuzz.py
(driven by random.Random): flips, interesting integers, copies, cuts, splices.

A mutation is (kind, position, value); positions are folded into the input, and into
a focus region (a seed's metadata) when the target names some, so that most mutations
land where the parser looks instead of in data sectors."""

from __future__ import annotations

import random
import struct

KINDS = ("flip", "byte", "int16", "int32", "int64", "copy", "cut", "insert", "splice")
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 512,
               4096, 65536, 1 << 20, 1 << 30)
Mutation = tuple[str, int, int]
Region = tuple[int, int]


def _position(data: bytes | bytearray, pos: int, focus: list[Region]) -> int:
    if focus and pos % 10:  # nine in ten inside the focus
        start, end = focus[(pos // 10) % len(focus)]
        end = min(end, len(data))
        if end > start:
            return start + (pos // 10 // len(focus)) % (end - start)
    return pos % max(1, len(data))


def apply(data: bytes, mutations: list[Mutation], focus: list[Region] | None = None,
          other: bytes = b"", max_size: int = 1 << 22) -> bytes:
    out = bytearray(data)
    for kind, pos, value in mutations:
        if not out and kind not in ("insert", "splice"):
            continue
        at = _position(out, pos, focus or [])
        if kind == "flip":
            out[at] ^= 1 << (value % 8)
        elif kind == "byte":
            out[at] = value & 0xFF
        elif kind in ("int16", "int32", "int64"):
            width = {"int16": 2, "int32": 4, "int64": 8}[kind]
            number = INTERESTING[value % len(INTERESTING)] & ((1 << 8 * width) - 1)
            order = ">" if value & 1 << 20 else "<"  # formats of either byte order
            packed = struct.pack(order + {2: "H", 4: "I", 8: "Q"}[width], number)
            out[at:at + width] = packed
        elif kind == "copy":
            src = value % len(out)
            n = 1 + (value >> 8) % 64
            out[at:at + n] = out[src:src + n]
        elif kind == "cut":
            del out[at:at + 1 + value % 256]
        elif kind == "insert":
            out[at:at] = bytes([value & 0xFF]) * (1 + (value >> 8) % 64)
        elif kind == "splice" and other:
            cut = value % len(other)
            out[at:] = other[cut:]
        if len(out) > max_size:
            del out[max_size:]
    return bytes(out)


def random_mutations(rng: random.Random, count: int | None = None) -> list[Mutation]:
    n = count if count is not None else 1 + int(rng.expovariate(0.4))
    return [(rng.choice(KINDS), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(n)]
