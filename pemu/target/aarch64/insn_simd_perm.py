"""Advanced SIMD permutes: UZP1/UZP2, TRN1/TRN2, ZIP1/ZIP2 and the table lookups
TBL/TBX with one to four table registers."""

from __future__ import annotations

from pemu.accel.tcg.ir import Const
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.simd_common import arrangement, read_v, vec_op, write_v
from pemu.target.aarch64.vector_ops import full_helper, lanes, pack


def _permute(opcode: int, n: int) -> list[tuple[int, int]]:
    """Where each result lane comes from: (0 = Vn, 1 = Vm, lane)."""
    half = n // 2
    part = opcode >> 2  # 0 for UZP1/TRN1/ZIP1, 1 for the "2" forms
    kind = opcode & 3
    if kind == 1:  # UZP: the even (odd) lanes of Vn:Vm
        return [divmod(2 * i + part, n) for i in range(n)]
    if kind == 2:  # TRN: even (odd) lanes of each, interleaved
        return [(i & 1, (i & ~1) + part) for i in range(n)]
    return [(i & 1, half * part + i // 2) for i in range(n)]  # ZIP: halves interleaved


def trans_SIMD_PERM(ctx: DisasContext, a) -> bool | None:
    if a.opcode & 3 == 0 or (a.size == 3 and not a.q):
        return False
    e = 8 << a.size
    n = arrangement(a.q, e)
    sources = _permute(a.opcode, n)

    def fn(vn: int, vm: int) -> int:
        src = (lanes(vn, e, n), lanes(vm, e, n))
        return pack([src[reg][lane] for reg, lane in sources], e)
    names = {1: "uzp", 2: "trn", 3: "zip"}
    lo, hi = vec_op(ctx, f"a64_{names[a.opcode & 3]}{(a.opcode >> 2) + 1}_{n}x{e}", fn,
                    [a.rn, a.rm])
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


def _table_step(base: int):
    """One table register of TBL/TBX: the bytes whose index falls in it replaced."""
    def fn(acc: int, table: int, index: int) -> int:
        tb = table.to_bytes(16, "little")
        out = bytearray(acc.to_bytes(16, "little"))
        for i, k in enumerate(index.to_bytes(16, "little")):
            if base <= k < base + 16:
                out[i] = tb[k - base]
        return int.from_bytes(out, "little")
    return fn


def trans_SIMD_TBL(ctx: DisasContext, a) -> bool | None:
    """TBL starts from zero, TBX from Vd; each table register then fills the bytes whose
    index it holds (one helper per register: a helper takes at most six words)."""
    lo, hi = read_v(ctx, a.rd) if a.op else (Const(0), Const(0))
    mlo, mhi = read_v(ctx, a.rm)
    for i in range(a.len + 1):
        tlo, thi = read_v(ctx, (a.rn + i) % 32)
        nlo, nhi = ctx.temp(), ctx.temp()
        ctx.b.call(full_helper(f"a64_tbl_step{16 * i}", _table_step(16 * i), 3), [nlo, nhi],
                   [lo, hi, tlo, thi, mlo, mhi])
        lo, hi = nlo, nhi
    write_v(ctx, a.rd, lo, hi, a.q)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")]
