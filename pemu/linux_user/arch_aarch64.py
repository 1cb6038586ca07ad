"""arm64 Linux user mode: the ``LinuxArch`` table (see arch.py) and the arm64 signal
frame.

Frame layout (arch/arm64/include/uapi/asm/{ucontext,sigcontext}.h, kernel/signal.c):
  rt_sigframe = siginfo (128 bytes), then a ucontext:
    uc_flags @0, uc_link @8, uc_stack @16 (24 bytes), uc_sigmask @40 (8 bytes, padded
    to glibc's 128), uc_mcontext @176 (16-aligned): the sigcontext
  sigcontext  = fault_address @0, regs[31] @8, sp @256, pc @264, pstate @272,
                __reserved[4096] @288: records {magic, size}; pemu writes the
                fpsimd_context (magic 0x46508001, 528 bytes: fpsr, fpcr, V0-V31) and the
                terminating null record
  then a frame record (x29, x30), which x29 points at in the handler.
The handler returns through sa_restorer when SA_RESTORER is set (glibc sets it), else
through pemu's trampoline (``mov x8, #139; svc #0``) as through the kernel's vDSO.
"""

from __future__ import annotations

import os
import struct

from pemu.target.aarch64 import cpu_state as a64
from pemu.target.aarch64.exceptions import ALIGNMENT, BRK, SVC, UNDEFINED, Aarch64Trap
from pemu.target.aarch64.tcg_target import AARCH64

from . import signals as sg
from .arch import LinuxArch, TrapAction

# AT_HWCAP: what the model has (FP, ASIMD, CRC32, LSE atomics, CPUID: MRS of the ID
# registers); AES/SHA/PMULL, PAuth and the rest are not in the frontend yet
HWCAP_FP, HWCAP_ASIMD, HWCAP_CRC32, HWCAP_ATOMICS = 1 << 0, 1 << 1, 1 << 7, 1 << 8
HWCAP_CPUID = 1 << 11
HWCAP = HWCAP_FP | HWCAP_ASIMD | HWCAP_CRC32 | HWCAP_ATOMICS | HWCAP_CPUID
SA_RESTORER = 0x04000000
# arm64's O_DIRECTORY, O_NOFOLLOW, O_DIRECT, O_LARGEFILE -> the host's (asm-generic)
OPEN_FLAG_BITS = ((0x4000, 0x10000), (0x8000, 0x20000), (0x10000, 0x4000), (0x20000, 0x8000))

UC_STACK, UC_SIGMASK, UC_MCONTEXT = 16, 40, 176
SC_REGS, SC_SP, SC_PC, SC_PSTATE, SC_RESERVED = 8, 256, 264, 272, 288
FPSIMD_MAGIC, FPSIMD_SIZE = 0x46508001, 528
UCONTEXT_SIZE = UC_MCONTEXT + SC_RESERVED + 4096
FRAME_SIZE = sg.SIGINFO_SIZE + UCONTEXT_SIZE + 16  # + the frame record
TRAMPOLINE_CODE = struct.pack("<II", 0xD2801168, 0xD4000001)  # mov x8, #139; svc #0

_TRAP_SIGNALS = {UNDEFINED: (sg.SIGILL, sg.ILL_ILLOPC), BRK: (sg.SIGTRAP, sg.TRAP_BRKPT),
                 ALIGNMENT: (sg.SIGBUS, sg.BUS_ADRALN)}


def _classify(trap: Aarch64Trap, pc: int) -> TrapAction:
    if trap.kind == SVC:
        return TrapAction(syscall=True)
    signo, code = _TRAP_SIGNALS.get(trap.kind, (sg.SIGSEGV, sg.SEGV_MAPERR))
    return TrapAction(signo=signo, code=code, addr=trap.addr or pc)


def _reset_thread(state: a64.Aarch64CPUState) -> None:
    state.slots[a64.EXCL_ADDR] = a64.NO_EXCLUSIVE
    state.slots[a64.EXIT_REQUEST] = 0


def _set_sp(state: a64.Aarch64CPUState, value: int) -> None:
    state.sp = value


def _set_tls(state: a64.Aarch64CPUState, value: int) -> None:
    state.slots[a64.TPIDR_EL0] = value & a64.MASK64


