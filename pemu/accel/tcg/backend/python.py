"""The portable backend: IR -> Python source -> code object.

Each block becomes one Python function ``tb(S, env) -> next_pc``:
  * ``S`` is the CPU state block as a memoryview of 64-bit words; every global the
    block touches is loaded into a Python local at entry, kept there, and written back
    at exits, around helpers that read or write state, and when an exception leaves;
  * ``env`` is the running CPU object, passed to helpers that ask for it;
  * guest memory accesses are inlined by a ``MemoryCodegen`` (user mode: direct host
    addressing behind per-page permission tables; system mode: the softmmu TLB).

Precise exceptions cost nothing on the fast path: the function body sits in a
``try`` whose handler writes the globals back and maps the line number that raised
(``__traceback__.tb_lineno``) to the guest pc recorded by ``insn_start``.

Control flow inside a block must be structured: forward ``brcond``s whose targets
nest, and ``br`` only in the if/else shape.  The RISC-V frontend emits exactly that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pemu.accel.tcg.ir import (
    CALL_READS_STATE,
    CALL_WRITES_STATE,
    I32,
    MASK,
    Block,
    Cond,
    Const,
    Helper,
    MemOp,
    Op,
    Operand,
    Temp,
)
from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    ANDC,
    BR,
    BRCOND,
    BSWAP,
    CALL,
    CLZ,
    CMPXCHG,
    CTPOP,
    CTZ,
    DIV,
    DIVU,
    EQV,
    EXT8S,
    EXT8U,
    EXT16S,
    EXT16U,
    EXT32S,
    EXT32U,
    GOTO_PC,
    GOTO_PTR,
    INSN_START,
    LABEL,
    LD,
    LD_BYTES,
    MAX,
    MAXU,
    MB,
    MIN,
    MINU,
    MOV,
    MOVCOND,
    MUL,
    MULSH,
    MULSUH,
    MULUH,
    NEG,
    NOT,
    OPCODES,
    OR,
    ORC,
    PC_REL,
    REM,
    REMU,
    ROTL,
    ROTR,
    SAR,
    SETCOND,
    SHL,
    SHR,
    ST,
    ST_BYTES,
    SUB,
    VEC_OP,
    XOR,
    Opcode,
)
from pemu.accel.tcg.vec_op import run_vec_op

_PY_COND = {
    Cond.EQ: "==", Cond.NE: "!=", Cond.LT: "<", Cond.GE: ">=", Cond.LE: "<=", Cond.GT: ">",
    Cond.LTU: "<", Cond.GEU: ">=", Cond.LEU: "<=", Cond.GTU: ">",
}


class MemoryCodegen(Protocol):
    """Emits the Python for guest loads and stores of one memory model."""

    def namespace(self) -> dict[str, object]: ...

    def load(self, dst: str, addr: str, memop: MemOp, bits: int) -> list[str]: ...

    def store(self, value: str, addr: str, memop: MemOp) -> list[str]: ...


_UNSIGNED_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED_FMT = {1: "b", 2: "h", 4: "i", 8: "q"}


def struct_accessors() -> dict[str, object]:
    """U<n>/I<n> (unsigned/signed little-endian loads) and P<n> (stores) of n bytes:
    the names every MemoryCodegen's generated code uses for RAM accesses."""
    ns: dict[str, object] = {}
    for size, fmt in _UNSIGNED_FMT.items():
        ns[f"U{size}"] = struct.Struct("<" + fmt).unpack_from
        ns[f"P{size}"] = struct.Struct("<" + fmt).pack_into
    for size, fmt in _SIGNED_FMT.items():
        ns[f"I{size}"] = struct.Struct("<" + fmt).unpack_from
    return ns


def _sign_extend_expr(expr: str, size: int, bits: int) -> str:
    sign = 1 << (size * 8 - 1)
    return f"((({expr}) ^ {sign:#x}) - {sign:#x}) & {MASK[bits]:#x}"


