"""What Linux user mode needs to know about a guest architecture, in one table.

Everything else in pemu/linux_user (loader, syscalls, signals' bookkeeping, threads)
is shared: both riscv64 and arm64 number their system calls with the asm-generic
table (syscall_numbers.py) and share its structure layouts.  A second architecture is
one ``LinuxArch`` here (registers of the syscall ABI, ELF machine, AT_HWCAP/platform,
the trap -> signal mapping, the signal frame) plus its TCG target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pemu.accel.tcg.target import TCGTarget


@dataclass(frozen=True)
class TrapAction:
    """What a guest trap means: a system call, or a signal (signo, si_code, addr)."""

    syscall: bool = False
    signo: int = 0
    code: int = 0
    addr: int = 0


@dataclass(frozen=True)
class LinuxArch:
    name: str  # uname -m, AT_PLATFORM, pemu-<name>
    elf_machine: int  # e_machine
    elf_machine_name: str  # for "ELF file is for X, not Y"
    hwcap: int  # AT_HWCAP
    make_target: Callable[[str | None], TCGTarget]  # -cpu spec -> the TCG target
    cpu_help: Callable[[], str]  # -cpu help
    trap_class: type[BaseException]
    classify_trap: Callable[[BaseException, int], TrapAction]  # (trap, pc) -> action
    syscall_regs: tuple[int, tuple[int, ...], int]  # (number, arguments, return value)
    get_sp: Callable[[object], int]
    set_sp: Callable[[object, int], None]
    set_tls: Callable[[object, int], None]
    reset_thread: Callable[[object], None]  # a new thread's monitor/exit request
    setup_frame: Callable[..., None]  # signals.setup_frame's signature
    restore_frame: Callable[[object], None]
    trampoline_code: bytes  # rt_sigreturn, mapped at loader.SIGTRAMP_ADDR
    sigaction_restorer: bool  # the kernel's struct sigaction has sa_restorer
    # open(2) flag bits whose values differ from the host's (x86-64, asm-generic):
    # (guest bit, host bit) pairs; arm64 swaps O_DIRECTORY/O_NOFOLLOW/O_DIRECT/O_LARGEFILE
    open_flag_bits: tuple[tuple[int, int], ...] = ()
    gdb_stub: bool = False  # pemu/gdbstub describes this architecture's registers (-g)
    cpuinfo: Callable[[], str] | None = None  # /proc/cpuinfo (None: proc_views' riscv64)
    # AT_HWCAP for a -cpu spec, where it depends on the model (None: ``hwcap``)
    hwcap_for_cpu: Callable[[str | None], int] | None = None
    # the tagged address ABI (tagged_addr.py): for a -cpu spec, the supported PMLENs
    # (0 included) -> the block flags a thread runs with to mask that many bits
    # ({}: the CPU has no pointer masking; None: the architecture has none)
    pointer_masking: Callable[[str | None], dict[int, int]] | None = None

    def open_flags_to_host(self, flags: int) -> int:
        return _swap_bits(flags, self.open_flag_bits)

    def open_flags_from_host(self, flags: int) -> int:
        return _swap_bits(flags, tuple((h, g) for g, h in self.open_flag_bits))


def _swap_bits(flags: int, pairs: tuple[tuple[int, int], ...]) -> int:
    if not pairs:
        return flags
    out = flags
    for src, _dst in pairs:
        out &= ~src
    for src, dst in pairs:
        if flags & src:
            out |= dst
    return out

