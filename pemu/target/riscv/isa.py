"""Which RISC-V extensions a hart has: ``-cpu MODEL[,ext=on|off,...]`` -> ``RiscvIsa``.

The decoder's handlers check ``RiscvIsa.extensions`` (riscv_decode.py, insn_*.py), so an
instruction of a disabled extension traps as illegal; the device
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
# Issue 18's second slice (all off in rv64, as in QEMU 7.2, which has only Zfh/Zfhmin,
# Svinval/Svnapot/Svpbmt and the Zk ones of these).
OPTIONAL_EXTENSIONS.update({
    "zfh": False, "zfhmin": False, "zimop": False, "zcmop": False, "zawrs": False,
    "zihintntl": False, "zacas": False, "zicbom": False, "zicboz": False, "zicbop": False,
    "svinval": False, "svnapot": False, "svpbmt": False, "svadu": False, "svade": False,
    "zcb": False, "zfa": False, "zknd": False, "zkne": False, "zknh": False, "zksed": False,
    "zksh": False, "smstateen": False, "ssstateen": False,
})
# Definitional extensions: names for what pemu always does (Zicntr: cycle/time/instret;
# Zihpm: hpmcounters that read 0; Zkt: data-independent timing, trivially true of an
# interpreter; cache and reservation-set sizes of 64 bytes; Ss* facts about the CSRs).
# The property only decides whether the device tree advertises them (profiles need them
# listed); switching one off changes no behaviour.
NAMED_EXTENSIONS = ("zic64b", "ziccamoa", "ziccif", "zicclsm", "ziccrse", "zicntr", "zihpm",
                    "za64rs", "zkt", "ssccptr", "sscounterenw", "sstvala", "sstvecd",
                    "ssu64xl", "svbare")
OPTIONAL_EXTENSIONS.update(dict.fromkeys(NAMED_EXTENSIONS, False))
# The translation modes, as QEMU's sv39/sv48/sv57 properties: the largest enabled one
# below the first disabled is the hart's (satp takes it and every smaller one; the
# device tree's mmu-type names it).  Not extensions: riscv,isa never lists them.
SATP_MODES = {"sv39": 8, "sv48": 9, "sv57": 10}
OPTIONAL_EXTENSIONS.update(dict.fromkeys(SATP_MODES, True))
# QEMU's debug=true|false: the Sdtrig trigger module (debug_triggers.py), on by default
# as in QEMU 7.2, whose riscv,isa never names it
OPTIONAL_EXTENSIONS["debug"] = True
# Sscofpmf: counter overflow (mhpmevent OF and mode inhibits, scountovf, LCOFI); off
# in rv64 as in QEMU 7.2 (pmu.py)
OPTIONAL_EXTENSIONS["sscofpmf"] = False
# The vector pieces of RVA23 (off in rv64; QEMU 7.2 has none of them): Zvbb and its
# subset Zvkb (vector_bitmanip.py); Zvfhmin (binary16 conversions, which pemu's vector
# FP always runs) and Zvkt (data-independent timing) only name what pemu does
OPTIONAL_EXTENSIONS.update({"zvbb": False, "zvkb": False, "zvfhmin": False, "zvkt": False})
OPTIONAL_EXTENSIONS["zvkned"] = False  # vector AES (vector_aes.py)
OPTIONAL_EXTENSIONS["zvknha"] = False  # vector SHA-256 (vector_sha2.py)
# QEMU's scalar-crypto shorthand properties: they switch others on (_IMPLIES) and are
# not themselves in riscv,isa (nor on in max: max,zbkb=off must stay off)
SHORTHANDS = ("zk", "zkn", "zks")
OPTIONAL_EXTENSIONS.update(dict.fromkeys(SHORTHANDS, False))
# The hypervisor extension (QEMU 7.2's ``h=true``; off in rv64 as there): misa.H, the
# HS/VS/VU modes, two-stage translation (csr_hyp.py, hyp.py, mmu_hyp.py)
OPTIONAL_EXTENSIONS["h"] = False
# Pointer masking (pointer_masking.py; off in rv64: QEMU 7.2 has none of it): Smmpm
# (mseccfg.PMM, M-mode), Smnpm (menvcfg.PMM, S), Ssnpm (senvcfg.PMM for U, with H
# henvcfg.PMM and hstatus.HUPMM).  Sspm and Supm name what S- and U-mode software gets
# of them from the level above (Smnpm gives S Sspm, Ssnpm gives U Supm; pemu-riscv64's
# Supm is the tagged-address prctl)
OPTIONAL_EXTENSIONS.update({"smmpm": False, "smnpm": False, "ssnpm": False, "sspm": False,
                            "supm": False})

# The canonical order of the ISA string: single letters, then Z extensions grouped by
# the letter after Z in single-letter order, alphabetical within a group, then S ones.
_ISA_ORDER = ("i", "m", "a", "f", "d", "c", "v", "zic64b", "zicbom", "zicbop", "zicboz", "ziccamoa",
              "ziccif", "zicclsm", "ziccrse", "zicntr", "zicond", "zicsr", "zifencei",
              "zihintntl", "zihintpause", "zihpm", "zimop", "za64rs", "zacas", "zawrs", "zfa",
              "zfh", "zfhmin", "zcb", "zcmop", "zba", "zbb", "zbc", "zbkb", "zbkc", "zbkx", "zbs",
              "zknd", "zkne", "zknh", "zksed", "zksh", "zkt",
              "zvbb", "zvfhmin", "zvkb", "zvkned", "zvknha", "zvkt",
              "smmpm", "smnpm", "smstateen", "ssccptr",
              "sscofpmf",
              "sscounterenw", "ssnpm", "sspm", "ssstateen", "sstc", "sstvala", "sstvecd", "ssu64xl",
              "supm", "svade", "svadu", "svbare", "svinval", "svnapot", "svpbmt")
# H comes after V among the single letters
_ISA_ORDER = (*_ISA_ORDER[:_ISA_ORDER.index("v") + 1], "h",
              *_ISA_ORDER[_ISA_ORDER.index("v") + 1:])
# H's definitional names (RVA23's Sh*: what pemu's H does by construction: hcounteren
# fully writable, vstval/htval always written, vstvec direct mode, vsatp and hgatp
# taking every satp mode): advertised when switched on, as the other named ones; the
# S extensions sort alphabetically, so they come before Smstateen
SH_EXTENSIONS = ("shcounterenw", "shgatpa", "shtvala", "shvsatpa", "shvstvala", "shvstvecd")
OPTIONAL_EXTENSIONS.update(dict.fromkeys(SH_EXTENSIONS, False))
_ISA_ORDER = (*_ISA_ORDER[:_ISA_ORDER.index("smmpm")], *SH_EXTENSIONS,
              *_ISA_ORDER[_ISA_ORDER.index("smmpm"):])

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
    # what the chosen profile model requires and pemu lacks (``-cpu rva23s64``: H...)
    missing: tuple[str, ...] = ()

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

    @property
    def satp_modes(self) -> frozenset[int]:
        """satp MODE values the hart accepts besides Bare: Sv39 up to the first mode
        switched off."""
        modes = set()
        for name, mode in SATP_MODES.items():
            if name not in self.extensions:
                break
            modes.add(mode)
        return frozenset(modes)

    @property
    def mmu_type(self) -> str:
        """The device tree's ``mmu-type``: the largest mode (riscv,none without one)."""
        names = {mode: name for name, mode in SATP_MODES.items()}
        return f"riscv,{names[max(self.satp_modes)]}" if self.satp_modes else "riscv,none"

    @property
    def isa_base(self) -> str:
        """``riscv,isa-base``."""
        return "rv64i"

    @property
    def isa_extensions(self) -> tuple[str, ...]:
        """``riscv,isa-extensions``: every extension, one string each, canonical order."""
        return tuple(e for e in _ISA_ORDER if e in self.extensions)