class UserMemoryCodegen:
    """Linux user mode: guest address A is ``mem[A]``, checked against page tables.

    The fast path indexes the page tables with ``A >> 12`` and no range check: an
    address beyond the guest address space raises IndexError, and the engine then
    replays that one instruction with ``always_slow`` code, whose checked accesses
    raise the precise GuestFault.
    """

    def __init__(self, vmem: object, always_slow: bool = False) -> None:
        self.vmem = vmem
        self.always_slow = always_slow

    def namespace(self) -> dict[str, object]:
        vm = self.vmem
        return {"M": vm.mem, "RP": vm.readable, "WP": vm.writable_fast,
                "LDS": vm.load_slow, "STS": vm.store_slow, **struct_accessors()}

    @staticmethod
    def _fast_check(addr: str, size: int, table: str) -> str:
        check = f"{table}[{addr} >> 12]"
        if size > 1:
            check += f" and ({addr} & 4095) <= {4096 - size}"
        return check

    def load(self, dst: str, addr: str, memop: MemOp, bits: int) -> list[str]:
        size = memop.size
        if memop.signed:
            fast = f"I{size}(M, {addr})[0] & {MASK[bits]:#x}"
            slow = _sign_extend_expr(f"LDS({addr}, {size})", size, bits)
        else:
            fast = f"U{size}(M, {addr})[0]"
            slow = f"LDS({addr}, {size})"
        if self.always_slow:
            return [f"{dst} = {slow}"]
        return [f"{dst} = {fast} if {self._fast_check(addr, size, 'RP')} else {slow}"]

    def store(self, value: str, addr: str, memop: MemOp) -> list[str]:
        size = memop.size
        v = value if size == 8 else f"{value} & {(1 << size * 8) - 1:#x}"
        if self.always_slow:
            return [f"STS({addr}, {size}, {value})"]
        return [
            f"if {self._fast_check(addr, size, 'WP')}: P{size}(M, {addr}, {v})",
            f"else: STS({addr}, {size}, {value})",
        ]


@dataclass
class CompiledBlock:
    fn: Callable[[memoryview, object], int]
    source: str


class UnstructuredControlFlow(Exception):
    pass


class PythonBackend:
    name = "python"

    def __init__(self, memory: MemoryCodegen, pc_slot: int) -> None:
        """``pc_slot``: the state slot where a trap leaves the faulting guest pc."""
        self.memory = memory
        self._base_ns = {**RUNTIME_NAMESPACE, **memory.namespace(), _PC_SLOT_NAME: pc_slot}

    def compile(self, block: Block) -> CompiledBlock:
        return _Codegen(block, self._base_ns, self.memory).build()


def _global_local_name(t: Temp) -> str:
    return "g_" + t.name


