"""The V extension in the frontend: every vector instruction is one helper call
(the hot ones have an inline path first: vector_inline.py).

OP-V (major opcode 0x57: arithmetic and vsetvl*), the vector loads/stores (LOAD-FP
and STORE-FP with width 0, 5, 6 or 7) and OP-VE (0x77: Zvkned, Zvknha) become
``VECTOR_EXEC(insn)``; the helper decodes
the bits at run time against the current vtype, and runs the instruction on the
register file (vector_exec.py and its families).  vtype therefore never enters the
block flags: a vsetvl needs no end of block (the inline paths know vtype only after a
vsetvli/vsetivli in their own block).  With the hart lacking V (``ctx.vlenb``
0) the encodings are illegal instructions.  Both backends call the same helper.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import Const, Helper
from pemu.target.decode import Args
from pemu.target.riscv import vector_csrs  # noqa: F401  (registers the vector CSRs)
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.vector_aes import OP_VE, exec_aes, is_zvkned
from pemu.target.riscv.vector_alu import exec_op_v
from pemu.target.riscv.vector_bitmanip import required_extension
from pemu.target.riscv.vector_exec import IllegalVector, VInsn, exec_vset, vs_check
from pemu.target.riscv.vector_fp import fp_check
from pemu.target.riscv.vector_inline import set_vtype, trans_vector_inline
from pemu.target.riscv.vector_mem import exec_mem
from pemu.target.riscv.vector_sha2 import exec_sha2, is_zvknha
from pemu.target.riscv.vector_state import decode_vtype

OP_V = 0x57
_OPF = (1, 5)  # OPFVV, OPFVF
_OPCFG = 7


def vector_exec(env: object, insn: int, pm_code: int = 0) -> None:
    v = VInsn(env, insn, pm_code)
    try:
        vs_check(env)
        if insn & 0x7F == OP_VE:
            (exec_aes if is_zvkned(insn) else exec_sha2)(v)
        elif insn & 0x7F != OP_V:
            exec_mem(v)
        elif v.f3 == _OPCFG:
            exec_vset(v)
        else:
            if v.f3 in _OPF:
                fp_check(env)
            exec_op_v(v)
    except IllegalVector:
        raise RiscvTrap(ILLEGAL_INSN, insn) from None
    except RiscvTrap as trap:
        if trap.cause == ILLEGAL_INSN and not trap.tval:  # VS/FS Off
            raise RiscvTrap(ILLEGAL_INSN, insn) from None
        raise
    v.vs.vstart = 0


# Reads and writes the state block (x/f registers, fflags): the default helper flags.
VECTOR_EXEC = Helper("vector_exec", vector_exec, n_out=0, needs_env=True)


def trans_vector(ctx: DisasContext, a: Args) -> None:
    """OP-V, LOAD-FP/STORE-FP with a vector width, and OP-VE (vector crypto): one
    pattern per family in the decode table; the rest of the word is the helper's to
    decode at run time (against vtype), and is passed whole."""
    insn = ctx.insn
    if not ctx.vlenb:
        ctx.illegal()
        return
    # the sub-extensions are decided here, never at run time
    if insn & 0x7F == OP_VE:
        needs: str | None = ("zvkned" if is_zvkned(insn) else
                             "zvknha" if is_zvknha(insn) else "(none)")
    else:
        needs = required_extension(insn)  # Zvbb/Zvkb
    if needs is not None and needs not in ctx.ext and not (
            needs == "zvkb" and "zvbb" in ctx.ext):
        ctx.illegal()
        return
    # the hot ones also inline (vector_inline.py), the helper as their slow path; the
    # block's pointer masking goes with both (only memory accesses use it)
    after = trans_vector_inline(ctx, insn) or ()
    ctx.b.call(VECTOR_EXEC, [], [Const(insn), Const(ctx.pm_code)])
    for label in after:
        ctx.b.set_label(label)
    if insn & 0x7F == OP_V and (insn >> 12) & 7 == _OPCFG:
        raw = set_vtype(insn)  # every way through a vsetvli/vsetivli sets it
        ctx.vtype = None if raw is None or decode_vtype(raw, ctx.elen).vill else raw


HANDLERS = {"VLOAD": trans_vector, "VSTORE": trans_vector, "OP_V": trans_vector,
            "OP_VE": trans_vector}

__all__ = ["HANDLERS", "OP_V", "VECTOR_EXEC", "trans_vector", "vector_exec"]
