"""The system-mode ``-cpu`` models as registry types (``-cpu help``)."""

from __future__ import annotations

from pemu.qom.registry import CPU, TypeInfo, register
from pemu.target.aarch64.cpu_models import DEFAULT_MODEL, MODELS

for _name in MODELS:
    register(TypeInfo(_name, CPU, f"Arm {_name}" if _name != "max" else
                      "every feature pemu implements", arch="aarch64",
                      is_default=_name == DEFAULT_MODEL))