class _Codegen:
    def __init__(self, block: Block, base_ns: dict[str, object], memory: MemoryCodegen) -> None:
        self.block = block
        self.memory = memory
        self.ns = dict(base_ns)
        self.lines: list[tuple[int, str]] = []  # (indent, text)
        self.line_pc: list[int] = []  # guest pc for each emitted line
        self.indent = 2
        self.cur_pc = block.pc
        self.helper_names: dict[int, str] = {}
        self.globals_used: list[Temp] = []
        self.globals_written: list[Temp] = []  # in textual order of first write
        # locals whose every definition is a 32-bit op: their values need no masking
        self.narrow: set[int] = _narrow_locals(block)

    # -- naming -------------------------------------------------------------------
    def name(self, x: Operand) -> str:
        if isinstance(x, Const):
            return hex(x.value)
        return _global_local_name(x) if x.is_global else x.name

    def operand(self, x: Operand, bits: int) -> str:
        """An operand's expression, reduced to ``bits`` when it may be wider."""
        s = self.name(x)
        if bits == I32 and isinstance(x, Temp) and x.type != I32 and x.index not in self.narrow:
            return f"({s} & 0xffffffff)"
        if isinstance(x, Const):
            return hex(x.value & MASK[bits])
        return s

    def is_narrow(self, x: Operand) -> bool:
        if isinstance(x, Const):
            return x.value <= 0xFFFF_FFFF
        return x.type == I32 or x.index in self.narrow

    def helper(self, h: Helper) -> str:
        key = id(h)
        if key not in self.helper_names:
            name = f"H{len(self.helper_names)}_{h.name}"
            self.helper_names[key] = name
            self.ns[name] = h.fn
        return self.helper_names[key]

    def emit(self, text: str) -> None:
        self.lines.append((self.indent, text))
        self.line_pc.append(self.cur_pc)

    # -- state sync ---------------------------------------------------------------
    def writeback(self, written: list[Temp]) -> None:
        for t in written:
            self.emit(f"S[{t.slot}] = {_global_local_name(t)}")

    def reload(self) -> None:
        for t in self.globals_used:
            self.emit(f"{_global_local_name(t)} = S[{t.slot}]")

    # -- building -------------------------------------------------------------------
    def build(self) -> CompiledBlock:
        seen: set[int] = set()
        for op in self.block.ops:
            for x in (*op.outs, *op.ins):
                if isinstance(x, Temp) and x.is_global and x.index not in seen:
                    seen.add(x.index)
                    self.globals_used.append(x)
        written_ids: set[int] = set()
        stack: list[int] = []  # open forward-branch label ids
        ops = self.block.ops
        skip = -1
        for i, op in enumerate(ops):
            opc = op.opc
            if i == skip:
                continue
            if opc is INSN_START:
                self.cur_pc = op.aux
                continue
            if opc is LABEL:
                if not stack or stack[-1] != op.aux.id:
                    if op.aux.id in stack:
                        raise UnstructuredControlFlow(f"label L{op.aux.id} does not nest")
                    continue  # a label nobody branches to (or a backward target: unsupported)
                while stack and stack[-1] == op.aux.id:
                    stack.pop()
                    self._close_block()
                continue
            if opc is BRCOND:
                cond, label = op.aux
                a = self.cmp_operand(op.ins[0], op.type, cond)
                b = self.cmp_operand(op.ins[1], op.type, cond)
                self.emit(f"if not ({a} {_PY_COND[cond]} {b}):")
                self.indent += 1
                stack.append(label.id)
                continue
            if opc is BR:
                nxt = ops[i + 1] if i + 1 < len(ops) else None
                if stack and nxt is not None and nxt.opc is LABEL and nxt.aux.id == stack[-1]:
                    # if/else: close the then-part, open the else-part up to op.aux
                    stack.pop()
                    self._close_block()
                    self.emit("else:")
                    self.indent += 1
                    stack.append(op.aux.id)
                    skip = i + 1  # that label is consumed by the else
                    continue
                raise UnstructuredControlFlow("br outside an if/else shape")
            for d in op.outs:
                if d.is_global and d.index not in written_ids:
                    written_ids.add(d.index)
                    self.globals_written.append(d)
            self.gen_op(op)
        if stack:
            raise UnstructuredControlFlow("branch to a label that is never placed")
        return self.finish()

    def _close_block(self) -> None:
        if self.lines and self.lines[-1][1].endswith(":") and self.lines[-1][0] == self.indent - 1:
            self.emit("pass")
        self.indent -= 1

    def cmp_operand(self, x: Operand, bits: int, cond: Cond) -> str:
        s = self.operand(x, bits)
        if cond.signed:
            sign = 1 << (bits - 1)
            return f"({s} ^ {sign:#x})"
        return s

    def finish(self) -> CompiledBlock:
        fname = f"tb_{self.block.pc:x}"
        head = [f"def {fname}(S, env):"]
        for t in self.globals_used:
            head.append(f"    {_global_local_name(t)} = S[{t.slot}]")
        head.append("    try:")
        body_first_line = len(head) + 1  # 1-based line number of the first body line
        body = ["    " * ind + text for ind, text in self.lines] or ["        pass"]
        tail = ["    except BaseException as _exc:"]
        for t in self.globals_written:
            tail.append(f"        S[{t.slot}] = {_global_local_name(t)}")
        tail.append(f"        S[{_PC_SLOT_NAME}] = PCMAP.get(_exc.__traceback__.tb_lineno, "
                    f"{self.block.pc:#x})")
        tail.append("        raise")
        source = "\n".join(head + body + tail) + "\n"
        pcmap = {body_first_line + i: pc for i, pc in enumerate(self.line_pc)}
        self.ns["PCMAP"] = pcmap
        code = compile(source, f"<tb 0x{self.block.pc:x}>", "exec")
        exec(code, self.ns)  # noqa: S102 - this is the code generator
        return CompiledBlock(self.ns[fname], source)

    # -- ops -------------------------------------------------------------------------
    def gen_op(self, op: Op) -> None:
        opc = op.opc
        template = _TEMPLATES.get(opc)
        if template is not None:
            bits = op.type
            d = self.name(op.outs[0])
            a = self.operand(op.ins[0], bits)
            b = self.operand(op.ins[1], bits) if len(op.ins) > 1 else ""
            if opc in _CONST_COUNT_TEMPLATES and isinstance(op.ins[1], Const):
                template = _CONST_COUNT_TEMPLATES[opc]
                b = str(op.ins[1].value & (bits - 1))
            elif opc is EXT32S and self.is_narrow(op.ins[0]):
                template = _NARROW_EXT32S
            self.emit(f"{d} = " + template.format(a=a, b=b, **_WIDTH_VALUES[bits]))
            return
        _SPECIAL[opc](self, op)

    def gen_exit(self, op: Op) -> None:
        self.writeback([t for t in self.globals_written if t.name != "pc"])
        if op.opc is GOTO_PC:
            self.emit(f"return {op.aux:#x}")
        else:
            pc = next((t for t in self.globals_used if t.name == "pc"), None)
            if pc is None:
                raise ValueError("goto_ptr in a block that never sets the pc global")
            self.emit(f"return {_global_local_name(pc)}")

    def gen_st(self, op: Op) -> None:
        value = self.operand(op.ins[0], 64)
        addr = self.operand(op.ins[1], 64)
        for line in self.memory.store(value, addr, op.aux):
            self.emit(line)

    def gen_mb(self, op: Op) -> None:
        """Nothing: python blocks touch guest memory only while holding the GIL, whose
        hand-over between threads is a full barrier already."""

    def gen_cmpxchg(self, op: Op) -> None:
        """Never done inline here (the python backend runs one vCPU thread): the weak
        swap always reports that it did not happen, and the frontend's helper runs."""
        d = self.name(op.outs[0])
        self.emit(f"{d} = {self.operand(op.ins[1], 64)} ^ 1")

    def gen_bytes(self, op: Op) -> None:
        """ld_bytes/st_bytes: never done inline here either (a Python copy would cost
        what the frontend's helper costs): d = 0, and the helper moves the bytes."""
        self.emit(f"{self.name(op.outs[0])} = 0")

    def gen_vec_op(self, op: Op) -> None:
        """vec_op: its reference semantics (vec_op.run_vec_op), element by element."""
        name = f"VEC_{op.aux.kind}_{op.aux.sew}_{int(op.aux.scalar)}"
        self.ns[name] = op.aux
        args = ", ".join(self.operand(x, 64) for x in op.ins)
        self.emit(f"RUN_VEC_OP({name}, {args})")

    def gen_pc_rel(self, op: Op) -> None:
        """pc_rel: a constant (python blocks are never moved to another pc)."""
        self.emit(f"{self.name(op.outs[0])} = {op.aux & MASK[64]:#x}")

    def gen_ld(self, op: Op) -> None:
        d = self.name(op.outs[0])
        for line in self.memory.load(d, self.operand(op.ins[0], 64), op.aux, op.type):
            self.emit(line)

    def gen_cond(self, op: Op) -> None:
        """setcond and movcond."""
        cond = op.aux
        bits = op.type
        x = self.cmp_operand(op.ins[0], bits, cond)
        y = self.cmp_operand(op.ins[1], bits, cond)
        if op.opc is SETCOND:
            v1, v2 = "1", "0"
        else:
            v1 = self.operand(op.ins[2], bits)
            v2 = self.operand(op.ins[3], bits)
        self.emit(f"{self.name(op.outs[0])} = {v1} if {x} {_PY_COND[cond]} {y} else {v2}")

    def gen_call(self, op: Op) -> None:
        h: Helper = op.aux
        fname = self.helper(h)
        args = [self.name(x) for x in op.ins]
        if h.needs_env:
            args.insert(0, "env")
        if h.flags & CALL_READS_STATE:
            self.writeback(self.globals_written)
        call = f"{fname}({', '.join(args)})"
        outs = [self.name(d) for d in op.outs]
        writes = h.flags & CALL_WRITES_STATE
        if writes:
            # a helper that writes state and then raises (a vector load leaving vstart
            # at the faulting element) must not have its writes undone by the block's
            # handler, which stores the locals back: they take the helper's values
            self.emit("try:")
            self.indent += 1
        if not outs:
            self.emit(call)
        else:
            self.emit(f"{', '.join(outs)} = {call}")
        if writes:
            self.indent -= 1
            self.emit("except BaseException:")
            self.indent += 1
            if self.globals_used:  # one line: compile time matters
                names = ", ".join(_global_local_name(t) for t in self.globals_used)
                slots = ", ".join(f"S[{t.slot}]" for t in self.globals_used)
                self.emit(f"{names}, = {slots},")
            self.emit("raise")
            self.indent -= 1
            out_ids = {d.index for d in op.outs}
            for t in self.globals_used:
                if t.index not in out_ids:
                    self.emit(f"{_global_local_name(t)} = S[{t.slot}]")


