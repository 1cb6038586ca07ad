"""The Linux user-mode architectures by name (``pemu-<name>``)."""

from __future__ import annotations

from .arch import LinuxArch
from .arch_aarch64 import AARCH64_LINUX
from .arch_riscv64 import RISCV64_LINUX

ARCHES: dict[str, LinuxArch] = {a.name: a for a in (RISCV64_LINUX, AARCH64_LINUX)}

__all__ = ["ARCHES"]
