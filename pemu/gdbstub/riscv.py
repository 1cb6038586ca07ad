"""RISC-V 64 registers as GDB numbers them, and the target description that says so.

GDB's riscv numbering: 0-31 x0-x31, 32 pc, 33-64 f0-f31, then CSRs at 65 + the CSR
number (so fflags=66, frm=67, fcsr=68, sstatus=65+0x100).  Our XML names every
register with an explicit ``regnum`` so GDB and the stub agree by construction.
The ``g`` packet carries the core feature only (x0-x31, pc); GDB reads the rest with
``p`` as needed.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from pemu.gdbstub.target import TargetError
from pemu.target.riscv import cpu_state as rv

PC_REGNUM = 32
FIRST_FPR = 33
FIRST_CSR = 65
FFLAGS = FIRST_CSR + 0x001
FRM = FIRST_CSR + 0x002
FCSR = FIRST_CSR + 0x003
CORE_REGS = 33

X_NAMES = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2",
           "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
           "s11", "t3", "t4", "t5", "t6"]
X_TYPES = {1: "code_ptr", 2: "data_ptr", 3: "data_ptr", 4: "data_ptr", 8: "data_ptr"}


def _reg(name: str, regnum: int, bits: int = 64, type_: str = "int", group: str = "") -> str:
    extra = f' group="{group}"' if group else ""
    return (f'  <reg name="{escape(name)}" bitsize="{bits}" type="{type_}" '
            f'regnum="{regnum}"{extra}/>\n')


def core_xml() -> str:
    regs = "".join(_reg(n, i, type_=X_TYPES.get(i, "int")) for i, n in enumerate(X_NAMES))
    regs += _reg("pc", PC_REGNUM, type_="code_ptr")
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.gnu.gdb.riscv.cpu">\n{regs}</feature>\n')


def fpu_xml() -> str:
    union = ('  <union id="riscv_double">\n    <field name="float" type="ieee_single"/>\n'
             '    <field name="double" type="ieee_double"/>\n  </union>\n')
    regs = "".join(_reg(f"f{i}", FIRST_FPR + i, type_="riscv_double")
                   for i in range(32))
    regs += _reg("fflags", FFLAGS, 32, group="float")
    regs += _reg("frm", FRM, 32, group="float")
    regs += _reg("fcsr", FCSR, 32, group="float")
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.gnu.gdb.riscv.fpu">\n{union}{regs}</feature>\n')


def csr_xml(csrs: dict[str, int]) -> str:
    """``csrs``: name -> CSR number (the machine's implemented set)."""
    regs = "".join(_reg(name, FIRST_CSR + num, group="csr")
                   for name, num in sorted(csrs.items(), key=lambda kv: kv[1]))
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.gnu.gdb.riscv.csr">\n{regs}</feature>\n')


def target_xml(csrs: dict[str, int] | None) -> dict[str, str]:
    files = {"riscv-64bit-cpu.xml": core_xml(), "riscv-64bit-fpu.xml": fpu_xml()}
    includes = ['  <xi:include href="riscv-64bit-cpu.xml"/>\n',
                '  <xi:include href="riscv-64bit-fpu.xml"/>\n']
    if csrs:
        files["riscv-64bit-csr.xml"] = csr_xml(csrs)
        includes.append('  <xi:include href="riscv-64bit-csr.xml"/>\n')
    files["target.xml"] = (
        '<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
        '<target xmlns:xi="http://www.w3.org/2001/XInclude">\n'
        '  <architecture>riscv:rv64</architecture>\n' + "".join(includes) + '</target>\n')
    return files


class RiscvRegisters:
    """Register access on a ``RiscvCPUState``; CSRs beyond the FPU ones via callbacks."""

    def __init__(self, csr_read=None, csr_write=None) -> None:
        self.csr_read = csr_read  # (state, csr_number) -> int, or None
        self.csr_write = csr_write

    @staticmethod
    def read_core(state) -> bytes:
        out = bytearray()
        for i in range(32):
            out += state.x(i).to_bytes(8, "little")
        out += state.pc.to_bytes(8, "little")
        return bytes(out)

    @staticmethod
    def write_core(state, data: bytes) -> None:
        if len(data) < CORE_REGS * 8:
            raise TargetError("short register packet", 22)
        for i in range(1, 32):
            state.set_x(i, int.from_bytes(data[i * 8:i * 8 + 8], "little"))
        state.pc = int.from_bytes(data[256:264], "little")

    def read(self, state, regno: int) -> bytes:
        s = state.slots
        if regno < 32:
            return state.x(regno).to_bytes(8, "little")
        if regno == PC_REGNUM:
            return state.pc.to_bytes(8, "little")
        if FIRST_FPR <= regno < FIRST_FPR + 32:
            return state.f(regno - FIRST_FPR).to_bytes(8, "little")
        if regno == FFLAGS:
            return (s[rv.FFLAGS] & 0x1F).to_bytes(4, "little")
        if regno == FRM:
            return (s[rv.FRM] & 0x7).to_bytes(4, "little")
        if regno == FCSR:
            return ((s[rv.FRM] & 7) << 5 | (s[rv.FFLAGS] & 0x1F)).to_bytes(4, "little")
        if regno > FCSR and self.csr_read is not None:
            value = self.csr_read(state, regno - FIRST_CSR)
            if value is not None:
                return (value & (2**64 - 1)).to_bytes(8, "little")
        raise TargetError(f"no register {regno}", 22)

    def write(self, state, regno: int, value: bytes) -> None:
        v = int.from_bytes(value, "little")
        s = state.slots
        if regno < 32:
            state.set_x(regno, v)
        elif regno == PC_REGNUM:
            state.pc = v
        elif FIRST_FPR <= regno < FIRST_FPR + 32:
            state.set_f(regno - FIRST_FPR, v)
        elif regno == FFLAGS:
            s[rv.FFLAGS] = v & 0x1F
        elif regno == FRM:
            s[rv.FRM] = v & 0x7
        elif regno == FCSR:
            s[rv.FFLAGS] = v & 0x1F
            s[rv.FRM] = (v >> 5) & 0x7
        elif regno > FCSR and self.csr_write is not None:
            if not self.csr_write(state, regno - FIRST_CSR, v):
                raise TargetError(f"register {regno} is read-only", 22)
        else:
            raise TargetError(f"no register {regno}", 22)


def memory_access(insn: int, state) -> tuple[int, int, bool, bool] | None:
    """The data access an instruction is about to make: (addr, size, reads, writes).

    Used to emulate watchpoints while single-stepping: loads, stores, FP loads/stores,
    atomics and the compressed forms.  None for instructions that touch no memory.
    """
    if insn & 3 != 3:
        return _compressed_access(insn & 0xFFFF, state)
    opcode = insn & 0x7F
    rs1 = (insn >> 15) & 31
    funct3 = (insn >> 12) & 7
    base = state.x(rs1)
    if opcode in (0x03, 0x07):  # LOAD, LOAD-FP
        imm = _sext(insn >> 20, 12)
        size = 1 << (funct3 & 3)
        return ((base + imm) & (2**64 - 1), size, True, False)
    if opcode in (0x23, 0x27):  # STORE, STORE-FP
        imm = _sext(((insn >> 25) << 5) | ((insn >> 7) & 31), 12)
        size = 1 << (funct3 & 3)
        return ((base + imm) & (2**64 - 1), size, False, True)
    if opcode == 0x2F:  # AMO, LR, SC
        size = 4 if funct3 == 2 else 8
        funct5 = insn >> 27
        if funct5 == 0x02:  # LR
            return (base, size, True, False)
        if funct5 == 0x03:  # SC
            return (base, size, False, True)
        return (base, size, True, True)
    return None


def _compressed_access(insn: int, state) -> tuple[int, int, bool, bool] | None:
    op = insn & 3
    funct3 = insn >> 13
    if op == 0:
        rs1 = 8 + ((insn >> 7) & 7)
        base = state.x(rs1)
        if funct3 in (2, 6):  # c.lw / c.sw
            off = ((insn >> 6) & 1) << 2 | ((insn >> 10) & 7) << 3 | ((insn >> 5) & 1) << 6
            return (base + off, 4, funct3 == 2, funct3 == 6)
        if funct3 in (1, 3, 5, 7):  # c.fld c.ld c.fsd c.sd
            off = ((insn >> 10) & 7) << 3 | ((insn >> 5) & 3) << 6
            return (base + off, 8, funct3 in (1, 3), funct3 in (5, 7))
        return None
    if op == 2:
        sp = state.x(2)
        if funct3 == 2:  # c.lwsp
            off = ((insn >> 4) & 7) << 2 | ((insn >> 12) & 1) << 5 | ((insn >> 2) & 3) << 6
            return (sp + off, 4, True, False)
        if funct3 in (1, 3):  # c.fldsp c.ldsp
            off = ((insn >> 5) & 3) << 3 | ((insn >> 12) & 1) << 5 | ((insn >> 2) & 7) << 6
            return (sp + off, 8, True, False)
        if funct3 == 6:  # c.swsp
            off = ((insn >> 9) & 15) << 2 | ((insn >> 7) & 3) << 6
            return (sp + off, 4, False, True)
        if funct3 in (5, 7):  # c.fsdsp c.sdsp
            off = ((insn >> 10) & 7) << 3 | ((insn >> 7) & 7) << 6
            return (sp + off, 8, False, True)
    return None


def _sext(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
