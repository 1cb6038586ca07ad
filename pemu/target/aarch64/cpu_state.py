"""AArch64 CPU state (EL0): one native block of 64-bit slots.

Slot map (each slot a little-endian uint64):
  0..30    X0..X30
  31       SP (register number 31 is SP or XZR by instruction; XZR is never stored)
  32       PC
  33..36   NZCV as four 0/1 words (N, Z, C, V): each flag is one setcond away from
           the result that sets it, and conditions read them without unpacking
  37       FPCR   38  FPSR   39  TPIDR_EL0
  40       exclusive monitor address (all ones: open)  41  the value LDXR loaded
  46       the second value LDXP loaded
  47       SP_EL0 while SP_EL1 is in use (system mode)
  48       PSTATE.DAIF (bits 9:6, system mode)  49  the IRQ/FIQ inputs as DAIF's I/F bits
  50       TPIDR_EL1   51  non-zero: IC maintenance left code to check at the next ISB/ERET
  52       host address of the vCPU's global native jump cache (system mode: blocks on
           pages mapped global, nG = 0, which the dispatcher probes after a miss)
  53..56   copies of registers MRS reads inline (system mode): DCZID_EL0, CTR_EL0,
           ID_AA64ISAR0_EL1, TCR_EL1 (``SYSREG_MIRRORS``)
  42       exit_request  43 tb_flags  44 native jump cache  45 native TLB
  64..127  V0..V31, two words each (low half first)
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.target import StateLayout

N_SLOTS = 256
X0 = 0
SP = 31
PC = 32
NF, ZF, CF, VF = 33, 34, 35, 36
FPCR, FPSR, TPIDR_EL0 = 37, 38, 39
EXCL_ADDR, EXCL_VALUE = 40, 41
EXIT_REQUEST, TB_FLAGS, NATIVE_JUMP_CACHE, NATIVE_TLB = 42, 43, 44, 45
EXCL_VALUE_HI = 46
SP_EL0 = 47
# system mode: what translated code reads and writes inline (insn_el1.py)
DAIF, IRQ_LINES, TPIDR_EL1, ICACHE_STALE = 48, 49, 50, 51
NATIVE_GLOBAL_JUMP_CACHE = 52
# register name -> the slot holding a copy of it that MRS reads inline (system mode;
# the CPU refreshes the copies whenever one may change: system_cpu.py)
SYSREG_MIRRORS = {"DCZID_EL0": 53, "CTR_EL0": 54, "ID_AA64ISAR0_EL1": 55, "TCR_EL1": 56}
# the system counter's start in host monotonic ns (generic_timer.Counter.start_ns):
# translated code computes CNTVCT/CNTPCT from it (insn_el1.mrs, accel/tcg/guest_clock.py)
COUNTER_START_NS = 57
V0 = 64

# block flags in system mode (user mode translates with flags 0): the exception level
# (also the MMU index of data accesses and fetches) and that the block runs in system
# mode, where MRS/MSR, SYS, ERET, HVC/SMC and WFI are the CPU's (insn_el1.py)
FLAG_EL_MASK = 3
FLAG_SPSEL_SHIFT = 2  # PSTATE.SPSel: at EL1 with SPSel = 1, SP_EL0 is the slot SP_EL0
FLAG_SPSEL = 1 << FLAG_SPSEL_SHIFT
FLAG_SYSTEM = 0x10

NO_EXCLUSIVE = 0xFFFF_FFFF_FFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

LAYOUT = StateLayout(n_slots=N_SLOTS, pc=PC, exit_request=EXIT_REQUEST, tb_flags=TB_FLAGS,
                     native_jump_cache=NATIVE_JUMP_CACHE, native_tlb=NATIVE_TLB,
                     native_global_jump_cache=NATIVE_GLOBAL_JUMP_CACHE, jc_pc_shift=2)


def ir_globals() -> dict[str, int]:
    """The IR globals the A64 frontend uses: name -> state slot."""
    g = {f"x{i}": X0 + i for i in range(31)}
    g.update({f"v{i}l": V0 + 2 * i for i in range(32)})
    g.update({f"v{i}h": V0 + 2 * i + 1 for i in range(32)})
    g.update({"sp": SP, "pc": PC, "nf": NF, "zf": ZF, "cf": CF, "vf": VF, "fpcr": FPCR,
              "fpsr": FPSR, "tpidr_el0": TPIDR_EL0, "excl_addr": EXCL_ADDR,
              "excl_value": EXCL_VALUE, "excl_value_hi": EXCL_VALUE_HI, "sp_el0": SP_EL0,
              "daif": DAIF, "irq_lines": IRQ_LINES, "tpidr_el1": TPIDR_EL1,
              "icache_stale": ICACHE_STALE, "exit_request": EXIT_REQUEST,
              "counter_start_ns": COUNTER_START_NS})
    g.update({name.lower(): slot for name, slot in SYSREG_MIRRORS.items()})
    return g


class Aarch64CPUState:
    """The native state block plus Python-side views of it."""

    def __init__(self) -> None:
        self.block = (ctypes.c_uint64 * N_SLOTS)()
        self.address = ctypes.addressof(self.block)
        self.slots = memoryview(self.block).cast("B").cast("Q")
        self.slots[EXCL_ADDR] = NO_EXCLUSIVE

    @property
    def pc(self) -> int:
        return self.slots[PC]

    @pc.setter
    def pc(self, value: int) -> None:
        self.slots[PC] = value & MASK64

    @property
    def sp(self) -> int:
        return self.slots[SP]

    @sp.setter
    def sp(self, value: int) -> None:
        self.slots[SP] = value & MASK64

    def x(self, i: int) -> int:
        """X0..X30; 31 reads as zero (XZR) - SP has its own accessor."""
        return self.slots[X0 + i] if i < 31 else 0

    def set_x(self, i: int, value: int) -> None:
        if i < 31:
            self.slots[X0 + i] = value & MASK64

    @property
    def nzcv(self) -> int:
        s = self.slots
        return s[NF] << 31 | s[ZF] << 30 | s[CF] << 29 | s[VF] << 28

    @nzcv.setter
    def nzcv(self, value: int) -> None:
        for slot, bit in ((NF, 31), (ZF, 30), (CF, 29), (VF, 28)):
            self.slots[slot] = value >> bit & 1

    def v(self, i: int) -> int:
        """V register i as a 128-bit int."""
        return self.slots[V0 + 2 * i] | self.slots[V0 + 2 * i + 1] << 64

    def set_v(self, i: int, value: int) -> None:
        self.slots[V0 + 2 * i] = value & MASK64
        self.slots[V0 + 2 * i + 1] = value >> 64 & MASK64

    def copy_from(self, other: Aarch64CPUState) -> None:
        ctypes.memmove(self.address, other.address, N_SLOTS * 8)


def dump_registers(state: Aarch64CPUState) -> str:
    """``-d cpu``: pc, X0..X30, SP and NZCV, four to a row."""
    regs = [f" X{i:02d}={state.x(i):016x}" for i in range(31)] + [f"  SP={state.sp:016x}"]
    rows = ["".join(regs[i:i + 4]) for i in range(0, 32, 4)]
    n = state.nzcv
    flags = "".join(c if n >> b & 1 else "-" for c, b in zip("NZCV", (31, 30, 29, 28), strict=True))
    return f" PC={state.pc:016x}\n" + "\n".join(rows) + f"\nPSTATE={n:08x} {flags}"