# An extension that is part of another: enabling the first enables the second.
_IMPLIES = {"zfh": ("zfhmin",), "zvbb": ("zvkb",),
            # Ssstateen is the S-mode view of Smstateen (without H, sstateen0-3): a
            # pemu hart has M-mode, so either name gives both
            "ssstateen": ("smstateen",), "smstateen": ("ssstateen",),
            # pointer masking: the level above gives S Sspm, U Supm
            "smnpm": ("sspm",), "ssnpm": ("supm",),
            # the scalar-crypto shorthands QEMU 7.2 also accepts (zk=on, zkn=on, zks=on)
            "zk": ("zkn", "zkt"),
            "zkn": ("zbkb", "zbkc", "zbkx", "zkne", "zknd", "zknh"),
            "zks": ("zbkb", "zbkc", "zbkx", "zksed", "zksh")}


def _isa(optional: dict[str, bool], vlen: int = DEFAULT_VLEN, elen: int = DEFAULT_ELEN,
         missing: tuple[str, ...] = ()) -> RiscvIsa:
    on = {e for e, enabled in optional.items() if enabled}
    for ext, implied in _IMPLIES.items():
        if ext in on:
            on.update(implied)
    return RiscvIsa(frozenset(FIXED_EXTENSIONS) | frozenset(on), vlen, elen, missing)


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
_MAX = {e: e not in SHORTHANDS for e in OPTIONAL_EXTENSIONS}
MAX_ISA = _isa(_MAX)

