"""Where the microvm board puts boot data in low guest RAM, and what a loader returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

GDT_ADDR = 0x500
STACK_TOP = 0x6FF0
BOOT_INFO_ADDR = 0x7000  # zero page, PVH start info or multiboot info (one of them)
PAGE_TABLES_ADDR = 0x9000  # 0x6000 bytes of identity tables for long-mode entry
CMDLINE_ADDR = 0x20000
CMDLINE_MAX = 0x10000
MODULES_ADDR = 0x30000  # PVH module list / multiboot module list and strings
KERNEL_HIGH_ADDR = 0x100000  # the protected-mode kernel of a bzImage

WriteFn = Callable[[int, bytes], None]


class BootError(ValueError):
    """The kernel, initrd or command line cannot be booted as given."""


@dataclass
class BootEntry:
    """How the BSP starts: ``mode`` is "long64" or "protected32"."""

    mode: str
    rip: int
    regs: dict[str, int] = field(default_factory=dict)
    summary: str = ""


def check_fits(what: str, addr: int, size: int, ram_end: int) -> None:
    if addr < 0 or addr + size > ram_end:
        raise BootError(f"{what} at 0x{addr:x} (+0x{size:x} bytes) does not fit in guest RAM "
                        f"ending at 0x{ram_end:x}; give the guest more memory with -m")


def write_cmdline(write: WriteFn, cmdline: str, limit: int) -> tuple[int, int]:
    """Writes the NUL-terminated command line; returns (address, length without NUL)."""
    data = cmdline.encode()
    if len(data) + 1 > min(limit, CMDLINE_MAX):
        raise BootError(f"kernel command line is {len(data)} bytes; this kernel accepts at "
                        f"most {min(limit, CMDLINE_MAX) - 1}")
    write(CMDLINE_ADDR, data + b"\0")
    return CMDLINE_ADDR, len(data)
