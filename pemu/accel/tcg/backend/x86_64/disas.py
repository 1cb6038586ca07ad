"""``-d out_asm`` for the native backend: the host code of a block, via capstone."""

from __future__ import annotations


def disassemble(code: bytes, address: int, skip: int = 0) -> str:
    """x86-64 disassembly of ``code`` (placed at ``address``), from offset ``skip``."""
    try:
        import capstone
    except ImportError:
        return f"  (capstone not installed) {code[skip:].hex()}"
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    lines = [f"  0x{address:016x}:  .quad 0x{int.from_bytes(code[:8], 'little'):x}  (pc tag)"]
    for insn in md.disasm(code[skip:], address + skip):
        lines.append(f"  0x{insn.address:016x}:  {insn.mnemonic:<7} {insn.op_str}".rstrip())
    return "\n".join(lines)
