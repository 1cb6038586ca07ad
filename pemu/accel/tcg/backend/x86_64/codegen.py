"""IR block -> x86-64 machine code.

Layout of one block in the code buffer::

    tags:   8 bytes block flags, 8 bytes guest pc (the dispatcher's jump cache
            checks both)
    entry:  cmp qword [rbp + exit_request], 0 ; jne request_stub
    body:   the ops, guest registers cached in host registers (regalloc.py)
    exits:  goto_pc -> a patchable ``jmp rel32`` (chained to the next block's entry,
            or falling through to "store pc; jmp dispatcher"); goto_ptr -> dispatcher
    cold:   slow paths of memory accesses, the exit-request stub

Exceptions are precise without cost on the fast path: code that may raise (a helper
call, a memory slow path) first writes every dirty global home and stores the
guest pc of the current instruction to the pc slot.  A helper that raised leaves
a flag in the per-CPU context and the code jumps to the dispatcher's exception exit.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.accel.tcg.ir import (
    CALL_PURE,
    CALL_READS_STATE,
    CALL_WRITES_STATE,
    MASK,
    Block,
    Cond,
    Const,
    Helper,
    Op,
    Operand,
    Temp,
)
from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    BR,
    BRCOND,
    DIV,
    INSN_START,
    LABEL,
    MULSH,
    MULSUH,
    OPCODES,
    OR,
    REM,
    REMU,
    ROTL,
    ROTR,
    SAR,
    SHL,
    SHR,
    SUB,
    XOR,
    Opcode,
)

from . import encoder as x
from . import sse_fp
from .encoder import R8, R9, R11, RAX, RBP, RCX, RDI, RDX, RSI, RSP, Assembler, Label, Mem
from .memory_common import AccessCode
from .regalloc import FRAME_CTX, RegAlloc
from .vec_sse import emit_vec_op

CC = {
    Cond.EQ: x.CC_E, Cond.NE: x.CC_NE, Cond.LT: x.CC_L, Cond.GE: x.CC_GE,
    Cond.LE: x.CC_LE, Cond.GT: x.CC_G, Cond.LTU: x.CC_B, Cond.GEU: x.CC_AE,
    Cond.LEU: x.CC_BE, Cond.GTU: x.CC_A,
}
ARG_REGS = (RDI, RSI, RDX, RCX, R8, R9)
ALU = {ADD: x.ADD, SUB: x.SUB, AND: x.AND, OR: x.OR, XOR: x.XOR}
SHIFT = {SHL: x.SHL, SHR: x.SHR, SAR: x.SAR, ROTL: x.ROL, ROTR: x.ROR}


@dataclass
class Targets:
    """Where generated code jumps or calls outside itself (buffer offsets/addresses)."""

    lookup: int  # dispatcher: look the pc slot up in the jump cache
    exc_exit: int  # leave with a pending Python exception
    req_exit: int  # leave because exit_request was set
    pc_slot: int
    exit_request_slot: int
    callback: Callable[[Helper, int], int]  # (helper, n_args) -> native address
    thunks: dict[tuple, int] = field(default_factory=dict)  # memory slow paths


_NONE: frozenset[int] = frozenset()  # no register to avoid
SSE_TABLE = -1  # a helper fixup that is the helper's sse_fp flags table


def _assembled(emit: Callable[[x.Assembler], list[int]]) -> tuple[bytes, tuple[int, ...]]:
    """A fixed instruction sequence, assembled once: its bytes and the offsets of its
    rel32 fields that point outside the block (filled in as ``ext_fixups``)."""
    a = Assembler()
    fields = emit(a)
    return bytes(a.buf), tuple(fields)


def _helper_check(a: x.Assembler) -> list[int]:
    """call rax (the helper's callback); leave through the exception exit if it raised."""
    a.call_r(RAX)
    a.load(64, R11, Mem(RSP, FRAME_CTX))
    a.alu_ri(x.CMP, 64, Mem(R11, 0), 0)
    a.byte(0x0F, 0x80 + x.CC_NE)
    exc_at = a.pos()
    a.buf += b"\0\0\0\0"
    return [exc_at]


@functools.cache
def _pc_store_halves(pc_slot: int) -> tuple[bytes, bytes]:
    """The opcode bytes of ``mov dword [rbp + pc], imm32`` for the low and the high
    half of the pc slot (their imm32 follows): a kernel's pcs do not fit one imm32."""
    halves = []
    for disp in (8 * pc_slot, 8 * pc_slot + 4):
        a = Assembler()
        a.store_imm(4, Mem(RBP, disp), 0)
        halves.append(bytes(a.buf[:-4]))
    return halves[0], halves[1]


@functools.cache
def _pc_store_imm32(pc_slot: int) -> bytes:
    """The opcode bytes of ``mov qword [rbp + pc], imm32`` (its imm32 follows)."""
    a = Assembler()
    a.store_imm(8, Mem(RBP, 8 * pc_slot), 0)
    return bytes(a.buf[:-4])


@functools.cache
def _entry_check(exit_request_slot: int) -> tuple[bytes, int]:
    """``cmp qword [rbp + exit_request], 0; jne rel32``: a block's entry (the rel32
    field's offset is returned: it points at the block's exit-request stub)."""
    a = Assembler()
    a.alu_ri(x.CMP, 64, Mem(RBP, 8 * exit_request_slot), 0)
    a.byte(0x0F, 0x80 + x.CC_NE)
    at = a.pos()
    a.buf += b"\0\0\0\0"
    return bytes(a.buf), at


@functools.cache
def _pc_home(pc_slot: int) -> Mem:
    return Mem(RBP, 8 * pc_slot)


@functools.cache
def _store_rax_and_jump(pc_slot: int) -> tuple[bytes, int]:
    """``mov [rbp + pc], rax; jmp rel32``: how a block leaves for the dispatcher (the
    rel32 field's offset is returned: it points outside the block)."""
    a = Assembler()
    a.store(8, Mem(RBP, 8 * pc_slot), RAX)
    a.byte(0xE9)
    at = a.pos()
    a.buf += b"\0\0\0\0"
    return bytes(a.buf), at


HELPER_CALL_CHECK = _assembled(_helper_check)
_TAGS = struct.Struct("<QQ")
_REL32 = struct.Struct("<i")
NOP_PAD = tuple(b"\x90" * n for n in range(4))
# a block's code starts with its tags: flags, then its guest pc (the dispatcher checks
# both before the entry; a position-independent block reads its pc from there)
PC_TAG = 8


@dataclass
class GeneratedBlock:
    code: bytes
    entry: int  # offsets inside ``code``
    body: int
    exits: list[tuple[int, int]] = field(default_factory=list)  # (rel32 field, guest pc)
    ext_fixups: list[tuple[int, int]] = field(default_factory=list)  # (rel32 field, target)
    # (imm64 field, helper, n_args): callback addresses, different in every process;
    # n_args SSE_TABLE: the address of the helper's SSE flags table instead
    helper_fixups: list[tuple[int, Helper, int]] = field(default_factory=list)

    def link(self, base: int) -> bytes:
        """The code placed at buffer offset ``base``: resolve jumps to the dispatcher."""
        buf = bytearray(self.code)
        link_fixups(buf, self.ext_fixups, base)
        return bytes(buf)


def link_fixups(buf: bytearray, ext_fixups: list | tuple, base: int, start: int = 0) -> None:
    """Point a block's rel32 jumps outside itself (``ext_fixups``: (field, buffer
    offset of the target)) at their targets, the block being placed at ``base``; its
    code lies at ``start`` in ``buf`` (several blocks copied into one buffer)."""
    pack = struct.pack_into
    for at, target in ext_fixups:
        pack("<i", buf, start + at, target - (base + at + 4))


class CpuFeatures:
    def __init__(self) -> None:
        flags: set[str] = set()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        break
        except OSError:
            pass
        self.lzcnt = "abm" in flags or "lzcnt" in flags
        self.tzcnt = "bmi1" in flags
        self.popcnt = "popcnt" in flags


FEATURES = CpuFeatures()
_fallback_helpers: dict[tuple[Opcode, int, object], Helper] = {}


def fallback_helper(opc: Opcode, bits: int, aux: object) -> Helper:
    """A pure helper computing an op the backend has no inline code for (its reference
    semantics from the op table)."""
    key = (opc, bits, aux)
    h = _fallback_helpers.get(key)
    if h is None:
        def fn(*args: int, _opc: Opcode = opc, _bits: int = bits, _aux: object = aux) -> int:
            return _opc.evaluate(_bits, args, _aux)
        # the name says everything the function depends on: the translation cache
        # finds helpers again by name in another process
        suffix = ("" if bits == 64 else "_i32") + ("" if aux is None else f"_{aux}")
        h = Helper(f"op_{opc.name}{suffix}", fn, flags=CALL_PURE)
        _fallback_helpers[key] = h
    return h


def _imm(c: Const, w: int) -> int | None:
    """The sign-extended imm32 an instruction of width w can encode for c, if any."""
    v = c.value & MASK[w]
    s = v - (1 << w) if v >> (w - 1) else v
    return s if x.fits_i32(s) else None


def compute_last_use(block: Block) -> list[list[Temp] | None]:
    """Set each local temp's ``last_use`` (the index of the last op using it) and
    clear every temp's ``host_reg``; return, for each op index, the locals that die
    after it (in order of first use), or None.  A block that branches backwards keeps
    its locals to the end.  Every temp the ops use is in ``block.temps`` (the
    IRBuilder, which makes all temps, appends each there)."""
    ops = block.ops
    end = len(ops) + 1
    # (a list by op index: the driver looks every op up, and most find nothing)
    dead_at: list[list[Temp] | None] = [None] * (end + 1)
    any_local = False
    for t in block.temps:  # the block's temps are all its builder made
        t.last_use = -1
        t.host_reg = None
        if not t.is_global:
            any_local = True
    if not any_local:  # (two blocks in five: globals and constants only)
        return dead_at
    # the locals in order of first use, the order dead_at lists them in
    used: list[Temp] = []
    i = -1
    for op in ops:
        i += 1
        if op.opc is INSN_START:  # a third of all ops, and they use nothing
            continue
        for t in op.ins:
            if t.__class__ is Temp and not t.is_global:
                if t.last_use < 0:
                    used.append(t)
                t.last_use = i
        for t in op.outs:
            if not t.is_global:
                if t.last_use < 0:
                    used.append(t)
                t.last_use = i
    if block.label_count and _branches_backward(ops):
        for t in used:  # every local lives to the end of the block
            t.last_use = end
    for t in used:
        i = t.last_use
        dying = dead_at[i]
        if dying is None:
            dead_at[i] = [t]
        else:
            dying.append(t)
    return dead_at


def _branches_backward(ops: list[Op]) -> bool:
    """Whether a branch goes to a label placed before it."""
    labels: set[int] = set()
    for op in ops:
        opc = op.opc
        if opc is LABEL:
            labels.add(op.aux.id)
        elif opc is BR and op.aux.id in labels:
            return True
        elif opc is BRCOND and op.aux[1].id in labels:
            return True
    return False


class Codegen:
    def __init__(self, block: Block, targets: Targets, memory: object) -> None:
        self.block = block
        self.t = targets
        self.memory = memory
        self.asm = Assembler()
        # out-of-line code, emitted after the body: closures, or the records of the
        # memory slow paths (memory_slow_path)
        self.cold: list[Callable[[], None] | tuple] = []
        self.dead_at = compute_last_use(block)
        self.ra = RegAlloc(self.asm)
        self.labels: dict[int, Label] = {}
        self.cur_pc = block.pc
        self.out = GeneratedBlock(b"", 0, 0)
        self.pc_home = _pc_home(targets.pc_slot)
        self.exit_code = _store_rax_and_jump(targets.pc_slot)
        # ``mov qword [rbp + pc], imm32`` less its imm32 (store_pc_imm's common case)
        self.pc_store = None if block.pc_relative else _pc_store_imm32(targets.pc_slot)
        # the same for the low and the high half, for a pc that does not fit an imm32
        self.pc_halves = _pc_store_halves(targets.pc_slot)

    # -- external jumps -------------------------------------------------------------
    def jmp_ext(self, target: int) -> None:
        self.asm.byte(0xE9)
        self.out.ext_fixups.append((self.asm.pos(), target))
        self.asm.buf += b"\0\0\0\0"

    def jcc_ext(self, cc: int, target: int) -> None:
        self.asm.byte(0x0F, 0x80 + cc)
        self.out.ext_fixups.append((self.asm.pos(), target))
        self.asm.buf += b"\0\0\0\0"

    def store_pc(self, pc: int, scratch: int = R11) -> None:
        self.pc_into(scratch, pc)
        self.asm.store(8, self.pc_home, scratch)

    def pc_into(self, r: int, pc: int) -> None:
        """r = the guest pc ``pc``: a constant, or in a position-independent block
        (``Block.pc_relative``) the pc in the block's header plus ``pc``'s distance
        from the block's pc (lea: the host flags are left alone), so the code is right
        wherever the header says it runs."""
        if not self.block.pc_relative:
            self.asm.mov_ri(r, pc)
            return
        self.asm.load_rip(r, PC_TAG)
        delta = (pc - self.block.pc) & MASK[64]
        if delta:
            delta -= (delta >> 63) << 64
            self.asm.lea(r, Mem(r, delta))

    def label(self, lab: object) -> Label:
        lb = self.labels.get(lab.id)
        if lb is None:
            lb = self.labels[lab.id] = Label()
        return lb

    # -- driver -----------------------------------------------------------------------
    def generate(self) -> GeneratedBlock:
        a = self.asm
        buf = a.buf
        # the tags (flags, then the pc at PC_TAG), the entry's exit-request check
        buf += _TAGS.pack(self.block.flags & MASK[64], self.block.pc & MASK[64])
        entry, req_at = _entry_check(self.t.exit_request_slot)
        self.out.entry = len(buf)
        req_at += len(buf)
        buf += entry
        self.out.body = len(buf)
        dead_at = self.dead_at
        ra = self.ra
        locked = ra.locked
        handlers = _HANDLERS
        for i, op in enumerate(self.block.ops):
            opc = op.opc
            if opc is INSN_START:  # a third of all ops: uses, locks and frees nothing
                self.cur_pc = op.aux
                continue
            ra.op_index = i
            handler = handlers[opc]
            if handler is None or not handler(self, op):
                self.gen_call(fallback_helper(opc, op.type, op.aux), op.outs, op.ins)
            dying = dead_at[i]
            if dying is None:
                locked.clear()
            else:
                ra.end_op(dying)
        # cold code: the exit-request stub first
        _REL32.pack_into(buf, req_at, len(buf) - (req_at + 4))
        self.leave_with_pc(self.block.pc, self.t.req_exit)
        emit_slow_path = self.emit_slow_path
        for emit in self.cold:
            if emit.__class__ is tuple:
                emit_slow_path(*emit)
            else:
                emit()
        # the cold-path closures refer back to self: drop them so that the IR, the
        # allocator and the assembler are freed now, not by the cycle collector
        self.cold.clear()
        self.out.code = a.finish()
        return self.out

    # control flow and the ops that are not "compute outs from ins"
    def op_insn_start(self, op: Op) -> bool:  # generate() does this itself, inline
        self.cur_pc = op.aux
        return True

    def op_label(self, op: Op) -> bool:
        self.ra.sync()
        self.ra.forget()
        self.asm.bind(self.label(op.aux))
        return True

    def op_br(self, op: Op) -> bool:
        self.ra.sync()
        self.asm.jmp(self.label(op.aux))
        return True

    def op_brcond(self, op: Op) -> bool:
        cond, lab = op.aux
        cc = self.compare(op.ins[0], op.ins[1], cond, op.type)
        self.ra.sync()
        self.asm.jcc(cc, self.label(lab))
        return True

    def op_pc_rel(self, op: Op) -> bool:
        d = op.outs[0]
        r = self.ra.choose_out(d, None, None, _NONE)
        self.pc_into(r, op.aux)
        self.ra.set_out(d, r)
        return True

    def op_goto_ptr(self, op: Op) -> bool:
        self.ra.sync(globals_only=True)
        self.jmp_ext(self.t.lookup)
        return True

    def op_call(self, op: Op) -> bool:
        self.gen_call(op.aux, op.outs, op.ins)
        return True

    def op_ld(self, op: Op) -> bool:
        self.memory.load(self, op)
        return True

    def op_st(self, op: Op) -> bool:
        self.memory.store(self, op)
        return True

    def op_mb(self, op: Op) -> bool:
        self.asm.byte(0x0F, 0xAE, 0xF0)  # mfence
        return True

    def op_cmpxchg(self, op: Op) -> bool:
        self.memory.cmpxchg(self, op)
        return True

    def op_ld_bytes(self, op: Op) -> bool:
        self.memory.copy_bytes(self, op, False)
        return True

    def op_st_bytes(self, op: Op) -> bool:
        self.memory.copy_bytes(self, op, True)
        return True

    def op_vec_op(self, op: Op) -> bool:
        emit_vec_op(self, op)
        return True

    # -- exits ----------------------------------------------------------------------------
    def op_goto_pc(self, op: Op) -> bool:
        pc = op.aux
        buf = self.asm.buf
        self.ra.sync(globals_only=True)
        pad = NOP_PAD[-(len(buf) + 1) % 4]  # the rel32 field aligned: patched live
        self.out.exits.append((len(buf) + len(pad) + 1, pc))
        buf += pad
        buf += b"\xE9\0\0\0\0"  # rel32 0: falls through until chained
        self.leave_with_pc(pc, self.t.lookup)
        return True

    def leave_with_pc(self, pc: int, target: int) -> None:
        """pc slot = ``pc`` (through rax), then jump to ``target`` outside the block."""
        a = self.asm
        if self.block.pc_relative:
            self.pc_into(RAX, pc)
        else:
            a.buf += x.mov_ri_code(RAX, pc)
        code, jmp_at = self.exit_code
        self.out.ext_fixups.append((len(a.buf) + jmp_at, target))
        a.buf += code

    # -- helper calls ---------------------------------------------------------------------
    def gen_call(self, h: Helper, outs: list[Temp], ins: list[Operand]) -> None:
        a = self.asm
        ra = self.ra
        if len(ins) > len(ARG_REGS):
            raise ValueError(f"helper {h.name}: too many arguments")
        pure = h.flags == CALL_PURE
        if not pure:
            self.store_pc(self.cur_pc)
        inputs = {t.index for t in ins if isinstance(t, Temp)}
        ra.before_call(inputs, sync_globals=not pure or bool(h.flags & CALL_READS_STATE),
                       drop_globals=bool(h.flags & CALL_WRITES_STATE))
        for reg, arg in zip(ARG_REGS, ins, strict=False):
            if isinstance(arg, Const):
                a.mov_ri(reg, arg.value)
            else:
                r = ra.reg_of(arg)
                if r is not None:
                    a.mov_rr(64, reg, r)
                else:
                    a.load(64, reg, ra.home(arg))
        sse = sse_fp.sse_op(h) if pure else None
        done = None
        if sse is not None and sse_fp.applicable(sse, ins):
            # SSE computes it when the rounding mode is round-to-nearest; else the call
            call, done = Label(), Label()
            table_at = sse_fp.emit_fast_path(a, sse, ins, call, FRAME_CTX)
            self.out.helper_fixups.append((table_at, h, SSE_TABLE))
            a.jmp(done)
            a.bind(call)
        at = a.mov_ri64(RAX, self.t.callback(h, len(ins)))
        self.out.helper_fixups.append((at, h, len(ins)))
        code, (exc_at,) = HELPER_CALL_CHECK
        self.out.ext_fixups.append((len(a.buf) + exc_at, self.t.exc_exit))
        a.buf += code
        if done is not None:
            a.bind(done)
        if outs:
            ra.set_out(outs[0], RAX)
        if len(outs) > 1:
            r = ra.pick()
            a.load(64, R11, Mem(RSP, FRAME_CTX))
            a.load(64, r, Mem(R11, 8))
            ra.set_out(outs[1], r)

    def store_pc_imm(self, pc: int) -> None:
        """Store the guest pc without a scratch register."""
        if self.pc_store is None:  # pc-relative: borrow rax (below rsp is free)
            self.asm.byte(0x50)  # push rax
            self.store_pc(pc, RAX)
            self.asm.byte(0x58)  # pop rax
        elif pc < (1 << 31):
            self.asm.buf += self.pc_store + pc.to_bytes(4, "little")
        else:
            low, high = self.pc_halves
            self.asm.buf += b"".join((low, (pc & 0xFFFF_FFFF).to_bytes(4, "little"), high,
                                      (pc >> 32 & 0xFFFF_FFFF).to_bytes(4, "little")))

    def memory_slow_path(self, thunk: tuple, code: AccessCode, hot_at: int, back: int,
                         set_args: Callable[[], None] | None = None) -> None:
        """Out-of-line call of the shared memory thunk keyed ``thunk`` (runtime.py) for
        the access whose ``code`` (memory_common.AccessCode) was copied at ``hot_at``
        and goes on at ``back``: after the body, the dirty globals written home, the pc
        stored, ``set_args``, then the access's tail and cold code.

        The allocation is the one at the access: dirty globals are written home first
        (the slow path may raise a guest fault), the thunk preserves the registers.
        """
        # emitted by generate (emit_slow_path): a record, not a closure, is cheaper
        self.cold.append((code, hot_at, back, self.ra.dirty_globals(), self.cur_pc,
                          set_args, self.t.thunks[thunk]))

    def emit_slow_path(self, code: AccessCode, hot_at: int, back: int,
                       dirty_globals: bytes, pc: int,
                       set_args: Callable[[], None] | None, thunk: int) -> None:
        """The cold code of a ``memory_slow_path``."""
        a = self.asm
        slow = len(a.buf)
        a.buf += dirty_globals
        if self.pc_store is not None and pc < (1 << 31):  # store_pc_imm(pc), inline
            a.buf += self.pc_store + pc.to_bytes(4, "little")
        else:
            self.store_pc_imm(pc)
        if set_args is not None:
            set_args()
        at = code.emit_cold(a.buf, hot_at, back, slow)
        call_at, exc_at = code.ext
        self.out.ext_fixups += ((at + call_at, thunk), (at + exc_at, self.t.exc_exit))

    # -- operand helpers ------------------------------------------------------------------
    def src(self, v: Operand, w: int, scratch: int = R11) -> int:
        """A register holding v (a constant goes into ``scratch``)."""
        if isinstance(v, Const):
            self.asm.mov_ri(scratch, v.value & MASK[w])
            return scratch
        return self.ra.use(v)

    def compare(self, p: Operand, q: Operand, cond: Cond, w: int) -> int:
        """Emit cmp for cond(p, q); returns the x86 condition code."""
        if isinstance(p, Const) and not isinstance(q, Const):
            p, q, cond = q, p, cond.swap()
        rp = self.src(p, w)
        if isinstance(q, Const) and _imm(q, w) is not None:
            self.asm.alu_ri(x.CMP, w, rp, _imm(q, w))
        else:
            rq = self.src(q, w, RCX)
            self.asm.alu_rr(x.CMP, w, rp, rq)
        return CC[cond]

    # -- ops ------------------------------------------------------------------------------
    def op_mov(self, op: Op) -> bool:
        d, v = op.outs[0], op.ins[0]
        w = op.type
        if v.__class__ is Const:
            r = self.ra.choose_out(d, None, None, _NONE)
            self.asm.buf += x.mov_ri_code(r, v.value & MASK[w])
        else:
            rv = self.ra.use(v)
            if w == 64 and self.ra.dying(v) and v is not d:
                self.ra.set_out(d, rv)  # just rename
                return True
            r = self.ra.choose_out(d, rv, v, _NONE)
            self.asm.mov_rr(w, r, rv)
        self.ra.set_out(d, r)
        return True

    def _binary(self, op: Op) -> bool:
        """d = p aop q (a group-1 ALU op: add, sub, and, or, xor), or p * q (mul).
        The op table's handler itself: a fifth of all ops, so no trampoline."""
        a = self.asm
        d = op.outs[0]
        w = op.type
        p, q = op.ins
        aop = ALU.get(op.opc)  # None: mul
        if op.opc.commutative and p.__class__ is Const and q.__class__ is not Const:
            p, q = q, p
        imm = rq = None
        if q.__class__ is Const:  # _imm(q, w), inline: most adds add a constant
            imm = q.value & MASK[w]
            if imm >> (w - 1):
                imm -= 1 << w
            if not -0x8000_0000 <= imm < 0x8000_0000:
                imm = None
        if imm is None:
            rq = self.src(q, w, RCX)
        rp = self.ra.use(p) if p.__class__ is Temp else None
        r = self.ra.choose_out(d, rp, p, {rq} if rq is not None and q is not p else _NONE)
        if rp is None:
            a.mov_ri(r, p.value & MASK[w])
        else:
            a.mov_rr(w, r, rp)
        if imm is not None:
            if aop is None:
                a.imul_rri(w, r, r, imm)
            else:
                a.alu_ri(aop, w, r, imm)
        elif aop is None:
            a.imul_rr(w, r, rq)
        else:
            a.alu_rr(aop, w, r, rq)
        self.ra.set_out(d, r)
        return True

    op_add = op_sub = op_and = op_or = op_xor = op_mul = _binary

    def _with_not(self, op: Op, aop: int, invert_result: bool) -> bool:
        """andc/orc (a op ~b) and eqv (~(a ^ b))."""
        a = self.asm
        d = op.outs[0]
        w = op.type
        p, q = op.ins
        rq = self.src(q, w, RCX)
        a.mov_rr(64, R11, rq)
        if not invert_result:
            a.unary(x.NOT, w, R11)
        rp = self.src(p, w, RCX) if isinstance(p, Temp) else None
        r = self.ra.choose_out(d, rp, p, _NONE)
        if rp is None:
            a.mov_ri(r, p.value & MASK[w])
        else:
            a.mov_rr(w, r, rp)
        a.alu_rr(aop, w, r, R11)
        if invert_result:
            a.unary(x.NOT, w, r)
        self.ra.set_out(d, r)
        return True

    def op_andc(self, op: Op) -> bool:
        return self._with_not(op, x.AND, False)

    def op_orc(self, op: Op) -> bool:
        return self._with_not(op, x.OR, False)

    def op_eqv(self, op: Op) -> bool:
        return self._with_not(op, x.XOR, True)

    def _shift(self, op: Op) -> bool:
        a = self.asm
        sop = SHIFT[op.opc]
        d = op.outs[0]
        w = op.type
        p, q = op.ins
        if isinstance(q, Const):
            n = q.value & (w - 1)
            rp = self.src(p, w)
            r = self.ra.choose_out(d, rp if isinstance(p, Temp) else None, p, _NONE)
            a.mov_rr(w, r, rp)
            if n:
                a.shift_ri(sop, w, r, n)
            self.ra.set_out(d, r)
            return True
        rq = self.ra.use(q)
        a.mov_rr(32, RCX, rq)
        rp = self.src(p, w)
        r = self.ra.choose_out(d, rp if isinstance(p, Temp) else None, p, _NONE)
        a.mov_rr(w, r, rp)
        a.shift_cl(sop, w, r)
        self.ra.set_out(d, r)
        return True

    op_shl = op_shr = op_sar = op_rotl = op_rotr = _shift

    def _unary(self, op: Op, emit: Callable[[int, int, int], None]) -> bool:
        d, p = op.outs[0], op.ins[0]
        w = op.type
        rp = self.src(p, w)
        r = self.ra.choose_out(d, rp if isinstance(p, Temp) else None, p, _NONE)
        emit(w, r, rp)
        self.ra.set_out(d, r)
        return True

    def op_neg(self, op: Op) -> bool:
        a = self.asm
        return self._unary(op, lambda w, r, s: (a.mov_rr(w, r, s), a.unary(x.NEG, w, r)))

    def op_not(self, op: Op) -> bool:
        a = self.asm
        return self._unary(op, lambda w, r, s: (a.mov_rr(w, r, s), a.unary(x.NOT, w, r)))

    def op_bswap(self, op: Op) -> bool:
        a = self.asm
        return self._unary(op, lambda w, r, s: (a.mov_rr(w, r, s), a.bswap(w, r)))

    def op_ext8s(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movsx(w, r, s, 1))

    def op_ext16s(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movsx(w, r, s, 2))

    def op_ext32s(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movsx(w, r, s, 4))

    def op_ext8u(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movzx(r, s, 1))

    def op_ext16u(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movzx(r, s, 2))

    def op_ext32u(self, op: Op) -> bool:
        return self._unary(op, lambda w, r, s: self.asm.movzx(r, s, 4))

    def op_clz(self, op: Op) -> bool:
        if not FEATURES.lzcnt:
            return False
        return self._unary(op, lambda w, r, s: self.asm.bitcount(0xBD, w, r, s))

    def op_ctz(self, op: Op) -> bool:
        if not FEATURES.tzcnt:
            return False
        return self._unary(op, lambda w, r, s: self.asm.bitcount(0xBC, w, r, s))

    def op_ctpop(self, op: Op) -> bool:
        if not FEATURES.popcnt:
            return False
        return self._unary(op, lambda w, r, s: self.asm.bitcount(0xB8, w, r, s))

    def op_setcond(self, op: Op) -> bool:
        cc = self.compare(op.ins[0], op.ins[1], op.aux, op.type)
        d = op.outs[0]
        self.asm.setcc(cc, R11)
        r = self.ra.choose_out(d, None, None, _NONE)
        self.asm.movzx(r, R11, 1)
        self.ra.set_out(d, r)
        return True

    def op_movcond(self, op: Op) -> bool:
        a = self.asm
        w = op.type
        c1, c2, v1, v2 = op.ins
        # the values first: materialising a constant may clobber the flags
        rv1 = self.src(v1, w, R11)
        if rv1 == R11:
            a.mov_rr(64, RCX, R11)
            rv1 = RCX
        rv2 = self.src(v2, w, R11)
        if rv2 != R11:
            a.mov_rr(64, R11, rv2)
        if isinstance(c1, Const) and not isinstance(c2, Const):
            c1, c2, cond = c2, c1, op.aux.swap()
        else:
            cond = op.aux
        # compare without touching r11 (it holds v2) or rcx (v1)
        p = self.ra.use(c1) if isinstance(c1, Temp) else None
        if p is None:
            p = self.ra.pick()
            self.ra.locked.add(p)
            a.mov_ri(p, c1.value & MASK[w])
        if isinstance(c2, Const) and _imm(c2, w) is not None:
            a.alu_ri(x.CMP, w, p, _imm(c2, w))
        else:
            q = self.ra.use(c2) if isinstance(c2, Temp) else None
            if q is None:
                q = self.ra.pick()
                self.ra.locked.add(q)
                a.mov_ri(q, c2.value & MASK[w])
            a.alu_rr(x.CMP, w, p, q)
        a.cmov(CC[cond], w, R11, rv1)
        d = op.outs[0]
        r = self.ra.choose_out(d, None, None, _NONE)
        a.mov_rr(w, r, R11)
        self.ra.set_out(d, r)
        return True

    def _minmax(self, op: Op, cc: int) -> bool:
        a = self.asm
        w = op.type
        p, q = op.ins
        rq = self.src(q, w, RCX)
        rp = self.src(p, w, R11)
        if rp != R11:
            a.mov_rr(64, R11, rp)
        a.alu_rr(x.CMP, w, R11, rq)
        a.cmov(cc, w, R11, rq)
        d = op.outs[0]
        r = self.ra.choose_out(d, None, None, _NONE)
        a.mov_rr(w, r, R11)
        self.ra.set_out(d, r)
        return True

    def op_min(self, op: Op) -> bool:
        return self._minmax(op, x.CC_G)

    def op_max(self, op: Op) -> bool:
        return self._minmax(op, x.CC_L)

    def op_minu(self, op: Op) -> bool:
        return self._minmax(op, x.CC_A)

    def op_maxu(self, op: Op) -> bool:
        return self._minmax(op, x.CC_B)

    def _rax_rdx_op(self, op: Op, body: Callable[[int], int]) -> bool:
        """Ops that need rax and rdx: operands go to r11 (a) and rcx (b) first."""
        a = self.asm
        w = op.type
        p, q = op.ins
        rp = self.src(p, w, R11)
        if rp != R11:
            a.mov_rr(64, R11, rp)
        rq = self.src(q, w, RCX)
        if rq != RCX:
            a.mov_rr(64, RCX, rq)
        self.ra.locked.clear()
        self.ra.evict(RAX)
        self.ra.evict(RDX)
        self.ra.locked.update((RAX, RDX))
        result = body(w)
        d = op.outs[0]
        self.ra.set_out(d, result)
        return True

    def _mulh(self, op: Op) -> bool:
        if op.type != 64:
            return False
        a = self.asm
        opc = op.opc

        def body(w: int) -> int:
            a.mov_rr(64, RAX, R11)
            a.unary(x.IMUL1 if opc is MULSH else x.MUL, 64, RCX)
            if opc is MULSUH:
                # signed a times unsigned b: the unsigned high half minus b if a < 0
                a.shift_ri(x.SAR, 64, R11, 63)
                a.alu_rr(x.AND, 64, R11, RCX)
                a.alu_rr(x.SUB, 64, RDX, R11)
            return RDX
        return self._rax_rdx_op(op, body)

    op_mulsh = op_muluh = op_mulsuh = _mulh

    def _divrem(self, op: Op) -> bool:
        a = self.asm
        opc = op.opc
        signed = opc is DIV or opc is REM
        want_rem = opc is REM or opc is REMU

        def body(w: int) -> int:
            res = RDX if want_rem else RAX
            zero, done = Label(), Label()
            a.mov_rr(64, RAX, R11)
            a.test_rr(w, RCX, RCX)
            a.jcc(x.CC_E, zero)
            if signed:
                minus1 = Label()
                a.alu_ri(x.CMP, w, RCX, -1)
                a.jcc(x.CC_E, minus1)
                a.cqo(w)
                a.unary(x.IDIV, w, RCX)
            else:
                a.mov_ri(RDX, 0)
                a.unary(x.DIV, w, RCX)
            a.jmp(done)
            if signed:
                a.bind(minus1)
                if want_rem:
                    a.mov_ri(RDX, 0)
                else:
                    a.unary(x.NEG, w, RAX)
                a.jmp(done)
            a.bind(zero)
            if want_rem:
                a.mov_rr(w, RDX, R11)
            else:
                a.mov_ri(RAX, MASK[w])
            a.bind(done)
            if w == 32:
                a.mov_rr(32, res, res)
            return res
        return self._rax_rdx_op(op, body)

    op_div = op_divu = op_rem = op_remu = _divrem


# Ops with no inline code at all: always a call of their fallback helper.  (A handler
# may also decline an op at run time, e.g. clz without lzcnt, by returning False.)
NOT_NATIVE: frozenset[Opcode] = frozenset()


def _handlers() -> dict[Opcode, Callable[[Codegen, Op], bool] | None]:
    """Opcode -> Codegen.op_<name> (looked up once per op: no string building per op),
    checked complete against the op table."""
    handlers: dict[Opcode, Callable[[Codegen, Op], bool] | None] = dict.fromkeys(NOT_NATIVE)
    for name, fn in vars(Codegen).items():
        if name.startswith("op_"):
            opc = OPCODES.get(name[3:])
            if opc is None:
                raise ImportError(f"native codegen: {name} handles no op of the table")
            if opc in NOT_NATIVE:
                raise ImportError(f"native codegen: {name} handles an op listed NOT_NATIVE")
            handlers[opc] = fn
    missing = [name for name, opc in OPCODES.items() if opc not in handlers]
    if missing:
        raise ImportError(f"native codegen: no op_ handler (nor NOT_NATIVE) for {missing}")
    return handlers


_HANDLERS = _handlers()

__all__ = ["Codegen", "GeneratedBlock", "Targets", "FEATURES", "PC_TAG", "link_fixups",
           "ARG_REGS", "RSI", "R9", "RDX"]