_PC_SLOT_NAME = "PC_SLOT"

# Python source per pure op: ``{a}``, ``{b}`` are the inputs (already reduced to the
# op's width), the other fields are _WIDTH_VALUES.  Outputs must be reduced to the width.
_TEMPLATES: dict[Opcode, str] = {
    MOV: "{a}",
    ADD: "({a} + {b}) & {m}",
    SUB: "({a} - {b}) & {m}",
    MUL: "({a} * {b}) & {m}",
    AND: "{a} & {b}",
    OR: "{a} | {b}",
    XOR: "{a} ^ {b}",
    ANDC: "{a} & ({b} ^ {m})",
    ORC: "{a} | ({b} ^ {m})",
    EQV: "{a} ^ {b} ^ {m}",
    SHL: "({a} << ({b} & {w1})) & {m}",
    SHR: "{a} >> ({b} & {w1})",
    SAR: "((({a} ^ {sign}) - {sign}) >> ({b} & {w1})) & {m}",
    ROTL: "ROTL({a}, {b}, {w})",
    ROTR: "ROTR({a}, {b}, {w})",
    MULSH: "(((({a} ^ {sign}) - {sign}) * (({b} ^ {sign}) - {sign})) >> {w}) & {m}",
    MULUH: "({a} * {b}) >> {w}",
    MULSUH: "(((({a} ^ {sign}) - {sign}) * {b}) >> {w}) & {m}",
    DIV: "DIV({a}, {b}, {w})",
    DIVU: "({a} // {b}) if {b} else {m}",
    REM: "REM({a}, {b}, {w})",
    REMU: "({a} % {b}) if {b} else {a}",
    MIN: "{a} if ({a} ^ {sign}) <= ({b} ^ {sign}) else {b}",
    MAX: "{a} if ({a} ^ {sign}) >= ({b} ^ {sign}) else {b}",
    MINU: "{a} if {a} <= {b} else {b}",
    MAXU: "{a} if {a} >= {b} else {b}",
    NEG: "(-{a}) & {m}",
    NOT: "{a} ^ {m}",
    EXT8S: "(({a} & 0xff ^ 0x80) - 0x80) & {m}",
    EXT16S: "(({a} & 0xffff ^ 0x8000) - 0x8000) & {m}",
    EXT32S: "(({a} & 0xffffffff ^ 0x80000000) - 0x80000000) & {m}",
    EXT8U: "{a} & 0xff",
    EXT16U: "{a} & 0xffff",
    EXT32U: "{a} & 0xffffffff",
    CLZ: "{w} - {a}.bit_length()",
    CTZ: "(({a} & -{a}).bit_length() - 1) if {a} else {w}",
    CTPOP: "{a}.bit_count()",
    BSWAP: "int.from_bytes({a}.to_bytes({nbytes}, 'little'), 'big')",
}
# shifts by a constant: {b} is the count already taken modulo the width
_CONST_COUNT_TEMPLATES: dict[Opcode, str] = {
    SHL: "({a} << {b}) & {m}",
    SHR: "{a} >> {b}",
    SAR: "((({a} ^ {sign}) - {sign}) >> {b}) & {m}",
}
_NARROW_EXT32S = "(({a} ^ 0x80000000) - 0x80000000) & {m}"  # the input is below 2**32
_WIDTH_VALUES = {
    bits: {"m": f"{MASK[bits]:#x}", "w": str(bits), "w1": str(bits - 1),
           "sign": f"{1 << (bits - 1):#x}", "nbytes": str(bits // 8)}
    for bits in MASK
}
# the ops without a template: control flow inside build(), the rest here
_IN_BUILD = frozenset({INSN_START, LABEL, BR, BRCOND})
_SPECIAL: dict[Opcode, Callable[[_Codegen, Op], None]] = {
    GOTO_PC: _Codegen.gen_exit, GOTO_PTR: _Codegen.gen_exit, ST: _Codegen.gen_st,
    LD: _Codegen.gen_ld, CALL: _Codegen.gen_call, SETCOND: _Codegen.gen_cond,
    MOVCOND: _Codegen.gen_cond, CMPXCHG: _Codegen.gen_cmpxchg, MB: _Codegen.gen_mb,
    LD_BYTES: _Codegen.gen_bytes, ST_BYTES: _Codegen.gen_bytes, VEC_OP: _Codegen.gen_vec_op,
    PC_REL: _Codegen.gen_pc_rel,
}


def _check_complete() -> None:
    """Every op of the table has exactly one way to be generated here."""
    handled = [*_TEMPLATES, *_SPECIAL, *_IN_BUILD]
    missing = set(OPCODES.values()) - set(handled)
    if missing or len(handled) != len(set(handled)) or not set(handled) <= set(OPCODES.values()):
        raise ImportError(f"python backend: ops not handled exactly once: {missing or handled}")


_check_complete()


def _narrow_locals(block: Block) -> set[int]:
    """Local temps whose every definition yields a value below 2**32."""
    narrow: set[int] = set()
    wide: set[int] = set()
    for op in block.ops:
        for d in op.outs:
            if d.is_global:
                continue
            if op.type == I32 or op.opc.narrow_result:
                narrow.add(d.index)
            else:
                wide.add(d.index)
    return narrow - wide


def _rotl(a: int, n: int, w: int) -> int:
    n &= w - 1
    return ((a << n) | (a >> (w - n))) & ((1 << w) - 1) if n else a


def _rotr(a: int, n: int, w: int) -> int:
    n &= w - 1
    return ((a >> n) | (a << (w - n))) & ((1 << w) - 1) if n else a


def _div(a: int, b: int, w: int) -> int:
    if b == 0:
        return (1 << w) - 1
    sign = 1 << (w - 1)
    sa, sb = (a ^ sign) - sign, (b ^ sign) - sign
    if sa == -sign and sb == -1:
        return a
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & ((1 << w) - 1)


def _rem(a: int, b: int, w: int) -> int:
    if b == 0:
        return a
    sign = 1 << (w - 1)
    sa, sb = (a ^ sign) - sign, (b ^ sign) - sign
    if sa == -sign and sb == -1:
        return 0
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & ((1 << w) - 1)


RUNTIME_NAMESPACE = {"ROTL": _rotl, "ROTR": _rotr, "DIV": _div, "REM": _rem,
                     "RUN_VEC_OP": run_vec_op}
