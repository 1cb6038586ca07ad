"""AArch64 registers as GDB numbers them, and the target description that says so.

GDB's aarch64 numbering: 0-30 x0-x30, 31 sp, 32 pc, 33 cpsr (32 bits), then the FPU
feature: 34-65 v0-v31 (128 bits), 66 fpsr, 67 fpcr (32 bits).  The ``g`` packet
carries the core feature (x0-x30, sp, pc as 8 bytes each, cpsr as 4).
"""

from __future__ import annotations

from pemu.gdbstub.target import TargetError
from pemu.target.aarch64 import cpu_state as a64

SP_REGNUM, PC_REGNUM, CPSR_REGNUM = 31, 32, 33
FIRST_V, FPSR_REGNUM, FPCR_REGNUM = 34, 66, 67
CORE_BYTES = 33 * 8 + 4


def _reg(name: str, regnum: int, bits: int, type_: str, group: str = "") -> str:
    extra = f' group="{group}"' if group else ""
    return f'  <reg name="{name}" bitsize="{bits}" type="{type_}" regnum="{regnum}"{extra}/>\n'


def core_xml() -> str:
    regs = "".join(_reg(f"x{i}", i, 64, "int") for i in range(31))
    regs += _reg("sp", SP_REGNUM, 64, "data_ptr") + _reg("pc", PC_REGNUM, 64, "code_ptr")
    regs += _reg("cpsr", CPSR_REGNUM, 32, "int")
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.gnu.gdb.aarch64.core">\n{regs}</feature>\n')


def fpu_xml() -> str:
    types = ('  <vector id="v2d" type="ieee_double" count="2"/>\n'
             '  <vector id="v2u" type="uint64" count="2"/>\n'
             '  <vector id="v4f" type="ieee_single" count="4"/>\n'
             '  <vector id="v4u" type="uint32" count="4"/>\n'
             '  <vector id="v16u" type="uint8" count="16"/>\n'
             '  <union id="vnd"><field name="f" type="v2d"/><field name="u" type="v2u"/>'
             '</union>\n'
             '  <union id="vns"><field name="f" type="v4f"/><field name="u" type="v4u"/>'
             '</union>\n'
             '  <union id="vnb"><field name="u" type="v16u"/></union>\n'
             '  <union id="aarch64v"><field name="d" type="vnd"/><field name="s" type="vns"/>'
             '<field name="b" type="vnb"/></union>\n')
    regs = "".join(_reg(f"v{i}", FIRST_V + i, 128, "aarch64v", "vector") for i in range(32))
    regs += _reg("fpsr", FPSR_REGNUM, 32, "int", "float")
    regs += _reg("fpcr", FPCR_REGNUM, 32, "int", "float")
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.gnu.gdb.aarch64.fpu">\n{types}{regs}</feature>\n')


def target_xml() -> dict[str, str]:
    return {
        "aarch64-core.xml": core_xml(), "aarch64-fpu.xml": fpu_xml(),
        "target.xml": ('<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
                       '<target xmlns:xi="http://www.w3.org/2001/XInclude">\n'
                       '  <architecture>aarch64</architecture>\n'
                       '  <xi:include href="aarch64-core.xml"/>\n'
                       '  <xi:include href="aarch64-fpu.xml"/>\n</target>\n'),
    }


class Aarch64Registers:
    """Register access on an ``Aarch64CPUState``."""

    core_bytes = CORE_BYTES

    @staticmethod
    def read_core(state) -> bytes:
        words = [state.x(i) for i in range(31)] + [state.sp, state.pc]
        return b"".join(w.to_bytes(8, "little") for w in words) + \
            state.nzcv.to_bytes(4, "little")

    @staticmethod
    def write_core(state, data: bytes) -> None:
        if len(data) < CORE_BYTES:
            raise TargetError("short register packet", 22)
        for i in range(31):
            state.set_x(i, int.from_bytes(data[i * 8:i * 8 + 8], "little"))
        state.sp = int.from_bytes(data[248:256], "little")
        state.pc = int.from_bytes(data[256:264], "little")
        state.nzcv = int.from_bytes(data[264:268], "little")

    @staticmethod
    def read(state, regno: int) -> bytes:
        if regno < 31:
            return state.x(regno).to_bytes(8, "little")
        if regno == SP_REGNUM:
            return state.sp.to_bytes(8, "little")
        if regno == PC_REGNUM:
            return state.pc.to_bytes(8, "little")
        if regno == CPSR_REGNUM:
            return state.nzcv.to_bytes(4, "little")
        if FIRST_V <= regno < FIRST_V + 32:
            return state.v(regno - FIRST_V).to_bytes(16, "little")
        if regno in (FPSR_REGNUM, FPCR_REGNUM):
            slot = a64.FPSR if regno == FPSR_REGNUM else a64.FPCR
            return (state.slots[slot] & 0xFFFF_FFFF).to_bytes(4, "little")
        raise TargetError(f"no register {regno}", 22)

    @staticmethod
    def write(state, regno: int, value: bytes) -> None:
        v = int.from_bytes(value, "little")
        if regno < 31:
            state.set_x(regno, v)
        elif regno == SP_REGNUM:
            state.sp = v
        elif regno == PC_REGNUM:
            state.pc = v
        elif regno == CPSR_REGNUM:
            state.nzcv = v
        elif FIRST_V <= regno < FIRST_V + 32:
            state.set_v(regno - FIRST_V, v)
        elif regno in (FPSR_REGNUM, FPCR_REGNUM):
            state.slots[a64.FPSR if regno == FPSR_REGNUM else a64.FPCR] = v & 0xFFFF_FFFF
        else:
            raise TargetError(f"no register {regno}", 22)
