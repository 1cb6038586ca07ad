"""Per-block translation state shared by the A64 instruction emitters."""

from __future__ import annotations

from pemu.accel.tcg.ir import Block, Cond, Const, IRBuilder, Operand, Temp
from pemu.accel.tcg.opcodes import AND, EXT32U, OR, SHR, XOR
from pemu.target.aarch64.cpu_state import ir_globals
from pemu.target.aarch64.helpers import RAISE_EXCEPTION, TRAP_KINDS

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
ZERO = Const(0)
_GLOBALS = ir_globals()


def imm(v: int) -> Const:
    return Const(v & MASK64)


class DisasContext:
    """The IR builder, the register globals and the instruction being translated."""

    __slots__ = ("b", "flags", "x", "pc_reg", "g", "pc", "insn", "next_pc", "end",
                 "inline_atomics")

    def __init__(self, block: Block, inline_atomics: bool = False) -> None:
        b = IRBuilder(block, _GLOBALS)
        self.b = b
        self.flags = block.flags
        self.g: dict[str, Temp] = {}
        self.x = [b.glob(f"x{i}") for i in range(31)] + [b.glob("sp")]
        self.pc_reg = b.glob("pc")
        self.pc = block.pc
        self.insn = 0
        self.next_pc = block.pc
        self.end = False
        self.inline_atomics = inline_atomics

    def glob(self, name: str) -> Temp:
        t = self.g.get(name)
        if t is None:
            t = self.g[name] = self.b.glob(name)
        return t

    # -- registers: number 31 is XZR or SP, as the instruction says --------------------
    def read(self, r: int, sf: int = 1, sp: bool = False) -> Operand:
        """X[r] (W[r] zero-extended when sf=0)."""
        if r == 31 and not sp:
            return ZERO
        reg = self.x[r]
        if sf:
            return reg
        t = self.b.temp()
        self.b.unop(EXT32U, t, reg)
        return t

    def write(self, r: int, value: Operand, sf: int = 1, sp: bool = False) -> None:
        """X[r] = value; a W write (sf=0) zeroes the upper half; XZR drops it."""
        if r == 31 and not sp:
            return
        if sf:
            self.b.mov(self.x[r], value)
        else:
            self.b.unop(EXT32U, self.x[r], value)

    def temp(self) -> Temp:
        return self.b.temp()

    def v(self, r: int, half: int) -> Temp:
        return self.glob(f"v{r}{'lh'[half]}")

    # -- flags -------------------------------------------------------------------------
    def set_nz(self, result: Operand, sf: int) -> None:
        """N and Z of a result that is already reduced to the operation's width."""
        b = self.b
        b.setcond(self.glob("zf"), Cond.EQ, result, ZERO)
        b.binop(SHR, self.glob("nf"), result, Const(63 if sf else 31))
        if not sf:
            b.binop(AND, self.glob("nf"), self.glob("nf"), Const(1))

    def condition(self, cond: int) -> Operand:
        """A 0/1 operand: does condition ``cond`` (0..15) hold."""
        b = self.b
        base = cond >> 1
        if base == 7:
            return Const(1)  # AL and NV
        n, z, c, v = (self.glob(f) for f in ("nf", "zf", "cf", "vf"))
        t = b.temp()
        if base == 0:
            b.mov(t, z)
        elif base == 1:
            b.mov(t, c)
        elif base == 2:
            b.mov(t, n)
        elif base == 3:
            b.mov(t, v)
        elif base == 4:  # HI: C && !Z
            b.setcond(t, Cond.GTU, c, z)
        elif base == 5:  # GE: N == V
            b.setcond(t, Cond.EQ, n, v)
        else:  # GT: !Z && N == V
            nv = b.temp()
            b.binop(XOR, nv, n, v)
            b.binop(OR, nv, nv, z)
            b.setcond(t, Cond.EQ, nv, ZERO)
        if cond & 1:
            b.binop(XOR, t, t, Const(1))
        return t

    # -- block exits -------------------------------------------------------------------
    def goto(self, pc: int) -> None:
        self.b.goto_pc(pc & MASK64)
        self.end = True

    def goto_reg(self, target: Operand) -> None:
        self.b.mov(self.pc_reg, target)
        self.b.goto_ptr()
        self.end = True

    def raise_trap(self, kind: str, syndrome: int) -> None:
        self.b.call(RAISE_EXCEPTION, [], [Const(TRAP_KINDS.index(kind)), imm(syndrome)])
        self.goto(self.next_pc)  # unreachable: keeps the block well formed

    def undefined(self) -> None:
        self.raise_trap("undefined", self.insn)


__all__ = ["DisasContext", "MASK64", "ZERO", "imm"]
