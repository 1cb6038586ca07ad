"""RISC-V hart state: one native block of 64-bit slots.

Translated code reads and writes guest registers in this block: the python backend
through a ``memoryview`` cast to 64-bit words, the native backend at fixed offsets
from a host register.  Anything that translated code or its helpers touch on the
hot path lives here, at a fixed slot; rarely used machine state (most CSRs in system
mode) may live in Python objects and be reached through helpers.

Slot map (each slot is a little-endian uint64):
  0..31   x0..x31 (x0 is kept zero: frontends never write it)
  32..63  f0..f31 (NaN-boxed single-precision values)
  64      pc
  65      fflags (accrued exception flags, 5 bits)
  66      frm (dynamic rounding mode, 3 bits)
  67      reservation address of LR (all ones: none)
  68      reserved value loaded by LR (to make SC a compare-and-swap)
  69      exit_request: non-zero asks translated code to return at the next block entry
  70      priv: current privilege level (0 U, 1 S, 3 M)
  71      tb_flags: the block flags the native dispatcher matches (0 in user mode)
  72      host address of the native jump cache the dispatcher uses now
  73      host address of the native softmmu TLB in use (system mode)
  74      mstatus (system mode): translated code clears sstatus.SIE inline (irq save)
  75..78  sscratch, sepc, scause, stval (system mode): read and written inline
  79      native_flags: 1 while the native dispatcher looks blocks up by tb_flags (a
          status write done inline then only updates tb_flags); 0 under the python
          loop, which must be left to see new block flags
  80      irq_pending: nonzero when an interrupt may be pending in mip & mie (set by
          whatever may raise one, cleared where Python finds none): translated code
          sets sstatus.SIE inline only while it is zero
  81      host address of the vCPU's global native jump cache (system mode: blocks on
          global pages, which the dispatcher probes after a miss)
  82..84  the time CSR's clock (system mode): time = (host monotonic ns - [82]) //
          [83] + [84], kept current by the ACLINT (hw/intc/aclint.py); [83] = 0: no
          such formula (accel/tcg/guest_clock.py)
  85      time_allowed: bit p set when privilege p (V=0) reads time without a trap
          and [83] is nonzero: translated code reads time inline then (csr_inline.py)
  86..89  the V extension (vector_state.py): vl, vtype (its raw value; vill: bit 63),
          vstart, and the host address of the vector register file, so that
          translated code runs vsetvli and unit-stride moves inline (vector_inline.py)
  90..91  stvec, medeleg (system mode): read by the inline trap entry of ecall (trap_inline.py)
  92      inline_traps: which trap entries/exits translated code may do itself now
          (priv.INLINE_ECALL_U, INLINE_SRET), kept by PrivState from medeleg and the
          Python hooks a privilege change must run
  93..96  mscratch, mepc, mcause, mtval (system mode): read and written inline, like
          75..78 (OpenSBI's M-mode trap handler: every IPI, remote fence, SBI call)
  97      mhartid (system mode): read inline (OpenSBI reads it on every M-mode trap)
  98..    system-mode CSR shadows and scratch, defined by the system-mode code
"""

from __future__ import annotations

import ctypes

from pemu.accel.tcg.target import StateLayout
from pemu.target.riscv.vector_state import VectorState

N_SLOTS = 256

X0 = 0
F0 = 32
PC = 64
FFLAGS = 65
FRM = 66
RES_ADDR = 67
RES_VALUE = 68
EXIT_REQUEST = 69
PRIV = 70
TB_FLAGS = 71
NATIVE_JUMP_CACHE = 72
NATIVE_TLB = 73
MSTATUS = 74
SSCRATCH = 75
SEPC = 76
SCAUSE = 77
STVAL = 78
NATIVE_FLAGS = 79
IRQ_PENDING = 80
NATIVE_GLOBAL_JUMP_CACHE = 81
CLOCK_EPOCH = 82
CLOCK_NS_PER_TICK = 83
CLOCK_OFFSET = 84
TIME_ALLOWED = 85
VL = 86
VTYPE = 87
VSTART = 88
VREGS = 89
STVEC = 90
MEDELEG = 91
INLINE_TRAPS = 92
MSCRATCH = 93
MEPC = 94
MCAUSE = 95
MTVAL = 96
MHARTID = 97
FIRST_FREE_SLOT = 98

