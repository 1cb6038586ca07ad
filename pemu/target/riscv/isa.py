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
    "v": False,
}

# The canonical order of the ISA string: single letters, then Z extensions grouped by
# the letter after Z in single-letter order, alphabetical within a group, then S ones.
_ISA_ORDER = ("i", "m", "a", "f", "d", "c", "v", "zicond", "zicsr", "zifencei", "zihintpause",
              "zba", "zbb", "zbc", "zbkb", "zbkc", "zbkx", "zbs", "sstc")

_TRUE = {"on", "true", "yes", "y"}
_FALSE = {"off", "false", "no", "n"}


class CpuOptionError(ValueError):
    """A ``-cpu`` model or property pemu does not have; the message is for the user."""


# The vector unit's sizes (``vlen=``, ``elen=``, as QEMU spells them), in bits.
DEFAULT_VLEN, MIN_VLEN, MAX_VLEN = 128, 128, 1024
DEFAULT_ELEN, ELENS = 64, (32, 64)


@dataclass(frozen=True)
class RiscvIsa:
    extensions: frozenset[str]
    vlen: int = DEFAULT_VLEN  # only meaningful with "v"
    elen: int = DEFAULT_ELEN

    @property
    def vlenb(self) -> int:
        """VLEN in bytes when the hart has V, else 0 (what the translator keys on)."""
        return self.vlen // 8 if "v" in self.extensions else 0

    def has(self, ext: str) -> bool:
        return ext in self.extensions

    @property
    def isa_string(self) -> str:
        """``riscv,isa`` as Linux parses it: rv64imafdc_zicsr_..._sstc."""
        letters = "".join(e for e in _ISA_ORDER if len(e) == 1 and e in self.extensions)
        multi = [e for e in _ISA_ORDER if len(e) > 1 and e in self.extensions]
        return "_".join([f"rv64{letters}", *multi])


def _isa(optional: dict[str, bool], vlen: int = DEFAULT_VLEN,
         elen: int = DEFAULT_ELEN) -> RiscvIsa:
    return RiscvIsa(frozenset(FIXED_EXTENSIONS)
                    | frozenset(e for e, on in optional.items() if on), vlen, elen)


def _vector_size(name: str, text: str) -> int:
    """vlen=/elen=: a power of two in the range pemu (and QEMU 7.2) supports."""
    try:
        value = int(text, 0)
    except ValueError:
        raise CpuOptionError(f"Parameter '{name}' expects a number") from None
    ok = (MIN_VLEN <= value <= MAX_VLEN) if name == "vlen" else value in ELENS
    if not ok or value & (value - 1):
        raise CpuOptionError(f"-cpu: unsupported {name}={text} (vlen: a power of two "
                             f"{MIN_VLEN}..{MAX_VLEN}; elen: {' or '.join(map(str, ELENS))})")
    return value


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
    sizes = {"vlen": DEFAULT_VLEN, "elen": DEFAULT_ELEN}
    for prop in props:
        if not prop:
            continue
        name, eq, text = prop.partition("=")
        name = name.lower()
        if name in sizes:
            sizes[name] = _vector_size(name, text)
            continue
        if name == "vext_spec":
            if text.lower() != "v1.0":
                raise CpuOptionError(f"-cpu: unsupported vext_spec={text} (pemu has v1.0)")
            continue
        on = _bool(name, text) if eq else True  # a bare "zbc" switches it on, as keyval
        if name in optional:
            optional[name] = on
        elif name in FIXED_EXTENSIONS:
            if not on:
                raise CpuOptionError(f"-cpu {model}: pemu cannot disable '{name}'")
        else:
            raise CpuOptionError(f"-cpu {model}: property '{name}' not found "
                                 f"(pemu has: {', '.join(OPTIONAL_EXTENSIONS)})")
    return _isa(optional, sizes["vlen"], sizes["elen"])


__all__ = ["DEFAULT_ISA", "MAX_ISA", "MODELS", "CpuOptionError", "RiscvIsa", "parse_cpu"]