def setup_frame(thread, info: sg.SigInfo, action: sg.SigAction, old_mask: int,
                trampoline: int) -> None:
    """Push an arm64 rt_sigframe and point the thread at the handler."""
    state: a64.Aarch64CPUState = thread.state
    sigs = thread.signals
    sp = state.sp
    if action.flags & sg.SA_ONSTACK and not sigs.altstack[1] & sg.SS_DISABLE \
            and not sigs.on_altstack(sp):
        sp = sigs.altstack[0] + sigs.altstack[2]
    frame = (sp - FRAME_SIZE) & ~0xF
    ss_sp, ss_flags, ss_size = sigs.altstack
    if sigs.on_altstack(state.sp):
        ss_flags |= sg.SS_ONSTACK
    uc = bytearray(UCONTEXT_SIZE + 16)
    struct.pack_into("<QiIQ", uc, UC_STACK, ss_sp, ss_flags, 0, ss_size)
    struct.pack_into("<Q", uc, UC_SIGMASK, old_mask)
    mc = UC_MCONTEXT
    struct.pack_into("<Q31QQQQ", uc, mc, info.addr, *(state.x(i) for i in range(31)),
                     state.sp, state.pc, state.nzcv)
    rec = mc + SC_RESERVED
    struct.pack_into("<IIII", uc, rec, FPSIMD_MAGIC, FPSIMD_SIZE,
                     state.slots[a64.FPSR], state.slots[a64.FPCR])
    struct.pack_into("<64Q", uc, rec + 16,
                     *(state.slots[a64.V0 + i] for i in range(64)))
    struct.pack_into("<QQ", uc, UCONTEXT_SIZE, state.x(29), state.x(30))  # frame record
    thread.process.mem.write(frame, info.pack() + bytes(uc))
    restorer = action.restorer if action.flags & SA_RESTORER else trampoline
    state.set_x(0, info.signo)
    state.set_x(1, frame)
    state.set_x(2, frame + sg.SIGINFO_SIZE)
    state.set_x(29, frame + sg.SIGINFO_SIZE + UCONTEXT_SIZE)
    state.set_x(30, restorer)
    state.sp = frame
    state.pc = action.handler


def restore_frame(thread) -> None:
    """rt_sigreturn: registers, NZCV, FP/SIMD state, mask and altstack from the frame."""
    state: a64.Aarch64CPUState = thread.state
    uc = thread.process.mem.read(state.sp + sg.SIGINFO_SIZE, UCONTEXT_SIZE)
    mc = UC_MCONTEXT
    values = struct.unpack_from("<31QQQQ", uc, mc + SC_REGS)
    for i in range(31):
        state.set_x(i, values[i])
    state.sp, state.pc, state.nzcv = values[31], values[32], values[33]
    rec = mc + SC_RESERVED
    magic, _size, fpsr, fpcr = struct.unpack_from("<IIII", uc, rec)
    if magic == FPSIMD_MAGIC:
        state.slots[a64.FPSR], state.slots[a64.FPCR] = fpsr, fpcr
        for i, word in enumerate(struct.unpack_from("<64Q", uc, rec + 16)):
            state.slots[a64.V0 + i] = word
    (mask,) = struct.unpack_from("<Q", uc, UC_SIGMASK)
    thread.signals.mask = mask & ~sg.UNBLOCKABLE
    ss_sp, ss_flags, _pad, ss_size = struct.unpack_from("<QiIQ", uc, UC_STACK)
    if not thread.signals.on_altstack(state.sp):
        thread.signals.altstack = (ss_sp, ss_flags & sg.SS_DISABLE, ss_size)


def cpuinfo() -> str:
    """/proc/cpuinfo as the arm64 kernel writes it: one entry per host CPU, the
    features AT_HWCAP announces, a Cortex-A72 identity (MIDR_EL1)."""
    entry = ("processor\t: {n}\nBogoMIPS\t: 100.00\n"
             "Features\t: fp asimd crc32 atomics cpuid\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
             "CPU revision\t: 3\n")
    return "\n".join(entry.format(n=n) for n in range(os.cpu_count() or 1)) + "\n"


def _make_target(cpu: str | None):
    if cpu not in (None, "", "max", "cortex-a57", "cortex-a72", "cortex-a53"):
        raise ValueError(f"unable to find CPU model '{cpu}'")
    return AARCH64


AARCH64_LINUX = LinuxArch(
    name="aarch64", elf_machine=183, elf_machine_name="AArch64", hwcap=HWCAP,
    make_target=_make_target,
    cpu_help=lambda: "Available CPUs:\n  cortex-a53\n  cortex-a57\n  cortex-a72\n  max\n",
    trap_class=Aarch64Trap, classify_trap=_classify,
    syscall_regs=(8, (0, 1, 2, 3, 4, 5), 0),
    get_sp=lambda state: state.sp, set_sp=_set_sp, set_tls=_set_tls,
    reset_thread=_reset_thread, setup_frame=setup_frame, restore_frame=restore_frame,
    trampoline_code=TRAMPOLINE_CODE, sigaction_restorer=True,
    open_flag_bits=OPEN_FLAG_BITS, gdb_stub=True, cpuinfo=cpuinfo,
)