NO_RESERVATION = 0xFFFF_FFFF_FFFF_FFFF
MSTATUS_VS_DIRTY = 3 << 9

# what the engine and the backends address in this block
LAYOUT = StateLayout(n_slots=N_SLOTS, pc=PC, exit_request=EXIT_REQUEST, tb_flags=TB_FLAGS,
                     native_jump_cache=NATIVE_JUMP_CACHE, native_tlb=NATIVE_TLB,
                     native_global_jump_cache=NATIVE_GLOBAL_JUMP_CACHE)

ABI_NAMES = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
    "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
    "t3", "t4", "t5", "t6",
]
FP_ABI_NAMES = [
    "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1",
    "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7",
    "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
]


def ir_globals() -> dict[str, int]:
    """The IR globals a RISC-V frontend uses: name -> state slot."""
    g = {f"x{i}": X0 + i for i in range(1, 32)}
    g.update({f"f{i}": F0 + i for i in range(32)})
    g.update({"pc": PC, "fflags": FFLAGS, "frm": FRM, "res_addr": RES_ADDR,
              "res_value": RES_VALUE, "mstatus": MSTATUS, "sscratch": SSCRATCH,
              "sepc": SEPC, "scause": SCAUSE, "stval": STVAL, "tb_flags": TB_FLAGS,
              "exit_request": EXIT_REQUEST, "native_flags": NATIVE_FLAGS,
              "irq_pending": IRQ_PENDING, "clock_epoch": CLOCK_EPOCH,
              "clock_ns_per_tick": CLOCK_NS_PER_TICK, "clock_offset": CLOCK_OFFSET,
              "time_allowed": TIME_ALLOWED, "vl": VL, "vtype": VTYPE, "vstart": VSTART,
              "vregs": VREGS, "priv": PRIV, "stvec": STVEC,
              "medeleg": MEDELEG, "inline_traps": INLINE_TRAPS, "mscratch": MSCRATCH,
              "mepc": MEPC, "mcause": MCAUSE, "mtval": MTVAL, "mhartid": MHARTID})
    return g


class RiscvCPUState:
    """The native state block plus Python-side views of it."""

    def __init__(self, vlenb: int = 0, elen: int = 64) -> None:
        self.block = (ctypes.c_uint64 * N_SLOTS)()
        self.address = ctypes.addressof(self.block)
        # 64-bit word view: the python backend's fast access path
        self.slots = memoryview(self.block).cast("B").cast("Q")
        self.slots[RES_ADDR] = NO_RESERVATION
        # No mstatus in user mode: VS reads as Dirty there, so translated vector code
        # needs no mode of its own (system mode's PrivState writes the real value).
        self.slots[MSTATUS] = MSTATUS_VS_DIRTY
        # the V registers and CSRs: vl, vtype and vstart in slots VL..VSTART, the
        # register file in Python memory whose address slot VREGS holds
        self.vector = VectorState(vlenb, elen, self.slots, VL)

    # -- convenience accessors for the runtime and tests -----------------------------
    @property
    def pc(self) -> int:
        return self.slots[PC]

    @pc.setter
    def pc(self, value: int) -> None:
        self.slots[PC] = value & 0xFFFF_FFFF_FFFF_FFFF

    def x(self, i: int) -> int:
        return self.slots[X0 + i] if i else 0

    def set_x(self, i: int, value: int) -> None:
        if i:
            self.slots[X0 + i] = value & 0xFFFF_FFFF_FFFF_FFFF

    def f(self, i: int) -> int:
        return self.slots[F0 + i]

    def set_f(self, i: int, value: int) -> None:
        self.slots[F0 + i] = value & 0xFFFF_FFFF_FFFF_FFFF

    def copy_from(self, other: RiscvCPUState) -> None:
        """Clone registers (for a new guest thread or fork)."""
        ctypes.memmove(self.address, other.address, N_SLOTS * 8)
        self.vector.copy_from(other.vector)  # also points VREGS back at our own file


def dump_registers(state: RiscvCPUState) -> str:
    """``-d cpu``: the pc and the integer registers, four to a row."""
    regs = [f" {ABI_NAMES[i]:>4} {state.x(i):016x}" for i in range(32)]
    rows = ["".join(regs[i : i + 4]) for i in range(0, 32, 4)]
    return f" pc       {state.pc:016x}\n" + "\n".join(rows)
