"""RISC-V synchronous exception causes and the Python exception that carries them.

Translated code raises ``RiscvTrap`` through helpers.  When any exception leaves a
translated block, the backend has written every guest register back to the state
block and set the pc slot to the guest instruction that raised it, so the handler
(the Linux user-mode loop, or the privileged trap logic in system mode) sees
precise state.
"""

from __future__ import annotations

INSN_ADDR_MISALIGNED = 0
INSN_ACCESS_FAULT = 1
ILLEGAL_INSN = 2
BREAKPOINT = 3
LOAD_ADDR_MISALIGNED = 4
LOAD_ACCESS_FAULT = 5
STORE_ADDR_MISALIGNED = 6
STORE_ACCESS_FAULT = 7
ECALL_U = 8
ECALL_S = 9
ECALL_M = 11
INSN_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15

CAUSE_NAMES = {
    0: "instruction address misaligned", 1: "instruction access fault",
    2: "illegal instruction", 3: "breakpoint", 4: "load address misaligned",
    5: "load access fault", 6: "store/AMO address misaligned", 7: "store/AMO access fault",
    8: "environment call from U-mode", 9: "environment call from S-mode",
    11: "environment call from M-mode", 12: "instruction page fault",
    13: "load page fault", 15: "store/AMO page fault",
}

# The short names -d int prints (QEMU's, so that the logs of both compare line by line).
EXCEPTION_LOG_NAMES = (
    "misaligned_fetch", "fault_fetch", "illegal_instruction", "breakpoint",
    "misaligned_load", "fault_load", "misaligned_store", "fault_store", "user_ecall",
    "supervisor_ecall", "hypervisor_ecall", "machine_ecall", "exec_page_fault",
    "load_page_fault", "reserved", "store_page_fault",
    # H's (QEMU 7.2 logs the virtual instruction, 22, as reserved)
    "reserved", "reserved", "reserved", "reserved", "guest_exec_page_fault",
    "guest_load_page_fault", "reserved", "guest_store_page_fault",
)
INTERRUPT_LOG_NAMES = (
    "u_software", "s_software", "vs_software", "m_software", "u_timer", "s_timer",
    "vs_timer", "m_timer", "u_external", "s_external", "vs_external", "m_external",
)


def trap_name(cause: int, interrupt: bool) -> str:
    """The -d int name of an exception or interrupt cause."""
    names = INTERRUPT_LOG_NAMES if interrupt else EXCEPTION_LOG_NAMES
    return names[cause] if 0 <= cause < len(names) else "(unknown)"


class RiscvTrap(Exception):
    """A synchronous exception raised by guest code."""

    def __init__(self, cause: int, tval: int = 0) -> None:
        super().__init__(f"{CAUSE_NAMES.get(cause, 'exception')} (cause {cause}, tval 0x{tval:x})")
        self.cause = cause
        self.tval = tval
