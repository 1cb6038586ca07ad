"""Per-block translation state shared by the RISC-V instruction emitters."""

from __future__ import annotations

from pemu.accel.tcg.ir import Block, Cond, Const, IRBuilder, Label, Operand, Temp
from pemu.accel.tcg.opcodes import ADD, OR, SAR, SHL, SHR
from pemu.target.riscv.cpu_state import ir_globals
from pemu.target.riscv.exceptions import ILLEGAL_INSN
from pemu.target.riscv.helpers import RAISE_EXCEPTION
from pemu.target.riscv.pointer_masking import CODE_SIGNED, code_from_flags, pmlen
from pemu.target.riscv.priv import FLAG_FS_CLEAN, FLAG_FS_OFF, MARK_FS_DIRTY

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
ZERO = Const(0)
RM_DYNAMIC = 7

# Block flags.  User mode passes 0; system mode encodes the privilege level here so
# that code translated for one privilege is never run at another, plus the bits of
# target.riscv.priv (MPRV, SUM, and mstatus.FS as FLAG_FS_OFF / FLAG_FS_CLEAN).
FLAG_PRIV_MASK = 3

_GLOBALS = ir_globals()


def sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


_IMMS: dict[int, Const] = {}  # Consts are immutable: one object per value serves all


def imm(v: int) -> Const:
    """``v`` as a 64-bit constant operand (the immediates of a program repeat: they are
    looked up, a Const is slow to make)."""
    c = _IMMS.get(v)
    if c is None:
        if len(_IMMS) >= 1 << 16:
            _IMMS.clear()
        c = _IMMS[v] = Const(v & MASK64)
    return c


class _Globals(dict):
    """Register operands by number, made on first use through the builder.  Made for
    every block (three of them): no ``__init__`` (``_globals`` fills the slots), a dict
    subclass's Python ``__init__`` cost more than the rest of a short block's setup."""

    __slots__ = ("builder", "names")

    def __missing__(self, key: int | str) -> Temp:
        t = self[key] = self.builder.glob(self.names.get(key, key))  # type: ignore[arg-type]
        return t


# the globals' names by register number (made once: a block names several)
_X_NAMES = {i: f"x{i}" for i in range(32)}
_F_NAMES = {i: f"f{i}" for i in range(32)}
_MISC_NAMES: dict[int | str, str] = {}  # (the misc globals are asked for by name)


def _globals(builder: IRBuilder, names: dict) -> _Globals:
    regs = _Globals()
    regs.builder = builder
    regs.names = names
    return regs


