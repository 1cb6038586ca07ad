"""riscv64 Linux user mode: the ``LinuxArch`` table (see arch.py)."""

from __future__ import annotations

from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv import exceptions as exc
from pemu.target.riscv.isa import MODELS, parse_cpu
from pemu.target.riscv.pointer_masking import FLAG_PM_SHIFT
from pemu.target.riscv.pointer_masking import code as pm_code
from pemu.target.riscv.tcg_target import riscv64_target

from . import signals as sg
from .arch import LinuxArch, TrapAction
from .initial_stack import HWCAP_RV64IMAFDC

_TRAP_SIGNALS = {
    exc.ILLEGAL_INSN: (sg.SIGILL, sg.ILL_ILLOPC),
    exc.BREAKPOINT: (sg.SIGTRAP, sg.TRAP_BRKPT),
    exc.INSN_ADDR_MISALIGNED: (sg.SIGBUS, sg.BUS_ADRALN),
    exc.LOAD_ADDR_MISALIGNED: (sg.SIGBUS, sg.BUS_ADRALN),
    exc.STORE_ADDR_MISALIGNED: (sg.SIGBUS, sg.BUS_ADRALN),
}


def _classify(trap: exc.RiscvTrap, pc: int) -> TrapAction:
    if trap.cause == exc.ECALL_U:
        return TrapAction(syscall=True)
    signo, code = _TRAP_SIGNALS.get(trap.cause, (sg.SIGSEGV, sg.SEGV_MAPERR))
    return TrapAction(signo=signo, code=code, addr=trap.tval or pc)


def _reset_thread(state) -> None:
    state.slots[rv.RES_ADDR] = rv.NO_RESERVATION
    state.slots[rv.EXIT_REQUEST] = 0


HWCAP_V = 1 << (ord("V") - ord("A"))


def _hwcap(cpu: str | None) -> int:
    """The letters the model has: IMAFDC, and V with the vector extension (glibc and
    the programs' own ifuncs pick their vector routines by it)."""
    return HWCAP_RV64IMAFDC | (HWCAP_V if parse_cpu(cpu).has("v") else 0)


def _pointer_masking(cpu: str | None) -> dict[int, int]:
    """Supm: PMLEN -> block flags; user addresses are virtual (sign-extended) ones."""
    if not parse_cpu(cpu).has("supm"):
        return {}
    return {0: 0, 7: pm_code(2, True) << FLAG_PM_SHIFT, 16: pm_code(3, True) << FLAG_PM_SHIFT}


def _cpu_help() -> str:
    return "Available CPUs:\n" + "".join(
        f"  {name:<8} {parse_cpu(name).isa_string}\n" for name in MODELS)


RISCV64_LINUX = LinuxArch(
    name="riscv64", elf_machine=243, elf_machine_name="RISC-V", hwcap=HWCAP_RV64IMAFDC,
    make_target=lambda cpu: riscv64_target(parse_cpu(cpu)), cpu_help=_cpu_help,
    trap_class=exc.RiscvTrap, classify_trap=_classify,
    syscall_regs=(17, (10, 11, 12, 13, 14, 15), 10),
    get_sp=lambda state: state.x(2), set_sp=lambda state, v: state.set_x(2, v),
    set_tls=lambda state, v: state.set_x(4, v), reset_thread=_reset_thread,
    pointer_masking=_pointer_masking,
    setup_frame=sg.setup_frame, restore_frame=sg.restore_frame,
    trampoline_code=sg.TRAMPOLINE_CODE, sigaction_restorer=False, gdb_stub=True,
    hwcap_for_cpu=_hwcap,
)
