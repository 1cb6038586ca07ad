"""What the host kernel told this pemu process in its own auxiliary vector.

binfmt_misc speaks to its interpreter only through it: ``AT_FLAGS_PRESERVE_ARGV0``
(flag ``P``: the original argv[0] follows the program path) and ``AT_EXECFD`` (flag
``O``/``C``: the program, already open).
"""

from __future__ import annotations

import struct

AT_EXECFD = 2
AT_FLAGS = 8
AT_FLAGS_PRESERVE_ARGV0 = 1


def host_auxv(path: str = "/proc/self/auxv") -> dict[int, int]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    entries: dict[int, int] = {}
    for key, value in struct.iter_unpack("<QQ", data[: len(data) // 16 * 16]):
        if key == 0:
            break
        entries[key] = value
    return entries


def started_by_binfmt_with_argv0(auxv: dict[int, int]) -> bool:
    return bool(auxv.get(AT_FLAGS, 0) & AT_FLAGS_PRESERVE_ARGV0)


def binfmt_program_fd(auxv: dict[int, int]) -> int | None:
    return auxv.get(AT_EXECFD)
