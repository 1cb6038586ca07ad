"""Which RISC-V extensions a hart has: ``-cpu MODEL[,ext=on|off,...]`` -> ``RiscvIsa``.

The decoder (insn_int.py) builds its tables from ``RiscvIsa.extensions``, so an
instruction of a disabled extension is simply absent and traps as illegal; the device
tree's ``riscv,isa`` comes from ``RiscvIsa.isa_string``.  The properties are spelled as
QEMU's (``zbc=true``, ``zbc=on``, ``zbc=off``), and the default model keeps QEMU 7.2's
``rv64`` defaults (Zba/Zbb/Zbc/Zbs on, the scalar-crypto bit-manipulation off).
"""

from __future__ import annotations

from dataclasses import dataclass

# Always present: pemu cannot switch these off (the letters are misa's, fixed at IMAFDC).
FIXED_EXTENSIONS = ("i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zihintpause", "sstc")

# Switchable, with their default in the ``rv64`` model: QEMU 7.2's (its rv64 runs clmul
# and lists zbc in riscv,isa; the scalar-crypto ones and Zicond, newer, are off).
OPTIONAL_EXTENSIONS: dict[str, bool] = {
    "zicond": False,
    "zba": True, "zbb": True, "zbc": True, "zbkb": False, "zbkc": False, "zbkx": False,
    "zbs": True,
}

# The canonical order of the ISA string: single letters, then Z extensions grouped by
# the letter after Z in single-letter order, alphabetical within a group, then S ones.
_ISA_ORDER = ("i", "m", "a", "f", "d", "c", "zicond", "zicsr", "zifencei", "zihintpause",
              "zba", "zbb", "zbc", "zbkb", "zbkc", "zbkx", "zbs", "sstc")

_TRUE = {"on", "true", "yes", "y"}
_FALSE = {"off", "false", "no", "n"}


class CpuOptionError(ValueError):
    """A ``-cpu`` model or property pemu does not have; the message is for the user."""


@dataclass(frozen=True)
class RiscvIsa:
    extensions: frozenset[str]

    def has(self, ext: str) -> bool:
        return ext in self.extensions

    @property
    def isa_string(self) -> str:
        """``riscv,isa`` as Linux parses it: rv64imafdc_zicsr_..._sstc."""
        letters = "".join(e for e in _ISA_ORDER if len(e) == 1 and e in self.extensions)
        multi = [e for e in _ISA_ORDER if len(e) > 1 and e in self.extensions]
        return "_".join([f"rv64{letters}", *multi])


def _isa(optional: dict[str, bool]) -> RiscvIsa:
    return RiscvIsa(frozenset(FIXED_EXTENSIONS)
                    | frozenset(e for e, on in optional.items() if on))


DEFAULT_ISA = _isa(OPTIONAL_EXTENSIONS)
MAX_ISA = _isa(dict.fromkeys(OPTIONAL_EXTENSIONS, True))

# model -> the optional extensions it starts with ("any" is linux-user's old default name)
MODELS: dict[str, dict[str, bool]] = {
    "rv64": OPTIONAL_EXTENSIONS,
    "any": OPTIONAL_EXTENSIONS,
    "max": dict.fromkeys(OPTIONAL_EXTENSIONS, True),
}


def _bool(name: str, text: str) -> bool:
    value = text.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise CpuOptionError(f"Parameter '{name}' expects 'on' or 'off'")


def parse_cpu(spec: str | None) -> RiscvIsa:
    """``rv64,zbc=true,zbs=off`` -> the extensions that hart has (None: the default)."""
    if not spec:
        return DEFAULT_ISA
    model, *props = spec.split(",")
    if model not in MODELS:
        raise CpuOptionError(f"unable to find CPU model '{model}'")
    optional = dict(MODELS[model])
    for prop in props:
        if not prop:
            continue
        name, eq, text = prop.partition("=")
        name = name.lower()
        on = _bool(name, text) if eq else True  # a bare "zbc" switches it on, as keyval
        if name in optional:
            optional[name] = on
        elif name in FIXED_EXTENSIONS:
            if not on:
                raise CpuOptionError(f"-cpu {model}: pemu cannot disable '{name}'")
        else:
            raise CpuOptionError(f"-cpu {model}: property '{name}' not found "
                                 f"(pemu has: {', '.join(OPTIONAL_EXTENSIONS)})")
    return _isa(optional)


__all__ = ["DEFAULT_ISA", "MAX_ISA", "MODELS", "CpuOptionError", "RiscvIsa", "parse_cpu"]
