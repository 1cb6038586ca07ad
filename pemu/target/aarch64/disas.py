"""A64 disassembly for ``-d in_asm`` logs, through capstone (optional)."""

from __future__ import annotations

from functools import cache


@cache
def _disassembler():  # -> capstone.Cs, or None without capstone
    try:
        # capstone is optional and slow to import: only -d in_asm and the tests load it
        import capstone
    except ImportError:
        return None
    arch = getattr(capstone, "CS_ARCH_AARCH64", None)
    if arch is None:
        arch = capstone.CS_ARCH_ARM64
    return capstone.Cs(arch, capstone.CS_MODE_ARM)


def disassemble(code: bytes, pc: int) -> list[str]:
    """One line per 4-byte instruction: ``0x<addr>:  <word>  <mnemonic> <operands>``."""
    md = _disassembler()
    lines = []
    for off in range(0, len(code) - 3, 4):
        chunk = code[off:off + 4]
        decoded = next(md.disasm(chunk, pc + off, 1), None) if md is not None else None
        text = (f"{decoded.mnemonic} {decoded.op_str}".strip() if decoded is not None
                else f".inst 0x{int.from_bytes(chunk, 'little'):08x}")
        lines.append(f"0x{pc + off:x}:  {chunk[::-1].hex()}  {text}")
    return lines