class DisasContext:
    """What the emitters need: the IR builder, register temps and the current insn."""

    __slots__ = ("b", "flags", "xr", "fr", "pc_reg", "_misc", "pc", "insn", "next_pc", "end",
                 "frm_checked", "fs_dirty", "inline_atomics", "vlenb",
                 "elen", "vtype", "ext", "host_cas", "pause_ends_turn", "pm_code", "pm_len")

    def __init__(self, block: Block, inline_atomics: bool = False) -> None:
        b = IRBuilder(block, _GLOBALS)
        self.b = b
        self.flags = block.flags
        # xr[i]/fr[i] give the register's global; x0 reads as the constant 0 and
        # emitters never write it
        self.xr: dict[int, Operand] = _globals(b, _X_NAMES)
        self.xr[0] = ZERO
        self.fr: dict[int, Temp] = _globals(b, _F_NAMES)
        self._misc: dict[str, Temp] = _globals(b, _MISC_NAMES)
        # pc_reg (the pc global): made by __getattr__ when an instruction first needs
        # it (indirect jumps, CSR and trap helpers), not for every block
        self.pc = block.pc
        self.insn = 0  # the raw instruction bits (16-bit ones for RVC): trap values
        self.next_pc = block.pc
        self.end = False  # the current instruction ended the block
        self.frm_checked = False  # frm was validated earlier in this block
        # LR/SC/AMOs as plain IR loads and stores: right where one thread runs every
        # hart (system mode), so nothing can come between the read and the write
        self.inline_atomics = inline_atomics
        # MTTCG: AMOs and SC as a host compare-and-swap in generated code (opcodes.
        # CMPXCHG), their helper only where that cannot be done inline
        self.host_cas = False
        # harts that take turns on one thread: ``pause`` (a spin-wait) ends this one's
        self.pause_ends_turn = False
        # FS needs no marking: it is Dirty (or there is no mstatus: user mode), or an
        # earlier instruction of this block marked it
        self.fs_dirty = not block.flags & FLAG_FS_CLEAN
        # VLEN in bytes, 0 when the hart has no V (the translator sets it)
        self.vlenb = 0
        self.elen = 64
        # the raw vtype a vsetvli/vsetivli earlier in this block set (every path
        # through it, inline or helper, sets that immediate), or None: unknown here
        self.vtype: int | None = None
        # the hart's extension names (RiscvIsa.extensions): the handlers check them
        # while translating (never at run time); a pattern whose extension the hart
        # lacks is an illegal instruction
        self.ext: frozenset[str] = frozenset()
        # pointer masking of the block's data accesses (pointer_masking.py): from the
        # flags, so a block translated without it emits nothing for it
        self.pm_code = code_from_flags(block.flags)
        self.pm_len = pmlen(self.pm_code)  # bits masked off, 0: none (most blocks)

    def __getattr__(self, name: str) -> Temp:
        """The one lazily made attribute: a slot left unset until first read."""
        if name != "pc_reg":
            raise AttributeError(name)
        t = self.pc_reg = self.b.glob("pc")
        return t

    @property
    def fflags(self) -> Temp:
        return self._misc["fflags"]

    @property
    def frm(self) -> Temp:
        return self._misc["frm"]

    @property
    def res_addr(self) -> Temp:
        return self._misc["res_addr"]

    @property
    def res_value(self) -> Temp:
        return self._misc["res_value"]

    @property
    def priv(self) -> int:
        return self.flags & FLAG_PRIV_MASK

    # -- operands -------------------------------------------------------------------
    def dest(self, r: int) -> Temp:
        """Where to write x[r]: the register, or a scratch temp for x0 (write dropped)."""
        return self.xr[r] if r else self.b.temp()  # type: ignore[return-value]

    def address(self, rs1: int, offset: int) -> Operand:
        """The effective address rs1 + offset of a data access, pointer-masked as the
        block's mode says (no op emitted for an offset of 0 without masking)."""
        if not rs1:
            return self.masked(imm(offset))
        base = self.xr[rs1]
        if offset:
            b = self.b
            base = b.binop(ADD, b.temp(), base, imm(offset))
        return self.masked(base) if self.pm_len else base

    def masked(self, addr: Operand) -> Operand:
        """``addr`` after pointer masking (itself when the block's mode has none): the
        top PMLEN bits shifted out, then back in as copies of the new top bit (a
        virtual address) or as zeros (a physical one)."""
        n = self.pm_len
        if not n:
            return addr
        if isinstance(addr, Const):
            value = addr.value << n & MASK64
            if self.pm_code & CODE_SIGNED:
                return imm(sext(value, 64) >> n)
            return imm(value >> n)
        t = self.b.temp()
        self.b.binop(SHL, t, addr, Const(n))
        self.b.binop(SAR if self.pm_code & CODE_SIGNED else SHR, t, t, Const(n))
        return t

    # -- block exits ----------------------------------------------------------------
    def goto(self, pc: int) -> None:
        self.b.goto_pc(pc & MASK64)
        self.end = True

    def pc_value(self, pc: int) -> Temp:
        """A temp holding ``pc``, a value derived from the block's pc (PC_REL: right
        in a block installed at another virtual address too)."""
        t = self.b.temp()
        self.b.pc_rel(t, pc)
        return t

    def raise_trap(self, cause: int, tval: int | Temp) -> None:
        """``tval``: a value, or a temp (a pc: ``pc_value``)."""
        self.b.call(RAISE_EXCEPTION, [], [Const(cause), tval if isinstance(tval, Temp)
                                          else imm(tval)])
        self.goto(self.next_pc)  # unreachable: keeps the block well formed

    def illegal(self) -> None:
        self.raise_trap(ILLEGAL_INSN, self.insn)

    # -- floating point ---------------------------------------------------------------
    def fp_disabled(self) -> bool:
        """With mstatus.FS Off every F/D instruction is illegal: emits the trap and
        returns True; returns False (and emits nothing) when FP is enabled."""
        if self.flags & FLAG_FS_OFF:
            self.illegal()
            return True
        return False

    def fp_state_written(self, flags: Temp | None = None) -> None:
        """Call after an instruction wrote FP state; with FS Initial/Clean it marks FS
        Dirty.  ``flags``: the instruction wrote only the fflags it accrued (compares,
        conversions to integers), so FS changes only when they are non-zero."""
        if self.fs_dirty:
            return
        b = self.b
        if flags is None:
            b.call(MARK_FS_DIRTY, [], [])
            self.fs_dirty = True  # later instructions of the block run with FS Dirty
            return
        clean = b.label()
        b.brcond(Cond.EQ, flags, ZERO, clean)
        b.call(MARK_FS_DIRTY, [], [])
        b.set_label(clean)

    def rounding_mode(self, rm: int) -> Operand | None:
        """The rm operand for a helper, or None if the static rm is reserved (illegal).

        With rm=7 the helper gets the frm register; frm is checked at run time (once
        per block until a CSR instruction may have changed it).
        """
        if rm < 5:
            return Const(rm)
        if rm != RM_DYNAMIC:
            return None
        if not self.frm_checked:
            ok = self.b.label()
            self.b.brcond(Cond.LTU, self.frm, Const(5), ok)
            self.b.call(RAISE_EXCEPTION, [], [Const(ILLEGAL_INSN), imm(self.insn)])
            self.b.set_label(ok)
            self.frm_checked = True
        return self.frm

    def accrue(self, flags: Temp) -> None:
        self.b.binop(OR, self.fflags, self.fflags, flags)

    def new_label(self) -> Label:
        return self.b.label()


__all__ = ["DisasContext", "FLAG_PRIV_MASK", "MASK64", "ZERO", "imm", "sext"]
