"""The x86-64 registers as GDB sees them: layout, target description, x87 tag words.

Layout (what ``target.xml`` says, and the ``g`` packet's order): gdb's own
``org.gnu.gdb.i386.core`` and ``.sse`` features (64bit-core.xml, 64bit-sse.xml):
rax..r15 0-15, rip 16, eflags 17, cs ss ds es fs gs 18-23, st0-st7 24-31 (80 bits),
fctrl..fop 32-39, xmm0-xmm15 40-55, mxcsr 56; then ``org.gnu.gdb.i386.segments``
fs_base 57, gs_base 58; then pemu's system registers k_gs_base 59, cr0 60, cr2 61,
cr3 62, cr4 63, cr8 64, efer 65.

This is target knowledge, shared by every way of reaching x86 registers (today the
KVM gdb stub, pemu/gdbstub/x86_kvm.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

GPR_NAMES = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [
    f"r{n}" for n in range(8, 16)]
SEGMENTS = ["cs", "ss", "ds", "es", "fs", "gs"]
FPU_CONTROL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
SYSTEM_REGS = ["k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"]
RIP_REGNUM = 16


@dataclass(frozen=True)
class Reg:
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""


def register_layout() -> list[Reg]:
    core, sse = "org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse"
    regs = [Reg(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", core)
            for n in GPR_NAMES]
    regs.append(Reg("rip", 64, "code_ptr", core))
    regs.append(Reg("eflags", 32, "i386_eflags", core))
    regs += [Reg(n, 32, "int32", core) for n in SEGMENTS]
    regs += [Reg(f"st{i}", 80, "i387_ext", core) for i in range(8)]
    regs += [Reg(n, 32, "int", core, "float") for n in FPU_CONTROL]
    regs += [Reg(f"xmm{i}", 128, "vec128", sse) for i in range(16)]
    regs.append(Reg("mxcsr", 32, "i386_mxcsr", sse, "vector"))
    regs += [Reg(n, 64, "int", "org.gnu.gdb.i386.segments") for n in ("fs_base", "gs_base")]
    regs += [Reg(n, 64, "int64", "org.pemu.x86.system", "system") for n in SYSTEM_REGS]
    return regs


LAYOUT = register_layout()
REGNUM = {r.name: i for i, r in enumerate(LAYOUT)}

_EFLAGS_FIELDS = [("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8),
                  ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17),
                  ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)]
_MXCSR_FIELDS = [("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5),
                 ("DAZ", 6), ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11),
                 ("PM", 12), ("FZ", 15)]


def _flags_xml(type_id: str, fields: list[tuple[str, int]]) -> str:
    body = "".join(f'    <field name="{n}" start="{b}" end="{b}"/>\n' for n, b in fields)
    return f'  <flags id="{type_id}" size="4">\n{body}  </flags>\n'


def _types_for(feature: str) -> str:
    if feature == "org.gnu.gdb.i386.core":
        return _flags_xml("i386_eflags", _EFLAGS_FIELDS)
    if feature == "org.gnu.gdb.i386.sse":
        vectors = [("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2), ("v16i8", "int8", 16),
                   ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2)]
        out = "".join(f'  <vector id="{i}" type="{t}" count="{c}"/>\n' for i, t, c in vectors)
        out += '  <union id="vec128">\n'
        for field, vid in (("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"),
                           ("v8_int16", "v8i16"), ("v4_int32", "v4i32"),
                           ("v2_int64", "v2i64"), ("uint128", "uint128")):
            out += f'    <field name="{field}" type="{vid}"/>\n'
        out += "  </union>\n"
        return out + _flags_xml("i386_mxcsr", _MXCSR_FIELDS)
    return ""


FEATURE_FILES = {"org.gnu.gdb.i386.core": "64bit-core.xml",
                 "org.gnu.gdb.i386.sse": "64bit-sse.xml",
                 "org.gnu.gdb.i386.segments": "64bit-segments.xml",
                 "org.pemu.x86.system": "pemu-x86-system.xml"}


def target_xml() -> dict[str, str]:
    """target.xml and the feature files it includes, every register with its regnum."""
    files = {}
    for feature, filename in FEATURE_FILES.items():
        regs = ""
        for num, r in enumerate(LAYOUT):
            if r.feature != feature:
                continue
            group = f' group="{r.group}"' if r.group else ""
            regs += (f'  <reg name="{escape(r.name)}" bitsize="{r.bits}" type="{r.type}" '
                     f'regnum="{num}"{group}/>\n')
        files[filename] = ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
                           f'<feature name="{feature}">\n{_types_for(feature)}{regs}</feature>\n')
    includes = "".join(f'  <xi:include href="{f}"/>\n' for f in FEATURE_FILES.values())
    files["target.xml"] = (
        '<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
        '<target xmlns:xi="http://www.w3.org/2001/XInclude">\n'
        '  <architecture>i386:x86-64</architecture>\n' + includes + '</target>\n')
    return files


# -- x87 tag word ------------------------------------------------------------------------
def full_tag_word(ftwx: int, fsw: int, fpr) -> int:
    """FXSAVE keeps one "not empty" bit per physical x87 register; GDB shows the full
    two-bit tags (0 valid, 1 zero, 2 special, 3 empty), derived from each value."""
    top = (fsw >> 11) & 7
    tags = 0
    for phys in range(8):
        if not ftwx >> phys & 1:
            tag = 3
        else:
            raw = bytes(fpr[(phys - top) & 7][:10])
            mantissa = int.from_bytes(raw[:8], "little")
            exponent = int.from_bytes(raw[8:10], "little") & 0x7FFF
            if exponent == 0x7FFF:
                tag = 2
            elif exponent == 0:
                tag = 1 if mantissa == 0 else 2
            else:
                tag = 0 if mantissa >> 63 else 2
        tags |= tag << (2 * phys)
    return tags


def abridged_tag_word(full: int) -> int:
    return sum(1 << p for p in range(8) if (full >> (2 * p)) & 3 != 3)
