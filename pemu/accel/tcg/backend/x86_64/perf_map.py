"""``PEMU_PERF_MAP=1``: name generated code for the host's ``perf`` (a debugging aid).

``perf record -p PID`` samples generated code as anonymous memory; with
``/tmp/perf-PID.map`` (perf's JIT symbol file: ``start size name`` a line, in hex)
``perf report`` names each sample's block by its guest pc and flags
(``tb_<pc>_<flags>``) and the dispatcher head.  That is how one finds *which guest
code* a run spends its generated-code time in (QEMU's ``-perfmap``), e.g. a vCPU
spinning in the guest's remote-fence wait.  Off (the default) it costs one test of a
module global per installed block.
"""

from __future__ import annotations

import os
from typing import TextIO

ENABLED = os.environ.get("PEMU_PERF_MAP", "") not in ("", "0")
_file: TextIO | None = None


def name_code(start: int, size: int, name: str) -> None:
    """Host code at ``start`` (``size`` bytes) is ``name`` from now on."""
    global _file
    if _file is None or _file.closed:
        # line-buffered: perf reads the file after the process has been killed
        _file = open(f"/tmp/perf-{os.getpid()}.map", "a", buffering=1)  # noqa: SIM115
    _file.write(f"{start:x} {size:x} {name}\n")


__all__ = ["ENABLED", "name_code"]
