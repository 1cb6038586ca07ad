"""Emitters for the A extension: LR/SC and the AMOs (.w and .d; aq/rl accepted).

The memory side runs in helpers under the guest memory lock (see helpers.py); the
reservation lives in the res_addr/res_value globals, which the IR updates from the
helpers' inputs and outputs so the helpers never touch the CPU state block.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Const
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.cpu_state import NO_RESERVATION
from pemu.target.riscv.helpers import AMO, LR, SC

_SIZES = {2: 4, 3: 8}  # funct3 -> access size
FUNCT5_LR = 0x02
FUNCT5_SC = 0x03


def trans_amo(ctx: DisasContext, insn: int) -> None:
    size = _SIZES.get((insn >> 12) & 7)
    funct5 = insn >> 27
    rd, rs1, rs2 = (insn >> 7) & 31, (insn >> 15) & 31, (insn >> 20) & 31
    if size is None:
        ctx.illegal()
        return
    b = ctx.b
    addr = ctx.xr[rs1]
    if funct5 == FUNCT5_LR:
        if rs2:
            ctx.illegal()
            return
        value = b.temp()
        b.call(LR[size], [value], [addr])
        b.mov(ctx.res_addr, addr)
        b.mov(ctx.res_value, value)
        if rd:
            b.mov(ctx.xr[rd], value)  # type: ignore[arg-type]
    elif funct5 == FUNCT5_SC:
        status = b.temp()
        b.call(SC[size], [status], [addr, ctx.xr[rs2], ctx.res_addr, ctx.res_value])
        b.mov(ctx.res_addr, Const(NO_RESERVATION))  # any SC ends the reservation
        if rd:
            b.mov(ctx.xr[rd], status)  # type: ignore[arg-type]
    else:
        helper = AMO.get((funct5, size))
        if helper is None:
            ctx.illegal()
            return
        b.call(helper, [ctx.dest(rd)], [addr, ctx.xr[rs2]])
