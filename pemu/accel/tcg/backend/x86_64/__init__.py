"""The native x86-64 TCG backend: IR -> machine code pemu generates itself.

Modules: ``encoder`` (x86-64 instructions), ``codebuf`` (W^X memfd code buffer),
``regalloc`` (per-block register allocation), ``codegen`` (IR ops -> code),
``memory_user`` (user-mode guest memory access), ``runtime`` (dispatcher, callbacks,
chaining, run loop), ``disas`` (-d out_asm).
"""

from __future__ import annotations

import platform
import sys


def host_supported() -> bool:
    """True when this host can run the generated code (x86-64 Linux)."""
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64",
                                                                                "amd64")

