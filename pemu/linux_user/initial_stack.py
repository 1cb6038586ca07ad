"""The initial process stack: argc, argv, envp and the ELF auxiliary vector.

Layout (addresses grow upwards from the returned sp), as the kernel builds it:
  sp -> argc, argv[0..argc-1], NULL, envp[..], NULL, auxv pairs ..., AT_NULL
  ... padding, the 16 AT_RANDOM bytes, the platform string, argument and environment
  strings, and the AT_EXECFN string at the very top.
"""

from __future__ import annotations

import os
import struct

from .loader import STACK_SIZE, STACK_TOP, LoadedProgram
from .vmem import PROT_READ, PROT_WRITE, GuestVirtualMemory

AT_NULL = 0
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_FLAGS = 8
AT_ENTRY = 9
AT_UID = 11
AT_EUID = 12
AT_GID = 13
AT_EGID = 14
AT_PLATFORM = 15
AT_HWCAP = 16
AT_CLKTCK = 17
AT_SECURE = 23
AT_RANDOM = 25
AT_EXECFN = 31

# riscv64's AT_HWCAP (the default): one bit per single-letter extension
HWCAP_RV64IMAFDC = sum(1 << (ord(c) - ord("A")) for c in "IMAFDC")



def setup_stack(mem: GuestVirtualMemory, prog: LoadedProgram, argv: list[bytes],
                envp: list[bytes], execfn: bytes, platform: bytes = b"riscv64",
                hwcap: int = HWCAP_RV64IMAFDC) -> tuple[int, list[tuple[int, int]]]:
    """Map the main stack and fill it; returns (sp, auxv pairs) for /proc/self/auxv."""
    mem.map_anonymous(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE)
    top = STACK_TOP

    def push_bytes(data: bytes) -> int:
        nonlocal top
        top -= len(data)
        mem.write(top, data)
        return top

    execfn_addr = push_bytes(execfn + b"\0")
    env_addrs = [push_bytes(e + b"\0") for e in reversed(envp)][::-1]
    arg_addrs = [push_bytes(a + b"\0") for a in reversed(argv)][::-1]
    platform_addr = push_bytes(platform + b"\0")
    top &= ~0xF
    random_addr = push_bytes(os.urandom(16))

    auxv = [
        (AT_PHDR, prog.phdr), (AT_PHENT, prog.phent), (AT_PHNUM, prog.phnum),
        (AT_PAGESZ, 4096), (AT_BASE, prog.interp_base), (AT_FLAGS, 0),
        (AT_ENTRY, prog.entry), (AT_UID, os.getuid()), (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()), (AT_EGID, os.getegid()), (AT_HWCAP, hwcap),
        (AT_CLKTCK, os.sysconf("SC_CLK_TCK")), (AT_SECURE, 0), (AT_RANDOM, random_addr),
        (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform_addr), (AT_NULL, 0),
    ]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    table = struct.pack(f"<{len(words)}Q", *words)
    sp = (top - len(table)) & ~0xF
    mem.write(sp, table)
    return sp, auxv