# model -> the optional extensions it starts with ("any" is linux-user's old default name)
MODELS: dict[str, dict[str, bool]] = {
    "rv64": OPTIONAL_EXTENSIONS,
    "any": OPTIONAL_EXTENSIONS,
    "max": _MAX,
}

# The RVA profiles (RISC-V Profiles 1.0): their mandatory extensions beyond RV64GC,
# Zicsr, Zifencei, Zihintpause and Sstc, which every pemu hart has.  Svade, not Svadu:
# a profile's kernel must expect A/D page faults.
RVA22S64 = ("zic64b", "zicbom", "zicbop", "zicboz", "ziccamoa", "ziccif", "zicclsm",
            "ziccrse", "zicntr", "zihpm", "za64rs", "zfhmin", "zba", "zbb", "zbs", "zkt",
            "ssccptr", "sscounterenw", "sstvala", "sstvecd", "svade", "svbare", "svinval",
            "svpbmt")
RVA23S64 = RVA22S64 + ("zihintntl", "zicond", "zimop", "zcmop", "zawrs", "zfa", "zcb",
                       "v", "zvfhmin", "zvbb", "zvkt", "supm", "svnapot", "sscofpmf",
                       "ssnpm", "ssu64xl", "h", "ssstateen", "shcounterenw", "shvstvala",
                       "shtvala", "shvstvecd", "shvsatpa", "shgatpa")


def _profile(required: tuple[str, ...]) -> dict[str, bool]:
    optional = dict.fromkeys(OPTIONAL_EXTENSIONS, False)
    optional.update(dict.fromkeys(SATP_MODES, True))  # a profile's minimum is Sv39
    optional["debug"] = True  # triggers on every model, as QEMU's debug default
    optional.update((e, True) for e in required if e in optional)
    for ext in ("zba", "zbb", "zbs"):  # rv64's Zbc stays off: no profile has it
        optional[ext] = ext in required
    return optional


MODELS["rva22s64"] = _profile(RVA22S64)
MODELS["rva23s64"] = _profile(RVA23S64)
# model -> the mandatory extensions pemu does not have yet: the hart runs without them
# and the board says so on stderr (QEMU refuses such a model outright; pemu prefers a
# guest that mostly runs)
MISSING: dict[str, tuple[str, ...]] = {
    model: tuple(e for e in required if e not in OPTIONAL_EXTENSIONS)
    for model, required in (("rva22s64", RVA22S64), ("rva23s64", RVA23S64))}


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
    return _isa(optional, sizes["vlen"], sizes["elen"], MISSING.get(model, ()))


__all__ = ["DEFAULT_ISA", "MAX_ISA", "MODELS", "CpuOptionError", "RiscvIsa", "parse_cpu"]
