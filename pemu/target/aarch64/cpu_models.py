"""The identity and ID registers of the system-mode ``-cpu`` models.

Values are QEMU's for the same model, with the fields of features pemu does not
emulate cleared, so that a guest never takes a path that would hit an undefined
instruction: EL2/EL3 (QEMU clears those too without ``virtualization=on``/
``secure=on``), AArch32 (pemu runs only A64), AES/SHA/PMULL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Aarch64CpuModel:
    name: str
    midr: int
    ccsidr: tuple[int, ...]  # by CSSELR: L1 D, L1 I, L2 (unified)
    revidr: int = 0
    ctr: int = 0x8444_C004  # 64-byte lines, VIPT I-cache
    clidr: int = 0x0A20_0023  # L1 I+D, L2 unified, LoUU 1, LoC 2
    dczid: int = 4  # DC ZVA zeroes 64 bytes
    id_aa64pfr0: int = 0x11  # EL0 and EL1, AArch64 only; FP and AdvSIMD
    id_aa64dfr0: int = 0x1030_5106  # debug v8, 6 breakpoints, 4 watchpoints, PMUv3
    id_aa64isar0: int = 0x1_0000  # CRC32 (QEMU: also AES/PMULL/SHA1/SHA2)
    id_aa64mmfr0: int = 0x1124  # 44-bit PA, 16-bit ASIDs, 4K and 64K granules


CORTEX_A57 = Aarch64CpuModel("cortex-a57", midr=0x411F_D070,
                             ccsidr=(0x701F_E00A, 0x201F_E012, 0x70FF_E07A))
CORTEX_A72 = Aarch64CpuModel("cortex-a72", midr=0x410F_D083,
                             ccsidr=(0x701F_E00A, 0x201F_E012, 0x707F_E07A))
CORTEX_A53 = Aarch64CpuModel("cortex-a53", midr=0x410F_D034, ctr=0x8444_4004,
                             clidr=0x0A20_0023,
                             ccsidr=(0x700F_E01A, 0x201F_E00A, 0x707F_E07A))
# "max" is every feature pemu has: the A64 of a Cortex-A57 plus LSE atomics
MAX = Aarch64CpuModel("max", midr=0x411F_D070, ccsidr=CORTEX_A57.ccsidr,
                      id_aa64isar0=0x21_0000)

MODELS = {m.name: m for m in (CORTEX_A57, CORTEX_A72, CORTEX_A53, MAX)}
DEFAULT_MODEL = "cortex-a57"


class CpuModelError(ValueError):
    pass


def find_model(spec: str | None) -> Aarch64CpuModel:
    """``-cpu NAME`` (properties after a comma are not supported)."""
    name = (spec or DEFAULT_MODEL).split(",")[0]
    model = MODELS.get(name)
    if model is None:
        raise CpuModelError(f"-cpu {name}: unknown CPU model (known: {', '.join(MODELS)})")
    return model


__all__ = ["Aarch64CpuModel", "CpuModelError", "DEFAULT_MODEL", "MODELS", "find_model"]
